// Package bolt is the embedded event store: a [domain.EventLog] kept in one
// bbolt file, crash-safe (every acknowledged append is fsync'd) and fast
// under concurrency (group commit: appends waiting at the same time share
// one transaction and one fsync).
//
// File layout (buckets):
//
//	all      position (uint64 big-endian) → encoded event record
//	streams  stream name → last revision, event count
//	revs     stream name, 0x00, revision (uint64 big-endian) → position
//	ids      stream name, 0x00, event id (16 bytes) → revision, position
//	meta     format version
//
// Positions start at 1 and grow by one per event, so the zero
// [domain.Position] sorts before every event. Stream names must not
// contain a NUL byte.
package bolt
