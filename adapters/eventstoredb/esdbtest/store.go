package esdbtest

import (
	"strings"
	"sync"
	"time"
)

// record is one event in the global log.
type record struct {
	stream   string
	revision uint64
	pos      uint64 // commit == prepare, as for every append since v20
	id       [16]byte
	typ      string
	isJSON   bool
	created  int64 // .NET ticks since the Unix epoch
	data     []byte
	meta     []byte
}

// store is the in-memory transaction log. Positions grow by roughly the
// size a real record would take, so they are opaque, non-contiguous and
// never confused with revisions.
type store struct {
	mu      sync.Mutex
	log     []*record
	streams map[string][]int // stream -> indexes into log
	byID    map[[16]byte]int // committed-events cache: id -> last record index
	nextPos uint64           // position of the next record
	notify  chan struct{}    // closed and replaced on every commit
	now     func() time.Time
}

func newStore() *store {
	return &store{
		streams: map[string][]int{},
		byID:    map[[16]byte]int{},
		nextPos: 512, // real logs never start at 0 (chunk header, epoch records)
		notify:  make(chan struct{}),
		now:     time.Now,
	}
}

// proposed is an event of an append request.
type proposed struct {
	id     [16]byte
	typ    string
	isJSON bool
	data   []byte
	meta   []byte
}

// expectation of an append: any, no stream, stream exists or an exact
// revision.
type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectRevision
)

type expectation struct {
	kind expectKind
	rev  uint64
}

// appendOutcome is what the server answers.
type appendOutcome struct {
	wrong   bool   // wrong expected version
	exists  bool   // the stream has events (current revision valid)
	current uint64 // last revision (success: of the events the reply is about)
	pos     uint64 // success: position of that event
	hasPos  bool
}

// lastRevision returns the stream's current revision, or -1.
func (s *store) lastRevision(stream string) int64 {
	idx := s.streams[stream]
	if len(idx) == 0 {
		return -1
	}
	return int64(s.log[idx[len(idx)-1]].revision)
}

// append applies a real server's rules, then writes. Expected revision:
// any writes; no_stream needs the stream absent, stream_exists present; an
// exact revision must be the current one or below. Idempotency, checked
// first: with any or stream_exists the ids are looked up in the
// committed-events cache (none found: write; all: the original result;
// some: wrong expected version); with no_stream on an existing stream or
// an exact revision below the current one, the ids must be the events
// that follow it (else wrong expected version). An exact revision equal
// to the current one is not checked: a retry is written twice.
func (s *store) append(stream string, exp expectation, events []proposed) appendOutcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.lastRevision(stream)
	wev := func() appendOutcome {
		return appendOutcome{wrong: true, exists: cur >= 0, current: uint64(max(cur, 0))}
	}

	switch exp.kind {
	case expectNoStream:
		if cur >= 0 {
			return s.checkFrom(stream, -1, cur, events)
		}
	case expectStreamExists:
		if cur < 0 {
			return wev()
		}
		if out, done := s.checkCache(stream, cur, events); done {
			return out
		}
	case expectAny:
		if out, done := s.checkCache(stream, cur, events); done {
			return out
		}
	case expectRevision:
		e := int64(exp.rev)
		if exp.rev > 1<<62 || e > cur {
			return wev()
		}
		if e < cur {
			return s.checkFrom(stream, e, cur, events)
		}
		// e == cur: no idempotency check at all (KurrentDB#1898).
	}
	return s.write(stream, cur, events)
}

// checkCache is the best-effort check for any / stream_exists: every id
// looked up in the committed-events cache.
func (s *store) checkCache(stream string, cur int64, events []proposed) (appendOutcome, bool) {
	if len(events) == 0 {
		return appendOutcome{}, false
	}
	var last *record
	for i, ev := range events {
		idx, ok := s.byID[ev.id]
		if !ok || s.log[idx].stream != stream {
			if i == 0 {
				return appendOutcome{}, false // not a retry: write normally
			}
			// CorruptedIdempotency, reported as wrong expected version.
			return appendOutcome{wrong: true, exists: cur >= 0, current: uint64(max(cur, 0))}, true
		}
		last = s.log[idx]
	}
	return appendOutcome{exists: true, current: last.revision, pos: last.pos, hasPos: true}, true
}

// checkFrom compares the request's ids with the events at revisions
// e+1, e+2, … (exact expected revision below the current one).
func (s *store) checkFrom(stream string, e, cur int64, events []proposed) appendOutcome {
	idx := s.streams[stream]
	wev := appendOutcome{wrong: true, exists: cur >= 0, current: uint64(max(cur, 0))}
	if len(events) == 0 {
		return wev
	}
	var last *record
	for i, ev := range events {
		rev := e + 1 + int64(i)
		if rev > cur {
			return wev // runs past the stream end: CorruptedIdempotency
		}
		r := s.log[idx[rev]]
		if r.id != ev.id {
			return wev // first mismatch: WEV; later mismatch: CorruptedIdempotency
		}
		last = r
	}
	return appendOutcome{exists: true, current: last.revision, pos: last.pos, hasPos: true}
}

func (s *store) write(stream string, cur int64, events []proposed) appendOutcome {
	if len(events) == 0 {
		// A zero-event append writes an empty record: the log moves on.
		s.nextPos += 64
		if cur < 0 {
			return appendOutcome{pos: s.nextPos - 64, hasPos: true}
		}
		return appendOutcome{exists: true, current: uint64(cur), pos: s.nextPos - 64, hasPos: true}
	}
	created := s.now().UnixNano() / 100
	var last *record
	for i, ev := range events {
		r := &record{
			stream:   stream,
			revision: uint64(cur + 1 + int64(i)),
			pos:      s.nextPos,
			id:       ev.id,
			typ:      ev.typ,
			isJSON:   ev.isJSON,
			created:  created,
			data:     ev.data,
			meta:     ev.meta,
		}
		s.nextPos += recordSize(r)
		s.log = append(s.log, r)
		s.streams[stream] = append(s.streams[stream], len(s.log)-1)
		s.byID[ev.id] = len(s.log) - 1
		last = r
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return appendOutcome{exists: true, current: last.revision, pos: last.pos, hasPos: true}
}

// recordSize approximates a prepare record's on-disk size, so positions
// advance like a real log's byte offsets.
func recordSize(r *record) uint64 {
	return uint64(100 + len(r.stream) + len(r.typ) + len(r.data) + len(r.meta))
}

// snapshot returns the log up to now and the channel closed on the next
// commit, taken under one lock so a subscriber misses nothing.
func (s *store) snapshot() ([]*record, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[:len(s.log):len(s.log)], s.notify
}

// streamRecords returns the stream's records (nil when it has none).
func (s *store) streamRecords(stream string) []*record {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.streams[stream]
	out := make([]*record, len(idx))
	for i, j := range idx {
		out[i] = s.log[j]
	}
	return out
}

// isSystem reports whether a stream is a system stream.
func isSystem(stream string) bool { return strings.HasPrefix(stream, "$") }
