//go:build unix

package main

import (
	"os/signal"
	"syscall"
)

// A write past the file-size limit (RLIMIT_FSIZE, as a quota'd or
// size-limited volume imposes) must fail with EFBIG, which the embedded
// store reports as unavailable and ingest waits through, rather than kill
// the process with SIGXFSZ mid-commit.
func init() { signal.Ignore(syscall.SIGXFSZ) }
