package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

func client(t *testing.T, connString string) *esdb.Client {
	t.Helper()
	conf, err := esdb.ParseConnectionString(connString)
	require.NoError(t, err)
	conf.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(conf)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ev(id uuid.UUID, typ string) esdb.EventData {
	return esdb.EventData{EventID: id, EventType: typ, ContentType: esdb.ContentTypeJson, Data: []byte(`{"n":1}`), Metadata: []byte(`{"$correlationId":"c"}`)}
}

func code(t *testing.T, err error) esdb.ErrorCode {
	t.Helper()
	require.Error(t, err)
	var e *esdb.Error
	require.True(t, errors.As(err, &e), "not an *esdb.Error: %v", err)
	return e.Code()
}

func readAllOf(rs *esdb.ReadStream, err error) ([]*esdb.ResolvedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func TestConnectReportsServerVersion(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	v, err := c.GetServerVersion()
	require.NoError(t, err)
	assert.Equal(t, esdb.ServerVersion{Major: 24, Minor: 10, Patch: 0}, *v)

	old := esdbtest.MustStart(t, esdbtest.WithoutServerFeatures())
	c2 := client(t, old.ConnectionString())
	v, err = c2.GetServerVersion()
	require.NoError(t, err)
	assert.Equal(t, esdb.ServerVersion{}, *v, "without ServerFeatures the client treats it as an old server")
}

func TestAppendReadRoundTrip(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	before := time.Now()
	wr, err := c.AppendToStream(ctx, "order-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, ev(a, "A"), ev(b, "B"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), wr.NextExpectedVersion)
	assert.Equal(t, wr.CommitPosition, wr.PreparePosition)
	assert.Greater(t, wr.CommitPosition, uint64(0))

	got, err := readAllOf(c.ReadStream(ctx, "order-1", esdb.ReadStreamOptions{}, 10))
	require.NoError(t, err)
	require.Len(t, got, 2)
	e0, e1 := got[0].Event, got[1].Event
	assert.Equal(t, a, e0.EventID, "structured UUID round trip")
	assert.Equal(t, b, e1.EventID)
	assert.Equal(t, "A", e0.EventType)
	assert.Equal(t, "application/json", e0.ContentType)
	assert.Equal(t, []byte(`{"n":1}`), e0.Data)
	assert.Equal(t, []byte(`{"$correlationId":"c"}`), e0.UserMetadata)
	assert.Len(t, e0.SystemMetadata, 3, "exactly type, content-type, created")
	assert.Equal(t, "order-1", e0.StreamID)
	assert.Equal(t, uint64(0), e0.EventNumber)
	assert.Equal(t, uint64(1), e1.EventNumber)
	assert.Equal(t, wr.CommitPosition, e1.Position.Commit, "append replies with the last event's position")
	assert.Greater(t, e1.Position.Commit-e0.Position.Commit, uint64(1), "positions are not contiguous")
	assert.WithinDuration(t, before, e0.CreatedDate, 5*time.Second)
	require.NotNil(t, got[0].Commit)
	assert.Equal(t, e0.Position.Commit, *got[0].Commit)

	back, err := readAllOf(c.ReadStream(ctx, "order-1", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1))
	require.NoError(t, err)
	require.Len(t, back, 1)
	assert.Equal(t, uint64(1), back[0].Event.EventNumber, "last revision via backwards read from end")

	_, err = readAllOf(c.ReadStream(ctx, "nope", esdb.ReadStreamOptions{}, 10))
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, code(t, err))

	_, err = readAllOf(c.ReadStream(ctx, "order-1", esdb.ReadStreamOptions{From: esdb.End{}}, 10))
	assert.Equal(t, esdb.ErrorCodeUnknown, code(t, err), "forwards from end fails like a real server")

	past, err := readAllOf(c.ReadStream(ctx, "order-1", esdb.ReadStreamOptions{From: esdb.Revision(5)}, 10))
	require.NoError(t, err)
	assert.Empty(t, past)
}

func TestExpectedRevisionAndIdempotency(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	a, b, x := uuid.New(), uuid.New(), uuid.New()
	first, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, ev(a, "T"), ev(b, "T"))
	require.NoError(t, err)

	for _, exp := range []esdb.ExpectedRevision{esdb.NoStream{}, esdb.Any{}, esdb.StreamExists{}} {
		again, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: exp}, ev(a, "T"), ev(b, "T"))
		require.NoError(t, err, "%T", exp)
		assert.Equal(t, *first, *again, "idempotent re-append with %T returns the original result", exp)
	}

	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, ev(x, "T"))
	assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, code(t, err))
	assert.ErrorContains(t, err, "expecting '0' but got '1'")

	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, ev(a, "T"), ev(x, "T"))
	assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, code(t, err), "partial overlap")

	_, err = c.AppendToStream(ctx, "missing", esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, ev(x, "T"))
	assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, code(t, err))
	assert.ErrorContains(t, err, "expecting 'stream_exists' but got 'no_stream'")

	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(7)}, ev(x, "T"))
	assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, code(t, err))

	// Exact revision == current: no idempotency check, a duplicate is written (KurrentDB#1898).
	dup, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(1)}, ev(a, "T"))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), dup.NextExpectedVersion)

	// Exact revision below current with matching ids: idempotent.
	idem, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, ev(b, "T"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), idem.NextExpectedVersion)
	assert.Equal(t, first.CommitPosition, idem.CommitPosition)

	// Validation: an empty event type is rejected by the server.
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), ""))
	assert.Equal(t, esdb.ErrorCodeUnknown, code(t, err))
}

