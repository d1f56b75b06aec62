package domain

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// EventLog is the port every event store implements: the embedded bbolt
// store and the EventStoreDB adapter. The contract suite in specs/storespec
// pins the behaviour described on each method.
//
// Implementations must be safe for concurrent use.
type EventLog interface {
	// Append writes events to the end of stream, atomically, if the stream's
	// current revision matches expected.
	//
	// Idempotency: an event whose ID is already stored in this stream is not
	// stored again, whatever expected revision the retry carries. When every
	// event of the call is already stored, Append succeeds with
	// AppendResult.Duplicate set and the revision and position of the last
	// of them. When only some are, it fails with ErrPartialDuplicate.
	//
	// Errors: *WrongExpectedVersionError (matches ErrWrongExpectedVersion)
	// when expected does not hold; ErrInvalidEvent for an empty stream name,
	// missing ID or type; ErrClosed after Close.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)

	// ReadStream returns up to max events of stream starting at revision
	// from (inclusive), in the given direction. Reading backwards from
	// EndOfStream starts at the last event. max <= 0 means no limit.
	//
	// Errors: ErrStreamNotFound when the stream has no events.
	ReadStream(ctx context.Context, stream string, from uint64, dir Direction, max int) ([]RecordedEvent, error)

	// ReadAll returns up to max events of the global log, in position order,
	// strictly after the position after (nil: from the very first event).
	// max <= 0 means no limit.
	ReadAll(ctx context.Context, after *Position, max int) ([]RecordedEvent, error)

	// Subscribe delivers every event of the global log strictly after
	// opts.After (nil: from the first event), first catching up with what is
	// stored, then live, with no gap and no duplicate between the two.
	// Only streams whose name starts with opts.StreamPrefix are delivered
	// (empty: all; system streams starting with "$" are never delivered).
	Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error)

	// ListStreams returns up to limit streams whose names sort after the
	// name after (empty: from the first), in name order, with their last
	// revision. Only streams starting with prefix are listed.
	ListStreams(ctx context.Context, prefix, after string, limit int) ([]StreamInfo, error)

	// Head returns the position of the last event in the global log, and
	// false when the log is empty.
	Head(ctx context.Context) (Position, bool, error)

	// Close releases the store. Calls after Close fail with ErrClosed.
	Close() error
}

// Subscription is a live feed of recorded events.
type Subscription interface {
	// Next blocks until the next event is available, ctx is done, or the
	// subscription fails. After an error the subscription is finished.
	Next(ctx context.Context) (RecordedEvent, error)
	// Close stops the subscription; a blocked Next returns ErrClosed.
	Close() error
}

// SubscribeOptions select where a subscription starts and what it sees.
type SubscribeOptions struct {
	After        *Position // nil: from the first event
	StreamPrefix string    // e.g. "order-"; empty: every non-system stream
}

// EventData is an event to append. ID is a UUID in canonical lower-case
// text form; callers derive it deterministically so retries are idempotent.
type EventData struct {
	ID       string
	Type     string
	Data     []byte // JSON
	Metadata []byte // JSON, may be empty
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	Stream   string
	Revision uint64 // 0-based position within the stream
	Position Position
	ID       string
	Type     string
	Data     []byte
	Metadata []byte
	Created  time.Time // when the store wrote it
}

// Position is a place in the global log. The embedded store uses Commit
// only (Prepare == Commit); EventStoreDB uses both. Positions compare by
// Commit, then Prepare.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// Less reports whether p sorts before q.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// String renders p as "C/P", the form checkpoints are printed in.
func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Commit, p.Prepare) }

// AppendResult tells where an append landed.
type AppendResult struct {
	NextRevision uint64   // revision of the last event of the call
	Position     Position // position of the last event of the call
	Duplicate    bool     // every event was already stored; nothing written
}

// StreamInfo describes one stream.
type StreamInfo struct {
	Name         string
	LastRevision uint64
	Count        uint64 // number of events (LastRevision+1 unless truncated)
}

// Direction of a stream read.
type Direction int

// Directions.
const (
	Forwards Direction = iota
	Backwards
)

// EndOfStream as the from argument of a backwards read starts at the last
// event.
const EndOfStream = ^uint64(0)

// ExpectedRevision is the optimistic-concurrency condition of an append.
// The zero value is Any.
type ExpectedRevision struct {
	kind expectKind
	rev  uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Expected revisions.
var (
	Any          = ExpectedRevision{kind: expectAny}
	NoStream     = ExpectedRevision{kind: expectNoStream}
	StreamExists = ExpectedRevision{kind: expectStreamExists}
)

// Exact expects the stream's last event to be at revision rev.
func Exact(rev uint64) ExpectedRevision { return ExpectedRevision{kind: expectExact, rev: rev} }

// IsAny, IsNoStream, IsStreamExists and Revision let adapters translate the
// condition into their own terms.
func (e ExpectedRevision) IsAny() bool          { return e.kind == expectAny }
func (e ExpectedRevision) IsNoStream() bool     { return e.kind == expectNoStream }
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }

// Revision returns the exact revision expected, and false for the other kinds.
func (e ExpectedRevision) Revision() (uint64, bool) { return e.rev, e.kind == expectExact }

// Holds reports whether the condition holds for a stream whose last
// revision is last (exists false: the stream has no events).
func (e ExpectedRevision) Holds(last uint64, exists bool) bool {
	switch e.kind {
	case expectNoStream:
		return !exists
	case expectStreamExists:
		return exists
	case expectExact:
		return exists && last == e.rev
	default:
		return true
	}
}

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return fmt.Sprintf("revision %d", e.rev)
	default:
		return "any"
	}
}

// Errors of the event log port. Adapters wrap them with context; callers
// test with errors.Is / errors.As.
var (
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	ErrStreamNotFound       = errors.New("stream not found")
	ErrPartialDuplicate     = errors.New("some but not all events already stored")
	ErrInvalidEvent         = errors.New("invalid event")
	ErrClosed               = errors.New("event log closed")
	ErrUnavailable          = errors.New("event log unavailable") // transient: retry later
)

// WrongExpectedVersionError carries what the append expected and what the
// stream had.
type WrongExpectedVersionError struct {
	Stream       string
	Expected     ExpectedRevision
	Actual       uint64 // last revision; meaningless when !ActualExists
	ActualExists bool
}

func (e *WrongExpectedVersionError) Error() string {
	actual := "no stream"
	if e.ActualExists {
		actual = fmt.Sprintf("revision %d", e.Actual)
	}
	return fmt.Sprintf("stream %s: expected %s, found %s", e.Stream, e.Expected, actual)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }
