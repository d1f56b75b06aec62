package eventstoredb

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/google/uuid"
)

// Append implements domain.EventLog.
//
// EventStoreDB deduplicates a retried append only when it carries an exact
// expected revision below the current one; with Any, or an exact revision
// equal to the current one, a retry is stored twice (KurrentDB#1898). So
// the adapter first brings its view of the stream's ids up to date
// (reading only the events it has not seen), decides duplicate, partial
// duplicate or wrong expected version itself, and appends with an exact
// expectation. Losing a race shows up as a server-side wrong expected
// version; the stream is rescanned, so a concurrent identical append is a
// duplicate, not a conflict, and Any and StreamExists try again.
func (l *Log) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events ...domain.EventData) (_ domain.AppendResult, err error) {
	defer recoverClosed(&err)
	out, err := l.appendOnce(ctx, stream, expected, events)
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	return out, nil
}

func (l *Log) appendOnce(ctx context.Context, stream string, expected domain.ExpectedRevision, events []domain.EventData) (domain.AppendResult, error) {
	data, err := toEventData(stream, events)
	if err != nil {
		return domain.AppendResult{}, err
	}
	c, err := l.current()
	if err != nil {
		return domain.AppendResult{}, err
	}
	for attempt := 1; ; attempt++ {
		view, refs, found, err := l.scan(ctx, c, stream, events)
		if err != nil {
			return domain.AppendResult{}, err
		}
		switch {
		case found == len(events):
			last := refs[len(refs)-1]
			if !last.hasPos {
				if last.pos, err = l.positionOf(ctx, stream, last.rev); err != nil {
					return domain.AppendResult{}, err
				}
			}
			return domain.AppendResult{NextRevision: last.rev, Position: last.pos, Duplicate: true}, nil
		case found > 0:
			return domain.AppendResult{}, fmt.Errorf("%d of %d events: %w", found, len(events), domain.ErrPartialDuplicate)
		case !expected.Holds(view.last, view.exists):
			return domain.AppendResult{}, &domain.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: view.last, ActualExists: view.exists}
		}
		var exact esdb.ExpectedRevision = esdb.NoStream{}
		if view.exists {
			exact = esdb.Revision(view.last)
		}
		wr, err := c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: exact}, data...)
		if err == nil {
			first := uint64(0)
			if view.exists {
				first = view.last + 1
			}
			pos := domain.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition}
			l.ids.appended(stream, first, events, pos)
			return domain.AppendResult{NextRevision: wr.NextExpectedVersion, Position: pos}, nil
		}
		if !isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
			if ctx.Err() != nil {
				return domain.AppendResult{}, ctx.Err()
			}
			return domain.AppendResult{}, l.fail(c, err)
		}
		if attempt >= l.cfg.AppendAttempts {
			return domain.AppendResult{}, fmt.Errorf("still racing other writers after %d attempts: %w", attempt, domain.ErrUnavailable)
		}
		// Someone else wrote in between: rescan and decide again.
	}
}

// toEventData validates the call and converts it for the client.
func toEventData(stream string, events []domain.EventData) ([]esdb.EventData, error) {
	if stream == "" {
		return nil, fmt.Errorf("empty stream name: %w", domain.ErrInvalidEvent)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("no events: %w", domain.ErrInvalidEvent)
	}
	out := make([]esdb.EventData, len(events))
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		id, err := uuid.Parse(e.ID)
		switch {
		case err != nil || id.String() != e.ID:
			return nil, fmt.Errorf("event %d: id %q is not a lower-case canonical uuid: %w", i, e.ID, domain.ErrInvalidEvent)
		case id == uuid.Nil:
			return nil, fmt.Errorf("event %d: nil uuid: %w", i, domain.ErrInvalidEvent) // the client would replace it
		case e.Type == "":
			return nil, fmt.Errorf("event %d: empty type: %w", i, domain.ErrInvalidEvent)
		case seen[e.ID]:
			return nil, fmt.Errorf("event %d: id %s twice in one call: %w", i, e.ID, domain.ErrInvalidEvent)
		}
		seen[e.ID] = true
		out[i] = esdb.EventData{
			EventID:     id,
			EventType:   e.Type,
			ContentType: esdb.ContentTypeJson, // the zero value is binary
			Data:        e.Data,
			Metadata:    e.Metadata,
		}
	}
	return out, nil
}

// streamView is what a scan learnt about a stream's end.
type streamView struct {
	exists bool
	last   uint64
}

