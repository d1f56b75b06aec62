package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
)

func openESDB(t *testing.T) (*esdbtest.Server, *eventstoredb.Log) {
	t.Helper()
	srv := esdbtest.MustStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: srv.ConnectionString()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return srv, l
}

func streamLen(t *testing.T, l domain.EventLog, order string) int {
	t.Helper()
	evs, err := l.ReadStream(context.Background(), domain.StreamName(order), 0, domain.Forwards, 0)
	if err != nil {
		require.ErrorIs(t, err, domain.ErrStreamNotFound)
		return 0
	}
	return len(evs)
}

// The append stage classifies each failure once, against the real
// EventStoreDB client and the protocol test server.
func TestAppendClassifiesEachFailureClass(t *testing.T) {
	ctx := context.Background()

	t.Run("store unavailable is transient, and stored once it is back", func(t *testing.T) {
		srv, l := openESDB(t)
		in := &ingest.Ingester{Log: l, Currency: cur}
		srv.Stop()
		out := in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1")})
		assert.Equal(t, ingest.Transient, out[0].Class)
		assert.Equal(t, ingest.ReasonStoreUnavailable, out[0].Reason)
		assert.ErrorIs(t, out[0].Err, domain.ErrUnavailable)

		require.NoError(t, srv.Restart())
		require.Eventually(t, func() bool {
			return in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1")})[0].Class == ingest.Stored
		}, 20*time.Second, 100*time.Millisecond)
		assert.Equal(t, ingest.Duplicate, in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1")})[0].Class)
		assert.Equal(t, 1, streamLen(t, l, orderA))
	})

	t.Run("a deleted stream refuses its order only", func(t *testing.T) {
		srv, l := openESDB(t)
		in := &ingest.Ingester{Log: l, Currency: cur, Parallel: 1}
		srv.FailNext("Append", codes.FailedPrecondition, "stream deleted", "exception", "stream-deleted", "stream-name", domain.StreamName(orderA))
		out := in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1"), checkout(orderB, "msg-2")})
		assert.Equal(t, ingest.Refused, out[0].Class)
		assert.Equal(t, ingest.ReasonStreamDeleted, out[0].Reason)
		assert.ErrorIs(t, out[0].Err, domain.ErrStreamNotFound)
		assert.Equal(t, ingest.Stored, out[1].Class, "other orders go on")
		assert.Equal(t, 0, streamLen(t, l, orderA))
		assert.Equal(t, 1, streamLen(t, l, orderB))
	})

	t.Run("invalid input is never appended", func(t *testing.T) {
		_, l := openESDB(t)
		in := &ingest.Ingester{Log: l, Currency: cur}
		bad := checkout(orderA, "msg-bad")
		bad.Body = []byte(`{"orderId":"` + orderA + `","totalMoney":"-1"}`)
		out := in.Handle(ctx, []ingest.Message{bad})
		assert.Equal(t, ingest.Invalid, out[0].Class)
		assert.ErrorIs(t, out[0].Err, domain.ErrInvalidFact)
		assert.Equal(t, 0, streamLen(t, l, orderA))
	})

	t.Run("behind a transient failure an order waits, others go on", func(t *testing.T) {
		srv, l := openESDB(t)
		in := &ingest.Ingester{Log: l, Currency: cur, Parallel: 1}
		srv.FailNext("Append", codes.Unavailable, "injected")
		second := checkout(orderA, "msg-2")
		second.Type = string(domain.FactBasketDeletedComplete)
		second.Body = []byte(`{"orderId":"` + orderA + `","basketId":"` + basketA + `","totalMoney":"99.99"}`)
		out := in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1"), checkout(orderB, "msg-3"), second})
		assert.Equal(t, ingest.Transient, out[0].Class)
		assert.Equal(t, ingest.Stored, out[1].Class)
		assert.Equal(t, ingest.Transient, out[2].Class, "not appended past the earlier message of its order")
		assert.Contains(t, out[2].Err.Error(), "behind an earlier message")
		assert.Equal(t, 0, streamLen(t, l, orderA))

		out = in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1"), second})
		require.Equal(t, ingest.Stored, out[0].Class, out[0].Err)
		require.Equal(t, ingest.Stored, out[1].Class, out[1].Err)
		evs, err := l.ReadStream(ctx, domain.StreamName(orderA), 0, domain.Forwards, 0)
		require.NoError(t, err)
		require.Len(t, evs, 2)
		assert.Equal(t, string(domain.FactUserCheckedOut), evs[0].Type, "arrival order kept")
	})
}
