package storespec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
)

// Features declares what an implementation under test can and cannot do.
// The zero value describes a private, empty store (the embedded log).
type Features struct {
	// SharedLog: the global log may hold events the suite did not write
	// (a shared EventStoreDB: other streams, system events), and Head of a
	// fresh log need not be empty. ReadAll and subscription checks then
	// look only at the suite's own streams.
	SharedLog bool
	// NoSystemStreams: the store refuses appends to "$" streams, so the
	// check that subscriptions skip system streams is not run.
	NoSystemStreams bool
	// Wait bounds how long the suite waits for something that must happen
	// (an event to arrive, a blocked call to return). It is a liveness
	// bound, not a speed target. Default 20s.
	Wait time.Duration
	// Writers is the number of goroutines of the concurrency checks.
	// Default 16.
	Writers int
}

func (f Features) withDefaults() Features {
	if f.Wait <= 0 {
		f.Wait = 20 * time.Second
	}
	if f.Writers <= 0 {
		f.Writers = 16
	}
	return f
}

// Run runs the contract suite with the default [Features].
func Run(t *testing.T, open func(t *testing.T) domain.EventLog) {
	t.Helper()
	RunWith(t, Features{}, open)
}

// RunWith runs the contract suite. open must return a new, ready log for
// the subtest; the suite closes it when the subtest ends (a second Close
// returning ErrClosed is fine) and open registers any other cleanup on t.
func RunWith(t *testing.T, f Features, open func(t *testing.T) domain.EventLog) {
	t.Helper()
	f = f.withDefaults()
	s := &suite{f: f, open: open, run: randomPrefix()}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"AppendAny", s.testAppendAny},
		{"AppendNoStream", s.testAppendNoStream},
		{"AppendStreamExists", s.testAppendStreamExists},
		{"AppendExact", s.testAppendExact},
		{"AppendResultMatchesRead", s.testAppendResultMatchesRead},
		{"InvalidEvents", s.testInvalidEvents},
		{"IdempotentRetry", s.testIdempotentRetry},
		{"IdempotencyIsPerStream", s.testIdempotencyPerStream},
		{"PartialDuplicate", s.testPartialDuplicate},
		{"ReadStream", s.testReadStream},
		{"ReadStreamNotFound", s.testReadStreamNotFound},
		{"ReadAll", s.testReadAll},
		{"Head", s.testHead},
		{"ListStreams", s.testListStreams},
		{"SubscribeCatchUpThenLive", s.testSubscribeCatchUpThenLive},
		{"SubscribeAfterPosition", s.testSubscribeAfter},
		{"SubscribePrefix", s.testSubscribePrefix},
		{"SubscribeSkipsSystemStreams", s.testSubscribeSkipsSystem},
		{"SubscribeSlowReader", s.testSubscribeSlowReader},
		{"SubscribeCloseUnblocksNext", s.testSubscribeClose},
		{"SubscribeContextCancel", s.testSubscribeContext},
		{"ClosedLog", s.testClosed},
		{"ConcurrentExactOneStream", s.testConcurrentExact},
		{"ConcurrentManyStreams", s.testConcurrentManyStreams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct {
	f    Features
	open func(t *testing.T) domain.EventLog
	run  string // random per run, so a shared store never sees the same name twice
}

func randomPrefix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("storespec: random prefix: %v", err))
	}
	return "spec" + hex.EncodeToString(b[:]) + "-"
}

func (s *suite) log(t *testing.T) domain.EventLog {
	t.Helper()
	l := s.open(t)
	require.NotNil(t, l, "open returned nil")
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// stream returns a stream name unique to this run and subtest.
func (s *suite) stream(t *testing.T, name string) string {
	t.Helper()
	sub := strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	return s.run + sub + "-" + name
}

// prefix returns the prefix of every stream the subtest creates.
func (s *suite) prefix(t *testing.T) string { return s.stream(t, "") }

func (s *suite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.f.Wait+time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ev builds a valid event with a fresh id and a ~100 byte JSON body.
func ev(typ string, n int) domain.EventData {
	return domain.EventData{
		ID:       uuid.NewString(),
		Type:     typ,
		Data:     []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", 80))),
		Metadata: []byte(fmt.Sprintf(`{"$correlationId":"c-%d"}`, n)),
	}
}

func evs(typ string, from, count int) []domain.EventData {
	out := make([]domain.EventData, count)
	for i := range out {
		out[i] = ev(typ, from+i)
	}
	return out
}

func requireWEV(t *testing.T, err error, stream string, expected domain.ExpectedRevision, actual uint64, exists bool) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, domain.ErrWrongExpectedVersion)
	var wev *domain.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	assert.Equal(t, stream, wev.Stream)
	assert.Equal(t, expected, wev.Expected)
	assert.Equal(t, exists, wev.ActualExists, "ActualExists")
	if exists {
		assert.Equal(t, actual, wev.Actual, "Actual")
	}
}

