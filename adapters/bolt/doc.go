// Package bolt is the embedded event store: a [domain.EventLog] kept in one
// bbolt file, crash-safe (every acknowledged append is fsync'd) and fast
// under concurrency (group commit: appends waiting at the same time share
// one transaction and one fsync).
//
// File layout (buckets):
//
//	all      position (uint64 big-endian) → encoded event record
//	streams  name 0x00 0x01 revision   → position
//	         name 0x00 0x02 event id   → revision, position
//	meta     format version
//
// All keys of one stream are adjacent, so an append to a short stream
// dirties one leaf page of streams plus the tail of all. A stream's last
// revision is its highest revision key.
//
// Positions start at 1 and grow by one per event, so the zero
// [domain.Position] sorts before every event. Stream names must not
// contain a NUL byte.
//
// The package also keeps the order read model ([ReadModel]) in a second,
// separate file: summaries, the placement-deadline index, projection
// checkpoints, parked lanes, and the stream browser's indexes (index.go:
// orders by status and id, last activity or amount; counters per status;
// money in all and per UTC day), kept in the transaction of every write.
// It is local to one instance and rebuilt by a replay.
package bolt
