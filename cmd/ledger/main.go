// Command ledger is the order ledger: `ledger serve` runs the service;
// replay, audit, streams and simulate are its operator tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		// The last word goes through the same scrubber as the logs.
		fmt.Fprintf(os.Stderr, "ledger: %s\n", scrub([]byte(err.Error())))
		os.Exit(1)
	}
}