// requireEvents checks that got holds exactly want, in order, from stream
// starting at revision first.
func requireEvents(t *testing.T, stream string, first uint64, want []domain.EventData, got []domain.RecordedEvent) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		assert.Equal(t, stream, g.Stream, "event %d stream", i)
		assert.Equal(t, first+uint64(i), g.Revision, "event %d revision", i)
		assert.Equal(t, w.ID, g.ID, "event %d id", i)
		assert.Equal(t, w.Type, g.Type, "event %d type", i)
		assert.Equal(t, string(w.Data), string(g.Data), "event %d data", i)
		assert.Equal(t, string(w.Metadata), string(g.Metadata), "event %d metadata", i)
		assert.False(t, g.Created.IsZero(), "event %d created", i)
	}
}

func ids(events []domain.RecordedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func dataIDs(events []domain.EventData) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func (s *suite) mustAppend(t *testing.T, l domain.EventLog, stream string, exp domain.ExpectedRevision, events ...domain.EventData) domain.AppendResult {
	t.Helper()
	res, err := l.Append(s.ctx(t), stream, exp, events...)
	require.NoError(t, err, "append %s", stream)
	require.False(t, res.Duplicate, "append %s: unexpected duplicate", stream)
	return res
}

func (s *suite) mustReadStream(t *testing.T, l domain.EventLog, stream string) []domain.RecordedEvent {
	t.Helper()
	got, err := l.ReadStream(s.ctx(t), stream, 0, domain.Forwards, 0)
	require.NoError(t, err, "read %s", stream)
	return got
}

// readOwn reads the whole global log and keeps the events of streams
// starting with prefix.
func (s *suite) readOwn(t *testing.T, l domain.EventLog, after *domain.Position, prefix string) []domain.RecordedEvent {
	t.Helper()
	all, err := l.ReadAll(s.ctx(t), after, 0)
	require.NoError(t, err)
	var own []domain.RecordedEvent
	for _, e := range all {
		if strings.HasPrefix(e.Stream, prefix) {
			own = append(own, e)
		}
	}
	return own
}

// --- append and expected revisions ---

func (s *suite) testAppendAny(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	first := evs("Any", 0, 2)
	res, err := l.Append(ctx, st, domain.Any, first...)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.NextRevision)
	assert.False(t, res.Duplicate)
	second := evs("Any", 2, 1)
	res, err = l.Append(ctx, st, domain.Any, second...)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.NextRevision)
	requireEvents(t, st, 0, append(first, second...), s.mustReadStream(t, l, st))
	// The zero value of ExpectedRevision is Any.
	res, err = l.Append(ctx, st, domain.ExpectedRevision{}, ev("Any", 3))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), res.NextRevision)
}

func (s *suite) testAppendNoStream(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	first := evs("NoStream", 0, 3)
	res, err := l.Append(ctx, st, domain.NoStream, first...)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.NextRevision)
	_, err = l.Append(ctx, st, domain.NoStream, ev("NoStream", 9))
	requireWEV(t, err, st, domain.NoStream, 2, true)
	requireEvents(t, st, 0, first, s.mustReadStream(t, l, st))
}

func (s *suite) testAppendStreamExists(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	_, err := l.Append(ctx, st, domain.StreamExists, ev("Exists", 0))
	requireWEV(t, err, st, domain.StreamExists, 0, false)
	_, err = l.ReadStream(ctx, st, 0, domain.Forwards, 0)
	require.ErrorIs(t, err, domain.ErrStreamNotFound, "a failed append must not create the stream")
	first := ev("Exists", 1)
	s.mustAppend(t, l, st, domain.NoStream, first)
	second := ev("Exists", 2)
	res := s.mustAppend(t, l, st, domain.StreamExists, second)
	assert.Equal(t, uint64(1), res.NextRevision)
	requireEvents(t, st, 0, []domain.EventData{first, second}, s.mustReadStream(t, l, st))
}

