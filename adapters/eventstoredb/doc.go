// Package eventstoredb implements domain.EventLog on EventStoreDB (and
// KurrentDB) with the official Go client, EventStore-Client-Go v4.
//
// What EventStoreDB does not give by itself, the adapter adds:
//   - idempotency by event id whatever the expected revision (the server
//     only deduplicates reliably for an exact expected revision below the
//     current one): before every append the adapter scans the stream for
//     the call's ids (incrementally, from a per-stream cache of ids already
//     seen) and always appends with an exact expectation;
//   - system streams ("$…") are hidden from ReadAll, Subscribe and Head;
//   - ListStreams scans $all with a server-side stream-prefix filter (a
//     filtered catch-up subscription, ended at caught_up, which needs server
//     23.10 or later). It costs one pass over the matching events per call,
//     but needs no projection ($streams is off by default and lags).
//
// Tests run against the in-process protocol server in esdbtest, and
// against a real server when LEDGER_TEST_ESDB_URL is set.
package eventstoredb