// scan reads the events of stream the id cache has not seen yet, then
// looks the call's ids up, under one lock with the merge.
func (l *Log) scan(ctx context.Context, c *esdb.Client, stream string, events []domain.EventData) (streamView, []idRef, int, error) {
	for {
		from := l.ids.next(stream)
		var got []*esdb.RecordedEvent
		err := l.read(ctx, c, func() (*esdb.ReadStream, error) {
			return c.ReadStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(from)}, ^uint64(0))
		}, func(e *esdb.RecordedEvent) bool { got = append(got, e); return true })
		if errors.Is(err, domain.ErrStreamNotFound) {
			l.ids.forget(stream) // absent, or deleted since we looked
			return streamView{}, nil, 0, nil
		}
		if err != nil {
			return streamView{}, nil, 0, err
		}
		if view, refs, found, ok := l.ids.merge(stream, from, got, events); ok {
			return view, refs, found, nil
		}
		// The entry was evicted meanwhile: what we read does not connect.
	}
}

func (l *Log) positionOf(ctx context.Context, stream string, rev uint64) (domain.Position, error) {
	got, err := l.ReadStream(ctx, stream, rev, domain.Forwards, 1)
	if err != nil {
		return domain.Position{}, err
	}
	if len(got) != 1 || got[0].Revision != rev {
		return domain.Position{}, fmt.Errorf("event %d of %s vanished: %w", rev, stream, domain.ErrStreamNotFound)
	}
	return got[0].Position, nil
}

// idRef is where an event id sits in its stream.
type idRef struct {
	rev    uint64
	pos    domain.Position
	hasPos bool // positions of our own appends are known for the last event only
}

type streamIDs struct {
	ids  map[string]idRef
	next uint64 // every revision below next has been seen
	last uint64 // last revision seen (valid when next > 0)
}

// idCache remembers, per stream, the ids already stored. Events never
// change once written, so a scan only needs what came after next.
type idCache struct {
	mu      sync.Mutex
	max     int
	streams map[string]*streamIDs
}

func newIDCache(max int) *idCache { return &idCache{max: max, streams: map[string]*streamIDs{}} }

func (c *idCache) next(stream string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[stream]; s != nil {
		return s.next
	}
	return 0
}

func (c *idCache) forget(stream string) {
	c.mu.Lock()
	delete(c.streams, stream)
	c.mu.Unlock()
}

// entry returns the stream's entry, making room when the cache is full.
func (c *idCache) entry(stream string) *streamIDs {
	s := c.streams[stream]
	if s == nil {
		for k := range c.streams {
			if len(c.streams) < c.max {
				break
			}
			delete(c.streams, k) // arbitrary victim: it only costs a rescan
		}
		s = &streamIDs{ids: map[string]idRef{}}
		c.streams[stream] = s
	}
	return s
}

// merge adds events read from revision from, and looks events up. It
// fails when the entry no longer reaches from (evicted meanwhile).
func (c *idCache) merge(stream string, from uint64, read []*esdb.RecordedEvent, events []domain.EventData) (streamView, []idRef, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.entry(stream)
	if from > s.next {
		return streamView{}, nil, 0, false
	}
	for _, e := range read {
		if e.EventNumber < s.next {
			continue // merged by a concurrent scan
		}
		s.ids[e.EventID.String()] = idRef{rev: e.EventNumber, pos: domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}, hasPos: true}
		s.next, s.last = e.EventNumber+1, e.EventNumber
	}
	if s.next == 0 {
		delete(c.streams, stream)
		return streamView{}, nil, 0, true
	}
	refs := make([]idRef, len(events))
	found := 0
	for i, e := range events {
		if r, ok := s.ids[e.ID]; ok {
			refs[i] = r
			found++
		}
	}
	return streamView{exists: true, last: s.last}, refs, found, true
}

// appended records a successful append starting at revision first.
func (c *idCache) appended(stream string, first uint64, events []domain.EventData, lastPos domain.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.entry(stream)
	if s.next != first {
		return // a scan got there first or there is a gap: leave it to the next scan
	}
	for i, e := range events {
		ref := idRef{rev: first + uint64(i)}
		if i == len(events)-1 {
			ref.pos, ref.hasPos = lastPos, true
		}
		s.ids[e.ID] = ref
	}
	s.last = first + uint64(len(events)) - 1
	s.next = s.last + 1
}