func (s *suite) testAppendExact(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	_, err := l.Append(ctx, st, domain.Exact(0), ev("Exact", 0))
	requireWEV(t, err, st, domain.Exact(0), 0, false)

	want := evs("Exact", 1, 2)
	s.mustAppend(t, l, st, domain.NoStream, want[0])
	res := s.mustAppend(t, l, st, domain.Exact(0), want[1])
	assert.Equal(t, uint64(1), res.NextRevision)

	for _, stale := range []uint64{0, 2, 7} {
		_, err = l.Append(ctx, st, domain.Exact(stale), ev("Exact", 100))
		requireWEV(t, err, st, domain.Exact(stale), 1, true)
	}
	more := evs("Exact", 3, 3)
	res = s.mustAppend(t, l, st, domain.Exact(1), more...)
	assert.Equal(t, uint64(4), res.NextRevision)
	requireEvents(t, st, 0, append(want, more...), s.mustReadStream(t, l, st))
}

func (s *suite) testAppendResultMatchesRead(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	a, b := s.stream(t, "a"), s.stream(t, "b")
	r1 := s.mustAppend(t, l, a, domain.NoStream, evs("R", 0, 3)...)
	r2 := s.mustAppend(t, l, b, domain.NoStream, evs("R", 3, 1)...)
	r3 := s.mustAppend(t, l, a, domain.Exact(2), evs("R", 4, 2)...)
	assert.True(t, r1.Position.Less(r2.Position), "positions grow: %v then %v", r1.Position, r2.Position)
	assert.True(t, r2.Position.Less(r3.Position), "positions grow: %v then %v", r2.Position, r3.Position)

	got, err := l.ReadStream(ctx, a, 2, domain.Forwards, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, r1.Position, got[0].Position, "AppendResult.Position is the last event's position")
	got, err = l.ReadStream(ctx, a, domain.EndOfStream, domain.Backwards, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(4), got[0].Revision)
	assert.Equal(t, r3.Position, got[0].Position)

	// Events of one append are consecutive in the global log, in order.
	own := s.readOwn(t, l, nil, s.prefix(t))
	require.Len(t, own, 6)
	wantStreams := []string{a, a, a, b, a, a}
	for i, e := range own {
		assert.Equal(t, wantStreams[i], e.Stream, "global event %d", i)
	}
}

func (s *suite) testInvalidEvents(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	good := ev("Valid", 0)
	cases := map[string]struct {
		stream string
		events []domain.EventData
	}{
		"empty stream":     {"", []domain.EventData{good}},
		"missing id":       {st, []domain.EventData{{Type: "T", Data: []byte(`{}`)}}},
		"missing type":     {st, []domain.EventData{{ID: uuid.NewString(), Data: []byte(`{}`)}}},
		"id not a uuid":    {st, []domain.EventData{{ID: "not-a-uuid", Type: "T", Data: []byte(`{}`)}}},
		"upper-case id":    {st, []domain.EventData{{ID: strings.ToUpper(uuid.NewString()), Type: "T", Data: []byte(`{}`)}}},
		"one bad among ok": {st, []domain.EventData{good, {ID: uuid.NewString(), Data: []byte(`{}`)}}},
		"empty event":      {st, []domain.EventData{{}}},
	}
	for name, c := range cases {
		_, err := l.Append(ctx, c.stream, domain.Any, c.events...)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, domain.ErrInvalidEvent, name)
		assert.NotErrorIs(t, err, domain.ErrWrongExpectedVersion, name)
	}
	_, err := l.ReadStream(ctx, st, 0, domain.Forwards, 0)
	require.ErrorIs(t, err, domain.ErrStreamNotFound, "nothing of an invalid append is stored")
	// The valid event was not stored as part of the rejected call.
	res := s.mustAppend(t, l, st, domain.NoStream, good)
	assert.Equal(t, uint64(0), res.NextRevision)
}

// --- idempotency ---

func (s *suite) testIdempotentRetry(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	batch := evs("Idem", 0, 2)
	first := s.mustAppend(t, l, st, domain.NoStream, batch...)
	require.Equal(t, uint64(1), first.NextRevision)

	retries := []domain.ExpectedRevision{domain.Any, domain.NoStream, domain.Exact(0), domain.StreamExists, domain.Exact(1)}
	for _, exp := range retries {
		res, err := l.Append(ctx, st, exp, batch...)
		require.NoError(t, err, "retry with %s", exp)
		assert.True(t, res.Duplicate, "retry with %s is a duplicate", exp)
		assert.Equal(t, first.NextRevision, res.NextRevision, "retry with %s", exp)
		assert.Equal(t, first.Position, res.Position, "retry with %s", exp)
	}
	// A retry of the first event alone reports where that event is.
	stored := s.mustReadStream(t, l, st)
	res, err := l.Append(ctx, st, domain.NoStream, batch[0])
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, uint64(0), res.NextRevision)
	assert.Equal(t, stored[0].Position, res.Position)

	// Later appends do not stop a stale retry from being recognised.
	later := evs("Idem", 2, 2)
	s.mustAppend(t, l, st, domain.Exact(1), later...)
	res, err = l.Append(ctx, st, domain.Exact(0), batch...)
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, uint64(1), res.NextRevision)
	assert.Equal(t, first.Position, res.Position)

	requireEvents(t, st, 0, append(batch, later...), s.mustReadStream(t, l, st))
	if !s.f.SharedLog {
		h, ok, err := l.Head(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		all, err := l.ReadAll(ctx, nil, 0)
		require.NoError(t, err)
		require.Len(t, all, 4, "nothing stored twice in the global log")
		assert.Equal(t, all[3].Position, h)
	} else {
		assert.Len(t, s.readOwn(t, l, nil, s.prefix(t)), 4, "nothing stored twice in the global log")
	}
}

