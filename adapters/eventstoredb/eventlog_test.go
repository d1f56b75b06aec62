package eventstoredb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/specs/storespec"
)

func open(t testing.TB, cfg eventstoredb.Config) *eventstoredb.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := eventstoredb.Open(ctx, cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestContract runs the port's contract suite against the adapter and the
// in-process protocol server (a fresh server per subtest).
func TestContract(t *testing.T) {
	storespec.Run(t, func(t *testing.T) domain.EventLog {
		srv := esdbtest.MustStart(t)
		return open(t, eventstoredb.Config{ConnectionString: srv.ConnectionString()})
	})
}

// TestContractRealServer runs the suite against a real EventStoreDB.
func TestContractRealServer(t *testing.T) {
	url := os.Getenv("LEDGER_TEST_ESDB_URL")
	if url == "" {
		t.Skip("set LEDGER_TEST_ESDB_URL=esdb://… to run against a real EventStoreDB")
	}
	storespec.RunWith(t, storespec.Features{SharedLog: true}, func(t *testing.T) domain.EventLog {
		return open(t, eventstoredb.Config{ConnectionString: url})
	})
}

func ev(typ string) domain.EventData {
	return domain.EventData{ID: uuid.NewString(), Type: typ, Data: []byte(`{"a":1}`), Metadata: []byte(`{"$correlationId":"x","$causationId":"y"}`)}
}

// TestAppendIsExactOnTheWire: a retry with Any, after the events became
// the tail, is not stored twice (the server alone would store it again).
func TestRetryAfterTailMovedIsDuplicate(t *testing.T) {
	srv := esdbtest.MustStart(t)
	l := open(t, eventstoredb.Config{ConnectionString: srv.ConnectionString()})
	ctx := context.Background()
	a := ev("A")
	first, err := l.Append(ctx, "order-1", domain.Any, a)
	require.NoError(t, err)

	// A second adapter (another process) has no cache: it must scan.
	other := open(t, eventstoredb.Config{ConnectionString: srv.ConnectionString()})
	again, err := other.Append(ctx, "order-1", domain.Exact(0), a)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Position, again.Position)

	// What the raw client writes shows why: Revision == current is not deduplicated.
	conf, err := esdb.ParseConnectionString(srv.ConnectionString())
	require.NoError(t, err)
	conf.Logger = esdb.NoopLogging()
	raw, err := esdb.NewClient(conf)
	require.NoError(t, err)
	defer raw.Close()
	_, err = raw.AppendToStream(ctx, "raw-1", esdb.AppendToStreamOptions{}, esdb.EventData{EventID: uuid.MustParse(a.ID), EventType: "A", ContentType: esdb.ContentTypeJson, Data: a.Data})
	require.NoError(t, err)
	_, err = raw.AppendToStream(ctx, "raw-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, esdb.EventData{EventID: uuid.MustParse(a.ID), EventType: "A", ContentType: esdb.ContentTypeJson, Data: a.Data})
	require.NoError(t, err)
	got, err := l.ReadStream(ctx, "raw-1", 0, domain.Forwards, 0)
	require.NoError(t, err)
	assert.Len(t, got, 2, "the server stores a retry at revision == current twice")

	stored, err := l.ReadStream(ctx, "order-1", 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, string(a.Metadata), string(stored[0].Metadata), "metadata passes through")
}

// TestClassify drives each server error through the real client and
// checks what the adapter makes of it.
func TestClassify(t *testing.T) {
	srv := esdbtest.MustStart(t)
	l := open(t, eventstoredb.Config{ConnectionString: srv.ConnectionString()})
	ctx := context.Background()
	cases := []struct {
		code     codes.Code
		trailers []string
		want     error
	}{
		{codes.Unavailable, nil, domain.ErrUnavailable},
		{codes.Aborted, nil, domain.ErrUnavailable}, // commit timeout
		{codes.DeadlineExceeded, nil, domain.ErrUnavailable},
		{codes.PermissionDenied, []string{"exception", "access-denied"}, eventstoredb.ErrAccessDenied},
		{codes.Unauthenticated, nil, eventstoredb.ErrUnauthenticated},
		{codes.Unimplemented, nil, eventstoredb.ErrUnsupported},
		{codes.FailedPrecondition, []string{"exception", "stream-deleted", "stream-name", "s"}, domain.ErrStreamNotFound},
	}
	for _, tc := range cases {
		srv.FailNext("Append", tc.code, "injected", tc.trailers...)
		_, err := l.Append(ctx, "s-"+tc.code.String(), domain.NoStream, ev("T"))
		require.Error(t, err, tc.code.String())
		assert.ErrorIs(t, err, tc.want, tc.code.String())
		var ee *esdb.Error
		assert.True(t, errors.As(err, &ee), "the client error stays in the chain")
		assert.True(t, strings.HasPrefix(err.Error(), "append s-"), "wrapped with context: %v", err)
	}
	// Unknown server failures are passed on unclassified.
	srv.FailNext("Read", codes.InvalidArgument, "injected")
	_, err := l.ReadStream(ctx, "x", 0, domain.Forwards, 0)
	require.Error(t, err)
	for _, sentinel := range []error{domain.ErrUnavailable, domain.ErrStreamNotFound, domain.ErrWrongExpectedVersion, eventstoredb.ErrAccessDenied} {
		assert.NotErrorIs(t, err, sentinel)
	}
	// Server WEV after a lost race becomes the typed error.
	_, err = l.Append(ctx, "w", domain.NoStream, ev("T"))
	require.NoError(t, err)
	_, err = l.Append(ctx, "w", domain.NoStream, ev("T"))
	var wev *domain.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	assert.Equal(t, uint64(0), wev.Actual)
	assert.True(t, wev.ActualExists)

	// The server goes away: transient.
	srv.Close()
	_, err = l.ReadStream(ctx, "w", 0, domain.Forwards, 0)
	assert.ErrorIs(t, err, domain.ErrUnavailable)
	_, _, err = l.Head(ctx)
	assert.ErrorIs(t, err, domain.ErrUnavailable)
}

func TestSubscriptionDropIsUnavailable(t *testing.T) {
	srv := esdbtest.MustStart(t)
	l := open(t, eventstoredb.Config{ConnectionString: srv.ConnectionString()})
	ctx := context.Background()
	sub, err := l.Subscribe(ctx, domain.SubscribeOptions{StreamPrefix: "order-"})
	require.NoError(t, err)
	defer sub.Close()
	srv.Close()
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = sub.Next(nctx)
	assert.ErrorIs(t, err, domain.ErrUnavailable)
	_, err = sub.Next(nctx)
	assert.ErrorIs(t, err, domain.ErrUnavailable, "finished after an error")
}

func TestTLSCredentialsAndOverrides(t *testing.T) {
	srv := esdbtest.MustStart(t, esdbtest.WithTLS(), esdbtest.WithUser("admin", "s3cret"))
	ctx := context.Background()
	core, logs := observer.New(zap.DebugLevel)
	base := "esdb://" + srv.Addr() + "?tls=true"

	// CA file and credentials given as overrides.
	l, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: base, TLSCAFile: srv.CAFile(), Username: "admin", Password: "s3cret"}, zap.New(core))
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Append(ctx, "order-1", domain.NoStream, ev("T"))
	require.NoError(t, err)
	_, ok, err := l.Head(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "admin may read $all")

	// Credentials in the connection string; a wrong password.
	_, err = eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: "esdb://admin:wrong@" + srv.Addr() + "?tls=true&tlsCAFile=" + srv.CAFile()}, zap.New(core))
	assert.ErrorIs(t, err, eventstoredb.ErrUnauthenticated)
	assert.NotContains(t, err.Error(), "wrong", "no password in errors")

	// Anonymous: streams yes, $all no.
	anon := open(t, eventstoredb.Config{ConnectionString: base, TLSCAFile: srv.CAFile()})
	_, err = anon.ReadStream(ctx, "order-1", 0, domain.Forwards, 0)
	require.NoError(t, err)
	_, err = anon.ReadAll(ctx, nil, 0)
	assert.ErrorIs(t, err, eventstoredb.ErrAccessDenied)

	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			assert.NotContains(t, fmt.Sprint(v), "s3cret")
			assert.NotContains(t, fmt.Sprint(v), "wrong")
		}
		assert.NotContains(t, e.Message, "s3cret")
	}
}

