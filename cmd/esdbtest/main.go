// Command esdbtest serves the in-process EventStoreDB protocol test server
// (adapters/eventstoredb/esdbtest) on a known address, so that several
// `ledger serve` instances can share one store on a machine without
// EventStoreDB. It keeps everything in memory: for development only.
//
//	go run ./cmd/esdbtest -addr 127.0.0.1:2113
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "esdbtest:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done; the first line on stdout is the
// connection string to give `ledger serve` (esdb.url).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("esdbtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2113", "listen address (host:port)")
	tls := fs.Bool("tls", false, "serve TLS with a fresh self-signed certificate (its CA file is in the connection string)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := []esdbtest.Option{esdbtest.WithAddr(*addr)}
	if *tls {
		opts = append(opts, esdbtest.WithTLS())
	}
	srv, err := esdbtest.Start(ctx, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintln(stdout, srv.ConnectionString())
	fmt.Fprintf(stderr, "esdbtest: serving the EventStoreDB protocol subset the ledger uses on %s, in memory; "+
		"LEDGER_STORE=esdb LEDGER_ESDB_URL='%s' ledger serve; Ctrl-C stops it\n", srv.Addr(), srv.ConnectionString())
	<-ctx.Done()
	return nil
}