func (s *suite) testIdempotencyPerStream(t *testing.T) {
	l := s.log(t)
	a, b := s.stream(t, "a"), s.stream(t, "b")
	e := ev("PerStream", 0)
	s.mustAppend(t, l, a, domain.NoStream, e)
	res := s.mustAppend(t, l, b, domain.NoStream, e)
	assert.Equal(t, uint64(0), res.NextRevision)
	requireEvents(t, b, 0, []domain.EventData{e}, s.mustReadStream(t, l, b))
	requireEvents(t, a, 0, []domain.EventData{e}, s.mustReadStream(t, l, a))
}

func (s *suite) testPartialDuplicate(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	batch := evs("Partial", 0, 2)
	s.mustAppend(t, l, st, domain.NoStream, batch...)
	fresh := ev("Partial", 2)
	for _, exp := range []domain.ExpectedRevision{domain.Any, domain.Exact(1), domain.StreamExists} {
		for _, call := range [][]domain.EventData{{batch[1], fresh}, {fresh, batch[0]}, {batch[0], fresh, batch[1]}} {
			_, err := l.Append(ctx, st, exp, call...)
			require.Error(t, err, "partial duplicate with %s", exp)
			assert.ErrorIs(t, err, domain.ErrPartialDuplicate, "partial duplicate with %s", exp)
		}
	}
	requireEvents(t, st, 0, batch, s.mustReadStream(t, l, st))
	res := s.mustAppend(t, l, st, domain.Exact(1), fresh)
	assert.Equal(t, uint64(2), res.NextRevision)
}

// --- reads ---

func (s *suite) testReadStream(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	other := s.stream(t, "a2") // shares a name prefix with st
	want := evs("Read", 0, 10)
	s.mustAppend(t, l, st, domain.NoStream, want[:4]...)
	s.mustAppend(t, l, other, domain.NoStream, evs("Other", 0, 3)...)
	s.mustAppend(t, l, st, domain.Exact(3), want[4:]...)

	got, err := l.ReadStream(ctx, st, 0, domain.Forwards, 0)
	require.NoError(t, err)
	requireEvents(t, st, 0, want, got)
	for i := 1; i < len(got); i++ {
		assert.True(t, got[i-1].Position.Less(got[i].Position), "positions grow within a stream")
	}

	got, err = l.ReadStream(ctx, st, 3, domain.Forwards, 4)
	require.NoError(t, err)
	requireEvents(t, st, 3, want[3:7], got)

	got, err = l.ReadStream(ctx, st, 8, domain.Forwards, 100)
	require.NoError(t, err)
	requireEvents(t, st, 8, want[8:], got)

	got, err = l.ReadStream(ctx, st, 10, domain.Forwards, 0)
	require.NoError(t, err, "reading past the end of an existing stream")
	assert.Empty(t, got)

	got, err = l.ReadStream(ctx, st, domain.EndOfStream, domain.Backwards, 0)
	require.NoError(t, err)
	require.Len(t, got, 10)
	for i, e := range got {
		assert.Equal(t, uint64(9-i), e.Revision)
		assert.Equal(t, want[9-i].ID, e.ID)
	}

	got, err = l.ReadStream(ctx, st, domain.EndOfStream, domain.Backwards, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(9), got[0].Revision)
	assert.Equal(t, want[9].ID, got[0].ID)

	got, err = l.ReadStream(ctx, st, 5, domain.Backwards, 3)
	require.NoError(t, err)
	assert.Equal(t, []string{want[5].ID, want[4].ID, want[3].ID}, ids(got))

	got, err = l.ReadStream(ctx, st, 1, domain.Backwards, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{want[1].ID, want[0].ID}, ids(got))
}

