// Package testenv is the environment the module's tests, the bench and the
// chaos run share: a RabbitMQ virtual host of their own on the local broker
// (so runs that use the contract's fixed exchange names do not see each
// other's messages), the broker's control tool, and `ledger serve` run as a
// child process, built once, started, waited for, stopped or killed and
// restarted on the same data dir, with its log kept for assertions.
//
// Functions taking a testing.TB fail the test; the others take a context
// and return errors, for the non-test binaries (cmd/ledger-bench,
// cmd/ledger-chaos).
package testenv
