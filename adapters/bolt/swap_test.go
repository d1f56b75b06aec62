package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

func TestRebuildSwapsInTheNewModelAndKeepsTheLifecycleCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer log.Close()
	orders := []string{"0196a6b0-0000-7000-8000-00000000000a", "0196a6b0-0000-7000-8000-00000000000b"}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, id := range orders {
		f := domain.Fact{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: 100 * int64(i+1), HasAmount: true, At: at}
		p, err := ingest.FactEvent(f, domain.DefaultCurrency(), domain.Metadata{MessageID: "m-" + id})
		require.NoError(t, err)
		_, err = log.Append(ctx, p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
	}
	path := filepath.Join(dir, "readmodel.db")
	cur, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	published := domain.Position{Commit: 1, Prepare: 1}
	require.NoError(t, rm.SaveCheckpoint(ctx, projections.LifecycleName, published))

	o, err := rm.Overview(ctx)
	require.NoError(t, err)
	require.Zero(t, o.Orders, "nothing folded yet")

	// A dry run reports both orders as new and leaves the model as it was.
	res, _, err := rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules(), DryRun: true})
	require.NoError(t, err)
	assert.Len(t, res.Changes, 2)
	_, ok, err := rm.Summary(ctx, orders[0])
	require.NoError(t, err)
	assert.False(t, ok, "a dry run swaps nothing in")
	leftovers, _ := filepath.Glob(path + ".replay-*")
	assert.Empty(t, leftovers, "a dry run leaves no half-built file")

	res, restated, err := rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules()})
	require.NoError(t, err)
	assert.Equal(t, int64(2), res.Facts)
	assert.Zero(t, restated)
	s, ok, err := rm.Summary(ctx, orders[1])
	require.NoError(t, err)
	require.True(t, ok, "the rebuilt model is in place")
	assert.Equal(t, domain.StatusInit, s.Status)
	assert.Equal(t, int64(200), s.Total)
	cp, err := rm.Checkpoint(ctx, projections.LifecycleName)
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, published, *cp, "the publisher's checkpoint is carried over: nothing is published again")
	cp, err = rm.Checkpoint(ctx, projections.ReadModelName)
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, *res.Head, *cp, "the projection goes on from where the replay began")

	// The index answers from the rebuilt file.
	o, err = rm.Overview(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, o.Orders)
	assert.Equal(t, 2, o.ByStatus[domain.StatusInit])
	days, err := rm.Days(ctx, "", "")
	require.NoError(t, err)
	assert.Equal(t, []projections.DayTotals{{Day: "2026-11-01", Orders: 2}}, days)
	page, err := rm.Orders(ctx, projections.OrderQuery{Status: domain.StatusInit, Sort: projections.SortByAmount})
	require.NoError(t, err)
	require.Len(t, page.Orders, 2)
	assert.Equal(t, orders[1], page.Orders[0].OrderID, "the larger total first")
	assert.Equal(t, at, page.Orders[0].CreatedAt)

	// Nothing changed since: a second replay finds no change.
	res, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules(), DryRun: true})
	require.NoError(t, err)
	assert.Empty(t, res.Changes)
}

// Rows written before the read model kept days and checkout times differ
// from rebuilt ones only in those: a replay reports no change for them.
func TestReplayReportsNoChangeForRowsWithoutDays(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer log.Close()
	id := "0196a6b0-0000-7000-8000-00000000000c"
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, f := range []domain.Fact{
		{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: 500, HasAmount: true, At: at},
		{Type: domain.FactBasketDeletedComplete, OrderID: id, BasketID: id, Amount: 500, HasAmount: true, At: at.Add(time.Hour)},
	} {
		p, err := ingest.FactEvent(f, domain.DefaultCurrency(), domain.Metadata{MessageID: fmt.Sprintf("m-%d", i)})
		require.NoError(t, err)
		_, err = log.Append(ctx, p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
	}
	cur, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
	require.NoError(t, err)
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	_, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules()})
	require.NoError(t, err)
	row, ok, err := rm.Summary(ctx, id)
	require.NoError(t, err)
	require.True(t, ok)
	require.NotEmpty(t, row.Days)
	require.False(t, row.CreatedAt.IsZero())

	old := row
	old.Days, old.CreatedAt = nil, time.Time{}
	require.NoError(t, rm.Apply(ctx, projections.ReadModelName, domain.Position{Commit: 1}, []projections.Summary{old}))
	res, _, err := rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules(), DryRun: true})
	require.NoError(t, err)
	assert.Empty(t, res.Changes, "days and the checkout time are new fields, not a change")
}

func TestRemoveStaleRebuilds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "readmodel.db")
	for _, name := range []string{path, path + ".replay-1", path + ".replay-2", filepath.Join(dir, "other.db")} {
		require.NoError(t, os.WriteFile(name, []byte("x"), 0o600))
	}
	require.NoError(t, bolt.RemoveStaleRebuilds(path))
	left, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{path, filepath.Join(dir, "other.db")}, left)
}

// BenchmarkRebuild is `ledger replay`: Swappable.Rebuild of 20,000 orders
// (checkout, charge, completion, a partial refund the next day: 80,000
// facts) diffed against the live model and swapped in; one op is one
// rebuild. cpu-µs/order is user+system CPU (getrusage), steadier than
// the wall time on a shared machine.
func BenchmarkRebuild(b *testing.B) {
	const orders = 20_000
	ctx := context.Background()
	dir := b.TempDir()
	log, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(b, err)
	defer log.Close()
	day0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i := range orders {
		id := uuid.NewString()
		at := day0.Add(time.Duration(i%(30*24)) * time.Hour)
		amount := 1000 + int64(i%500)
		for k, f := range []domain.Fact{
			{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: amount, HasAmount: true, At: at},
			{Type: domain.FactBasketDeletedComplete, OrderID: id, BasketID: id, Amount: amount, HasAmount: true, At: at.Add(time.Minute)},
			{Type: domain.FactOrderCompleted, OrderID: id, BasketID: id, Amount: amount, HasAmount: true, At: at.Add(2 * time.Minute)},
			{Type: domain.FactOrderRefundRequested, OrderID: id, Amount: 100, HasAmount: true, At: at.Add(30 * time.Hour)},
		} {
			p, err := ingest.FactEvent(f, domain.DefaultCurrency(), domain.Metadata{MessageID: fmt.Sprintf("m-%s-%d", id, k)})
			require.NoError(b, err)
			_, err = log.Append(ctx, p.Stream, domain.Any, p.Event)
			require.NoError(b, err)
		}
	}
	cur, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
	require.NoError(b, err)
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	_, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules()}) // the live model to diff with
	require.NoError(b, err)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		res, _, err := rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules()})
		require.NoError(b, err)
		require.Empty(b, res.Changes)
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N)/orders, "cpu-µs/order")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/orders, "µs/order")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