func (s *suite) testReadStreamNotFound(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "missing")
	_, err := l.ReadStream(ctx, st, 0, domain.Forwards, 0)
	require.ErrorIs(t, err, domain.ErrStreamNotFound)
	_, err = l.ReadStream(ctx, st, domain.EndOfStream, domain.Backwards, 10)
	require.ErrorIs(t, err, domain.ErrStreamNotFound)
	// A stream whose name extends an existing one is still missing.
	s.mustAppend(t, l, st+"x", domain.NoStream, ev("X", 0))
	_, err = l.ReadStream(ctx, st, 0, domain.Forwards, 0)
	require.ErrorIs(t, err, domain.ErrStreamNotFound)
}

func (s *suite) testReadAll(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	prefix := s.prefix(t)
	var start *domain.Position
	if s.f.SharedLog {
		if h, ok, err := l.Head(ctx); err == nil && ok {
			start = &h
		}
	}
	type wrote struct {
		stream string
		id     string
	}
	var order []wrote
	for i := 0; i < 12; i++ {
		st := s.stream(t, fmt.Sprintf("s%d", i%3))
		batch := evs("All", i*2, 1+i%2)
		_, err := l.Append(ctx, st, domain.Any, batch...)
		require.NoError(t, err)
		for _, e := range batch {
			order = append(order, wrote{st, e.ID})
		}
	}
	own := s.readOwn(t, l, start, prefix)
	require.Len(t, own, len(order))
	for i, e := range own {
		assert.Equal(t, order[i].stream, e.Stream, "global event %d", i)
		assert.Equal(t, order[i].id, e.ID, "global event %d", i)
		if i > 0 {
			assert.True(t, own[i-1].Position.Less(e.Position), "positions strictly increase: %v then %v", own[i-1].Position, e.Position)
		}
	}

	if !s.f.SharedLog {
		all, err := l.ReadAll(ctx, nil, 0)
		require.NoError(t, err)
		require.Len(t, all, len(order), "a fresh log holds only what was appended")

		// Paging with max and after visits every event once, in order.
		var paged []domain.RecordedEvent
		var after *domain.Position
		for {
			page, err := l.ReadAll(ctx, after, 5)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 5)
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			p := page[len(page)-1].Position
			after = &p
		}
		assert.Equal(t, ids(all), ids(paged))

		// After the last position there is nothing.
		last := all[len(all)-1].Position
		rest, err := l.ReadAll(ctx, &last, 0)
		require.NoError(t, err)
		assert.Empty(t, rest)

		// After a middle position: strictly after it.
		mid := all[6].Position
		rest, err = l.ReadAll(ctx, &mid, 3)
		require.NoError(t, err)
		assert.Equal(t, ids(all[7:10]), ids(rest))
		// The zero position sorts before every event.
		rest, err = l.ReadAll(ctx, &domain.Position{}, 0)
		require.NoError(t, err)
		assert.Equal(t, ids(all), ids(rest))
	} else {
		mid := own[6].Position
		rest := s.readOwn(t, l, &mid, prefix)
		assert.Equal(t, ids(own[7:]), ids(rest))
	}
}