func TestReadAllInclusiveForwardsExclusiveBackwards(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	for i := range 3 {
		_, err := c.AppendToStream(ctx, "r-"+strconv.Itoa(i), esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
		require.NoError(t, err)
	}
	all, err := readAllOf(c.ReadAll(ctx, esdb.ReadAllOptions{}, 100))
	require.NoError(t, err)
	require.Len(t, all, 6, "3 seeded system events + 3")
	assert.Equal(t, "$users", all[0].Event.StreamID, "a real $all starts with system events")
	p := all[4].Event.Position

	fwd, err := readAllOf(c.ReadAll(ctx, esdb.ReadAllOptions{From: p}, 100))
	require.NoError(t, err)
	require.Len(t, fwd, 2)
	assert.Equal(t, p, fwd[0].Event.Position, "forwards from P includes P")

	bwd, err := readAllOf(c.ReadAll(ctx, esdb.ReadAllOptions{From: p, Direction: esdb.Backwards}, 100))
	require.NoError(t, err)
	require.Len(t, bwd, 4)
	assert.Equal(t, all[3].Event.Position, bwd[0].Event.Position, "backwards from P excludes P")

	head, err := readAllOf(c.ReadAll(ctx, esdb.ReadAllOptions{From: esdb.End{}, Direction: esdb.Backwards}, 1))
	require.NoError(t, err)
	require.Len(t, head, 1)
	assert.Equal(t, "r-2", head[0].Event.StreamID)
}

// next skips nothing: it returns every subscription message in order.
func next(t *testing.T, sub *esdb.Subscription) *esdb.SubscriptionEvent {
	t.Helper()
	ch := make(chan *esdb.SubscriptionEvent, 1)
	go func() { ch <- sub.Recv() }()
	select {
	case e := <-ch:
		require.Nil(t, e.SubscriptionDropped, "dropped")
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription message within 5s")
		return nil
	}
}

func TestFilteredSubscriptionSequence(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	w1, err := c.AppendToStream(ctx, "orders-1", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)
	_, err = c.AppendToStream(ctx, "other-1", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)
	w3, err := c.AppendToStream(ctx, "orders-2", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"), ev(uuid.New(), "T"))
	require.NoError(t, err)

	start := esdb.Position{Commit: w1.CommitPosition, Prepare: w1.PreparePosition}
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   start,
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"orders-"}},
	})
	require.NoError(t, err)
	defer sub.Close()

	e := next(t, sub)
	require.NotNil(t, e.EventAppeared, "start is exclusive: orders-1 is skipped")
	assert.Equal(t, "orders-2", e.EventAppeared.Event.StreamID)
	assert.Equal(t, uint64(0), e.EventAppeared.Event.EventNumber)
	e = next(t, sub)
	require.NotNil(t, e.EventAppeared)
	assert.Equal(t, uint64(1), e.EventAppeared.Event.EventNumber)
	e = next(t, sub)
	require.NotNil(t, e.CheckPointReached, "checkpoint at the end of catch-up")
	assert.Equal(t, w3.CommitPosition, e.CheckPointReached.Commit)
	e = next(t, sub)
	require.NotNil(t, e.CaughtUp)

	_, err = c.AppendToStream(ctx, "other-2", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)
	_, err = c.AppendToStream(ctx, "orders-3", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)
	e = next(t, sub)
	require.NotNil(t, e.EventAppeared, "live event, filtered server-side")
	assert.Equal(t, "orders-3", e.EventAppeared.Event.StreamID)

	// From end: confirmation then caught_up at once, no checkpoint.
	live, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   esdb.End{},
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"orders-"}},
	})
	require.NoError(t, err)
	e = next(t, live)
	require.NotNil(t, e.CaughtUp)
	require.Equal(t, 2, s.Subscriptions())
	require.NoError(t, live.Close())
	require.Eventually(t, func() bool { return s.Subscriptions() == 1 }, 5*time.Second, 10*time.Millisecond,
		"closing the client's subscription ends the server handler")
}