func TestConfig(t *testing.T) {
	err := eventstoredb.Config{}.Validate()
	assert.ErrorContains(t, err, "connection string is empty")
	err = eventstoredb.Config{ConnectionString: "esdb://u:p@h:2113?tls=false", Username: "x", ReadBatch: -1}.Validate()
	assert.ErrorContains(t, err, "together")
	assert.ErrorContains(t, err, "negative")
	err = eventstoredb.Config{ConnectionString: "esdb://u:pa ss@h:99999x"}.Validate()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "pa ss", "parse errors do not quote the password")
	err = eventstoredb.Config{ConnectionString: "esdb://h:2113?tls=false", TLSCAFile: "/nonexistent"}.Validate()
	assert.ErrorContains(t, err, "tls=false")

	assert.Equal(t, "esdb://***@h:2113?tls=true", eventstoredb.Redact("esdb://admin:changeit@h:2113?tls=true"))
	assert.Equal(t, "esdb://***@a:1,b:2", eventstoredb.Redact("esdb://me@example.com:pw@a:1,b:2"))
	assert.Equal(t, "esdb://h:2113", eventstoredb.Redact("esdb://h:2113"))

	_, err = eventstoredb.Open(context.Background(), eventstoredb.Config{}, nil)
	require.Error(t, err)
}