func (s *suite) testHead(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	if !s.f.SharedLog {
		_, ok, err := l.Head(ctx)
		require.NoError(t, err)
		assert.False(t, ok, "a fresh log is empty")
	}
	res := s.mustAppend(t, l, s.stream(t, "a"), domain.NoStream, evs("Head", 0, 3)...)
	h, ok, err := l.Head(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	if s.f.SharedLog {
		assert.False(t, h.Less(res.Position), "head %v is at or after the last append %v", h, res.Position)
	} else {
		assert.Equal(t, res.Position, h)
	}
	res2 := s.mustAppend(t, l, s.stream(t, "b"), domain.NoStream, ev("Head", 3))
	h2, ok, err := l.Head(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, h.Less(h2), "head moves forward")
	assert.False(t, h2.Less(res2.Position))
}

func (s *suite) testListStreams(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	prefix := s.stream(t, "ls-")
	names := []string{"d", "a", "c", "b2", "b", "e"}
	last := map[string]uint64{}
	for i, n := range names {
		st := prefix + n
		s.mustAppend(t, l, st, domain.NoStream, evs("List", 0, i%3+1)...)
		last[st] = uint64(i % 3)
	}
	// More events later, and streams that do not match the prefix.
	s.mustAppend(t, l, prefix+"a", domain.Exact(last[prefix+"a"]), evs("List", 9, 2)...)
	last[prefix+"a"] += 2
	s.mustAppend(t, l, s.stream(t, "other-a"), domain.NoStream, ev("List", 0))
	s.mustAppend(t, l, s.stream(t, "ls"), domain.NoStream, ev("List", 0))

	want := []string{prefix + "a", prefix + "b", prefix + "b2", prefix + "c", prefix + "d", prefix + "e"}
	all, err := l.ListStreams(ctx, prefix, "", 100)
	require.NoError(t, err)
	var got []string
	for _, si := range all {
		got = append(got, si.Name)
		assert.Equal(t, last[si.Name], si.LastRevision, si.Name)
		assert.Equal(t, last[si.Name]+1, si.Count, si.Name)
	}
	assert.Equal(t, want, got)

	// Paging: limit 4 then after the last name.
	page, err := l.ListStreams(ctx, prefix, "", 4)
	require.NoError(t, err)
	require.Len(t, page, 4)
	page2, err := l.ListStreams(ctx, prefix, page[3].Name, 4)
	require.NoError(t, err)
	var paged []string
	for _, si := range append(page, page2...) {
		paged = append(paged, si.Name)
	}
	assert.Equal(t, want, paged)
	page3, err := l.ListStreams(ctx, prefix, page2[len(page2)-1].Name, 4)
	require.NoError(t, err)
	assert.Empty(t, page3)

	// after need not be an existing name.
	page, err = l.ListStreams(ctx, prefix, prefix+"b1", 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, prefix+"b2", page[0].Name)
	assert.Equal(t, prefix+"c", page[1].Name)

	none, err := l.ListStreams(ctx, s.stream(t, "nothing-"), "", 10)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// --- subscriptions ---

func (s *suite) next(t *testing.T, sub domain.Subscription) domain.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.f.Wait)
	defer cancel()
	e, err := sub.Next(ctx)
	require.NoError(t, err, "waiting for the next event")
	return e
}

// nextOwn skips events of streams without prefix (a shared log).
func (s *suite) nextOwn(t *testing.T, sub domain.Subscription, prefix string) domain.RecordedEvent {
	t.Helper()
	for {
		e := s.next(t, sub)
		if strings.HasPrefix(e.Stream, prefix) {
			return e
		}
	}
}