func TestCheckpointIntervalAndEventTypeFilter(t *testing.T) {
	s := esdbtest.MustStart(t, esdbtest.WithoutSystemEvents())
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	for i := range 5 {
		_, err := c.AppendToStream(ctx, "x", esdb.AppendToStreamOptions{}, ev(uuid.New(), "Type"+strconv.Itoa(i%2)))
		require.NoError(t, err)
	}
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:            esdb.Start{},
		MaxSearchWindow: 2,
		Filter:          &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: "1$"},
	})
	require.NoError(t, err)
	defer sub.Close()
	var kinds []string
	for {
		e := next(t, sub)
		switch {
		case e.EventAppeared != nil:
			kinds = append(kinds, "E:"+e.EventAppeared.Event.EventType)
		case e.CheckPointReached != nil:
			kinds = append(kinds, "C")
		case e.CaughtUp != nil:
			kinds = append(kinds, "U")
		}
		if e.CaughtUp != nil {
			break
		}
	}
	assert.Equal(t, []string{"E:Type1", "C", "E:Type1", "C", "C", "U"}, kinds)
}

func TestStreamSubscriptionAndUnfilteredAll(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	_, err := c.AppendToStream(ctx, "st", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"), ev(uuid.New(), "T"))
	require.NoError(t, err)
	sub, err := c.SubscribeToStream(ctx, "st", esdb.SubscribeToStreamOptions{From: esdb.Revision(0)})
	require.NoError(t, err)
	defer sub.Close()
	e := next(t, sub)
	require.NotNil(t, e.EventAppeared)
	assert.Equal(t, uint64(1), e.EventAppeared.Event.EventNumber, "stream start revision is exclusive")
	require.NotNil(t, next(t, sub).CaughtUp)
	_, err = c.AppendToStream(ctx, "st", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)
	e = next(t, sub)
	require.NotNil(t, e.EventAppeared)
	assert.Equal(t, uint64(2), e.EventAppeared.Event.EventNumber)

	all, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	require.NoError(t, err)
	defer all.Close()
	e = next(t, all)
	require.NotNil(t, e.EventAppeared)
	assert.Equal(t, "$users", e.EventAppeared.Event.StreamID, "unfiltered $all includes system events")
	for i := 0; i < 5; i++ {
		e = next(t, all)
		require.Nil(t, e.CheckPointReached, "unfiltered subscriptions never checkpoint")
	}
	require.NotNil(t, e.EventAppeared)
	assert.NotNil(t, next(t, all).CaughtUp)
}

func TestErrorsAsTheClientMapsThem(t *testing.T) {
	s := esdbtest.MustStart(t)
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	cases := []struct {
		code     codes.Code
		trailers []string
		want     esdb.ErrorCode
	}{
		{codes.PermissionDenied, []string{"exception", "access-denied"}, esdb.ErrorCodeAccessDenied},
		{codes.FailedPrecondition, []string{"exception", "stream-deleted", "stream-name", "s"}, esdb.ErrorCodeStreamDeleted},
		{codes.Aborted, nil, esdb.ErrorAborted},
		{codes.Unavailable, nil, esdb.ErrorUnavailable},
		{codes.NotFound, []string{"exception", "not-leader"}, esdb.ErrorCodeResourceNotFound},
	}
	for _, tc := range cases {
		s.FailNext("Append", tc.code, "injected", tc.trailers...)
		_, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
		assert.Equal(t, tc.want, code(t, err), "append %v", tc.code)
	}
	s.FailNext("Read", codes.Unavailable, "injected")
	_, err := readAllOf(c.ReadStream(ctx, "s", esdb.ReadStreamOptions{}, 1))
	assert.Equal(t, esdb.ErrorUnavailable, code(t, err))
	// The client reconnects after Unavailable and carries on.
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)

	s.Close()
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	assert.Equal(t, esdb.ErrorUnavailable, code(t, err), "server gone")
}

func TestTLSAndCredentials(t *testing.T) {
	s := esdbtest.MustStart(t, esdbtest.WithTLS(), esdbtest.WithUser("admin", "changeit"))
	ctx := context.Background()
	require.FileExists(t, s.CAFile())

	good := client(t, "esdb://admin:changeit@"+s.ConnectionString()[len("esdb://"):])
	_, err := good.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.NoError(t, err)
	_, err = readAllOf(good.ReadAll(ctx, esdb.ReadAllOptions{}, 10))
	require.NoError(t, err)

	bad := client(t, "esdb://admin:wrong@"+s.ConnectionString()[len("esdb://"):])
	_, err = bad.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	assert.Equal(t, esdb.ErrorCodeUnauthenticated, code(t, err))

	anon := client(t, s.ConnectionString())
	_, err = readAllOf(anon.ReadAll(ctx, esdb.ReadAllOptions{}, 10))
	assert.Equal(t, esdb.ErrorCodeAccessDenied, code(t, err), "anonymous $all read on a secure node")
	_, err = readAllOf(anon.ReadStream(ctx, "s", esdb.ReadStreamOptions{}, 10))
	require.NoError(t, err)

	plain := client(t, "esdb://"+s.Addr()+"?tls=false&maxDiscoverAttempts=1")
	_, err = plain.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	require.Error(t, err, "plaintext client against a TLS server fails discovery")
}
