// Package esdbtest is an in-process EventStoreDB stand-in for tests: a
// grpc-go server implementing, with the service interfaces shipped by
// EventStore-Client-Go v4, the subset of the EventStoreDB gRPC protocol the
// ledger uses (append, stream and $all reads, catch-up subscriptions,
// server features). It answers as a real server does where the client can
// tell: the same expected-revision and idempotency rules, error statuses
// and trailers, read and subscription message sequences and positions.
//
// Two rules keep the client's view of errors stable. A refused call's
// status is sent only after the whole request has been read: the client
// checks the status only once it has finished sending, and a status that
// arrives sooner makes its next Send fail with a bare io.EOF, reported as
// ErrorCodeUnknown. For the same reason Close returns only once every
// client has seen its connection end.
//
// It keeps everything in memory. Known departures from a real server are
// listed in the doc comment of Server.
package esdbtest
