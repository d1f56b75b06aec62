package bolt_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

func TestParkedLanesAreStoredReplacedListedAndUnparked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm := openReadModel(t, path)
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	a := projections.Parked{OrderID: "b-order", Stream: "order-b-order", Kind: domain.KindAccelByte, FromRevision: 2,
		Message: "orderCreated", MessageID: "m-1", Reason: projections.ReasonUnbuildable, Detail: "int32", ParkedAt: at}
	b := a
	b.Kind, b.Message, b.Reason = domain.KindBookWorm, "PlaceOrderCommand", projections.ReasonRefused
	c := a
	c.OrderID, c.Stream = "a-order", "order-a-order"
	require.NoError(t, rm.Park(ctx, []projections.Parked{a, b, c}))
	a.Retries, a.Detail = 1, "still int32"
	require.NoError(t, rm.Park(ctx, []projections.Parked{a}))

	got, err := rm.ListParked(ctx)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []string{"a-order", "b-order", "b-order"}, []string{got[0].OrderID, got[1].OrderID, got[2].OrderID}, "by order id")
	assert.Equal(t, a, got[1], "replaced, times round-trip")
	assert.Equal(t, domain.KindBookWorm, got[2].Kind)

	require.NoError(t, rm.Unpark(ctx, "b-order", domain.KindAccelByte))
	require.NoError(t, rm.Unpark(ctx, "nobody", domain.KindAccelByte), "absent is fine")
	got, err = rm.ListParked(ctx)
	require.NoError(t, err)
	assert.Len(t, got, 2)

	// Parks are durable: they survive a reopen.
	require.NoError(t, rm.Close())
	rm = openReadModel(t, path)
	got, err = rm.ListParked(ctx)
	require.NoError(t, err)
	assert.Len(t, got, 2)
}

func TestRebuildCarriesParkedLanesOver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer log.Close()
	cur, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
	require.NoError(t, err)
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	p := projections.Parked{OrderID: "0196a6b0-0000-7000-8000-00000000000a", Kind: domain.KindAccelByte, Reason: projections.ReasonRefused,
		ParkedAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	require.NoError(t, rm.Park(ctx, []projections.Parked{p}))

	_, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules()})
	require.NoError(t, err)
	got, err := rm.ListParked(ctx)
	require.NoError(t, err)
	assert.Equal(t, []projections.Parked{p}, got, "a replay never releases a parked lane")
}
