// Package esdbtest is an in-process EventStoreDB stand-in for tests: a
// grpc-go server implementing, with the service interfaces shipped by
// EventStore-Client-Go v4, the subset of the EventStoreDB gRPC protocol the
// ledger uses (append, stream and $all reads, catch-up subscriptions,
// server features), following /work/shared/reference/esdb-protocol.md.
//
// It keeps everything in memory. Known departures from a real server are
// listed in the doc comment of Server.
package esdbtest
