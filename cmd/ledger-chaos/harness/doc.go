// Package harness is the load and the bookkeeping of the chaos runs: it
// publishes planned orders through crashes and broker outages, waits until
// the ledger is quiet, and then checks the books against the files and the
// queues (facts exactly once, outbound at least once with stable ids, read
// model equal to a replay). `ledger-chaos` (the long form) and the short
// forms in cmd/ledger's tests share it.
package harness