func (s *suite) subscribe(t *testing.T, l domain.EventLog, opts domain.SubscribeOptions) domain.Subscription {
	t.Helper()
	sub, err := l.Subscribe(s.ctx(t), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func (s *suite) testSubscribeCatchUpThenLive(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	prefix := s.prefix(t)
	st := s.stream(t, "a")
	const stored, live = 300, 300
	var want []string
	for i := 0; i < stored; i += 10 {
		batch := evs("Sub", i, 10)
		s.mustAppend(t, l, st, domain.Any, batch...)
		want = append(want, dataIDs(batch)...)
	}
	liveEvents := evs("Sub", stored, live)
	want = append(want, dataIDs(liveEvents)...)

	sub := s.subscribe(t, l, domain.SubscribeOptions{StreamPrefix: prefix})
	// Append while the subscriber is still catching up.
	done := make(chan error, 1)
	go func() {
		for i, e := range liveEvents {
			if _, err := l.Append(ctx, st, domain.Exact(uint64(stored+i-1)), e); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var got []domain.RecordedEvent
	for len(got) < len(want) {
		got = append(got, s.next(t, sub))
	}
	require.NoError(t, <-done)
	require.Equal(t, want, ids(got), "no gap, no duplicate, in order")
	for i, e := range got {
		assert.Equal(t, uint64(i), e.Revision)
		if i > 0 {
			assert.True(t, got[i-1].Position.Less(e.Position))
		}
	}
	// Nothing is delivered twice: the next event is the next append.
	sentinel := ev("Sentinel", 0)
	s.mustAppend(t, l, st, domain.Exact(stored+live-1), sentinel)
	assert.Equal(t, sentinel.ID, s.next(t, sub).ID)
}

func (s *suite) testSubscribeAfter(t *testing.T) {
	l := s.log(t)
	prefix := s.prefix(t)
	st := s.stream(t, "a")
	batch := evs("After", 0, 10)
	s.mustAppend(t, l, st, domain.NoStream, batch...)
	stored := s.mustReadStream(t, l, st)
	after := stored[4].Position
	sub := s.subscribe(t, l, domain.SubscribeOptions{StreamPrefix: prefix, After: &after})
	for i := 5; i < 10; i++ {
		e := s.next(t, sub)
		assert.Equal(t, batch[i].ID, e.ID)
		assert.Equal(t, stored[i].Position, e.Position)
	}
	more := ev("After", 10)
	s.mustAppend(t, l, st, domain.Exact(9), more)
	assert.Equal(t, more.ID, s.next(t, sub).ID)

	// Subscribing at the head delivers only what comes next.
	last := stored[9].Position
	s2 := s.subscribe(t, l, domain.SubscribeOptions{StreamPrefix: prefix, After: &last})
	assert.Equal(t, more.ID, s.next(t, s2).ID)
}

func (s *suite) testSubscribePrefix(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	order := s.stream(t, "order-")
	other := s.stream(t, "other-")
	var want []string
	for i := 0; i < 20; i++ {
		o := ev("Prefix", i)
		_, err := l.Append(ctx, fmt.Sprintf("%s%d", order, i%4), domain.Any, o)
		require.NoError(t, err)
		want = append(want, o.ID)
		_, err = l.Append(ctx, fmt.Sprintf("%s%d", other, i%4), domain.Any, ev("Prefix", i))
		require.NoError(t, err)
	}
	sub := s.subscribe(t, l, domain.SubscribeOptions{StreamPrefix: order})
	var got []string
	for range want {
		e := s.next(t, sub)
		require.True(t, strings.HasPrefix(e.Stream, order), "stream %s does not match the prefix", e.Stream)
		got = append(got, e.ID)
	}
	assert.Equal(t, want, got)
	// Live: an event of another stream is skipped, the matching one arrives.
	_, err := l.Append(ctx, other+"x", domain.Any, ev("Prefix", 99))
	require.NoError(t, err)
	o := ev("Prefix", 100)
	_, err = l.Append(ctx, order+"x", domain.Any, o)
	require.NoError(t, err)
	assert.Equal(t, o.ID, s.next(t, sub).ID)
}

func (s *suite) testSubscribeSkipsSystem(t *testing.T) {
	if s.f.NoSystemStreams {
		t.Skip("the store refuses appends to system streams")
	}
	l := s.log(t)
	ctx := s.ctx(t)
	var after *domain.Position
	if h, ok, err := l.Head(ctx); err == nil && ok {
		after = &h
	}
	sub := s.subscribe(t, l, domain.SubscribeOptions{After: after})
	s.mustAppend(t, l, "$"+s.stream(t, "sys"), domain.Any, ev("System", 0))
	normal := ev("Normal", 1)
	s.mustAppend(t, l, s.stream(t, "a"), domain.Any, normal)
	for {
		e := s.next(t, sub)
		require.False(t, strings.HasPrefix(e.Stream, "$"), "system stream %s delivered", e.Stream)
		if e.ID == normal.ID {
			break
		}
	}
}

func (s *suite) testSubscribeSlowReader(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	prefix := s.prefix(t)
	sub := s.subscribe(t, l, domain.SubscribeOptions{StreamPrefix: prefix})
	// The subscriber reads nothing while many appends complete: appends
	// must not wait for it, and it must not lose anything.
	var want []string
	for i := 0; i < 100; i++ {
		batch := evs("Slow", i*20, 20)
		_, err := l.Append(ctx, s.stream(t, fmt.Sprintf("s%d", i%7)), domain.Any, batch...)
		require.NoError(t, err)
		want = append(want, dataIDs(batch)...)
	}
	var got []string
	for range want {
		got = append(got, s.nextOwn(t, sub, prefix).ID)
	}
	assert.Equal(t, want, got)
}

func (s *suite) testSubscribeClose(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	prefix := s.prefix(t)
	e := ev("Close", 0)
	s.mustAppend(t, l, s.stream(t, "a"), domain.NoStream, e)
	sub, err := l.Subscribe(ctx, domain.SubscribeOptions{StreamPrefix: prefix})
	require.NoError(t, err)
	assert.Equal(t, e.ID, s.next(t, sub).ID)

	errc := make(chan error, 1)
	go func() {
		_, err := sub.Next(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Next block; it must return either way
	require.NoError(t, sub.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, domain.ErrClosed)
	case <-time.After(s.f.Wait):
		t.Fatal("Next still blocked after Close")
	}
	_, err = sub.Next(ctx)
	assert.ErrorIs(t, err, domain.ErrClosed, "Next after Close")

	// Closing the log finishes its subscriptions.
	sub2, err := l.Subscribe(ctx, domain.SubscribeOptions{StreamPrefix: prefix})
	require.NoError(t, err)
	assert.Equal(t, e.ID, s.next(t, sub2).ID)
	go func() {
		_, err := sub2.Next(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, l.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, domain.ErrClosed)
	case <-time.After(s.f.Wait):
		t.Fatal("Next still blocked after the log was closed")
	}
	_ = sub2.Close()
}

func (s *suite) testSubscribeContext(t *testing.T) {
	l := s.log(t)
	prefix := s.prefix(t)
	sub := s.subscribe(t, l, domain.SubscribeOptions{StreamPrefix: prefix})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctx)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(s.f.Wait):
		t.Fatal("Next still blocked after its context was cancelled")
	}
}

func (s *suite) testClosed(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "a")
	s.mustAppend(t, l, st, domain.NoStream, ev("Closed", 0))
	require.NoError(t, l.Close())
	_, err := l.Append(ctx, st, domain.Any, ev("Closed", 1))
	assert.ErrorIs(t, err, domain.ErrClosed, "Append")
	_, err = l.ReadStream(ctx, st, 0, domain.Forwards, 0)
	assert.ErrorIs(t, err, domain.ErrClosed, "ReadStream")
	_, err = l.ReadAll(ctx, nil, 0)
	assert.ErrorIs(t, err, domain.ErrClosed, "ReadAll")
	_, err = l.Subscribe(ctx, domain.SubscribeOptions{})
	assert.ErrorIs(t, err, domain.ErrClosed, "Subscribe")
	_, err = l.ListStreams(ctx, "", "", 10)
	assert.ErrorIs(t, err, domain.ErrClosed, "ListStreams")
	_, _, err = l.Head(ctx)
	assert.ErrorIs(t, err, domain.ErrClosed, "Head")
}

// --- concurrency ---

// testConcurrentExact: every round, all writers append to one stream
// expecting the same revision; exactly one wins.
func (s *suite) testConcurrentExact(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	st := s.stream(t, "hot")
	const rounds = 25
	n := s.f.Writers
	winners := make([]string, rounds)
	for r := 0; r < rounds; r++ {
		exp := domain.NoStream
		if r > 0 {
			exp = domain.Exact(uint64(r - 1))
		}
		type outcome struct {
			id  string
			res domain.AppendResult
			err error
		}
		out := make([]outcome, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < n; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := ev("Race", r*n+w)
				<-start
				res, err := l.Append(ctx, st, exp, e)
				out[w] = outcome{e.ID, res, err}
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, o := range out {
			if o.err == nil {
				won++
				winners[r] = o.id
				assert.Equal(t, uint64(r), o.res.NextRevision, "round %d", r)
				assert.False(t, o.res.Duplicate)
				continue
			}
			requireWEV(t, o.err, st, exp, uint64(r), true)
		}
		require.Equal(t, 1, won, "round %d: exactly one winner", r)
	}
	got := s.mustReadStream(t, l, st)
	require.Len(t, got, rounds)
	assert.Equal(t, winners, ids(got))
	for i, e := range got {
		assert.Equal(t, uint64(i), e.Revision, "no holes")
	}
	info, err := l.ListStreams(ctx, st, "", 10)
	require.NoError(t, err)
	require.Len(t, info, 1)
	assert.Equal(t, uint64(rounds-1), info[0].LastRevision)
}

// testConcurrentManyStreams: writers append to their own streams at once;
// everything lands, once, in order.
func (s *suite) testConcurrentManyStreams(t *testing.T) {
	l := s.log(t)
	ctx := s.ctx(t)
	prefix := s.prefix(t)
	n := s.f.Writers
	const streamsPer, appendsPer = 4, 6
	want := make(map[string][]string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := 0; a < appendsPer; a++ {
				for k := 0; k < streamsPer; k++ {
					st := s.stream(t, fmt.Sprintf("w%d-%d", w, k))
					batch := evs("Many", a, 1+a%3)
					exp := domain.NoStream
					if a > 0 {
						mu.Lock()
						exp = domain.Exact(uint64(len(want[st]) - 1))
						mu.Unlock()
					}
					if _, err := l.Append(ctx, st, exp, batch...); err != nil {
						errs <- fmt.Errorf("append %s: %w", st, err)
						return
					}
					mu.Lock()
					want[st] = append(want[st], dataIDs(batch)...)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, want, n*streamsPer)
	total := 0
	for st, w := range want {
		got := s.mustReadStream(t, l, st)
		assert.Equal(t, w, ids(got), st)
		total += len(w)
	}
	own := s.readOwn(t, l, nil, prefix)
	require.Len(t, own, total, "every event once in the global log")
	next := map[string]uint64{}
	for i, e := range own {
		if i > 0 {
			require.True(t, own[i-1].Position.Less(e.Position), "positions strictly increase")
		}
		assert.Equal(t, next[e.Stream], e.Revision, "stream %s in revision order", e.Stream)
		next[e.Stream] = e.Revision + 1
	}
}
