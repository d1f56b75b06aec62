package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

func openReadModel(t *testing.T, path string) *bolt.ReadModel {
	t.Helper()
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	t.Cleanup(func() { rm.Close() })
	return rm
}

func TestReadModelAppliesRowsAndCheckpointTogether(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm := openReadModel(t, path)

	cp, err := rm.Checkpoint(ctx, "readmodel")
	require.NoError(t, err)
	assert.Nil(t, cp, "no checkpoint before the first batch")

	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	rows := []projections.Summary{
		{OrderID: "a", Status: domain.StatusInit, PlacementAttempts: 1, PlacementDeadline: t0.Add(30 * time.Minute)},
		{OrderID: "b", Status: domain.StatusInit, PlacementAttempts: 2, PlacementDeadline: t0.Add(10 * time.Minute)},
		{OrderID: "c", Status: domain.StatusCharged, Money: domain.Totals{Captured: 100, Net: 100}},
	}
	require.NoError(t, rm.Apply(ctx, "readmodel", domain.Position{Commit: 7, Prepare: 7}, rows))

	cp, err = rm.Checkpoint(ctx, "readmodel")
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, domain.Position{Commit: 7, Prepare: 7}, *cp)

	s, ok, err := rm.Summary(ctx, "c")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(100), s.Money.Captured)
	_, ok, err = rm.Summary(ctx, "zz")
	require.NoError(t, err)
	assert.False(t, ok)

	page, err := rm.Summaries(ctx, "a", 10)
	require.NoError(t, err)
	require.Len(t, page, 2, "paging starts after the cursor")
	assert.Equal(t, "b", page[0].OrderID)

	// Due lists INIT orders by deadline, and only those due.
	due, err := rm.Due(ctx, t0.Add(20*time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, projections.Due{OrderID: "b", Deadline: t0.Add(10 * time.Minute), Attempt: 2}, due[0])
	due, err = rm.Due(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	assert.Len(t, due, 2)

	// An order that leaves INIT leaves the deadline index.
	require.NoError(t, rm.Apply(ctx, "readmodel", domain.Position{Commit: 9, Prepare: 9},
		[]projections.Summary{{OrderID: "b", Status: domain.StatusCharged}}))
	due, err = rm.Due(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, "a", due[0].OrderID)

	n, err := rm.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

func TestReadModelSurvivesReopenAndIsLockedWhileOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	require.NoError(t, rm.SaveCheckpoint(ctx, "lifecycle", domain.Position{Commit: 3, Prepare: 3}))
	require.NoError(t, rm.Close())

	again := openReadModel(t, path)
	_, err = bolt.OpenReadModel(path)
	assert.ErrorIs(t, err, bolt.ErrLocked, "one process owns the file")
	cp, err := again.Checkpoint(ctx, "lifecycle")
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, uint64(3), cp.Commit)
}

func TestReplaceFileSwapsAtomically(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cur, next := filepath.Join(dir, "readmodel.db"), filepath.Join(dir, "readmodel.db.replay-1")
	old, err := bolt.OpenReadModel(cur)
	require.NoError(t, err)
	require.NoError(t, old.Put(ctx, []projections.Summary{{OrderID: "old", Status: domain.StatusInit}}))
	require.NoError(t, old.Close())
	nw, err := bolt.OpenReadModel(next)
	require.NoError(t, err)
	require.NoError(t, nw.Put(ctx, []projections.Summary{{OrderID: "new", Status: domain.StatusCharged}}))
	require.NoError(t, nw.Close())

	require.NoError(t, bolt.ReplaceFile(next, cur))
	_, err = os.Stat(next)
	assert.True(t, os.IsNotExist(err))
	rm := openReadModel(t, cur)
	_, ok, err := rm.Summary(ctx, "new")
	require.NoError(t, err)
	assert.True(t, ok)
	_, ok, err = rm.Summary(ctx, "old")
	require.NoError(t, err)
	assert.False(t, ok)
}

// benchRows folds n orders (checkout, charge, completion, a partial refund
// on a later day) into their read-model rows, as a replay emits them.
func benchRows(b *testing.B, n int) []projections.Summary {
	b.Helper()
	rules := domain.DefaultRules()
	day0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	rows := make([]projections.Summary, n)
	for i := range rows {
		id := uuid.NewString()
		at := day0.Add(time.Duration(i%(30*24)) * time.Hour)
		facts := []domain.Fact{
			{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: 1000 + int64(i%500), HasAmount: true, At: at},
			{Type: domain.FactBasketDeletedComplete, OrderID: id, BasketID: id, Amount: 1000 + int64(i%500), HasAmount: true, At: at.Add(time.Minute)},
			{Type: domain.FactOrderCompleted, OrderID: id, BasketID: id, Amount: 1000 + int64(i%500), HasAmount: true, At: at.Add(2 * time.Minute)},
			{Type: domain.FactOrderRefundRequested, OrderID: id, Amount: 100, HasAmount: true, At: at.Add(30 * time.Hour)},
		}
		events := make([]domain.Event, len(facts))
		for k, f := range facts {
			events[k] = domain.Event{ID: fmt.Sprintf("%s/%d", id, k), Revision: uint64(k), Fact: f}
		}
		rows[i] = projections.SummaryOf(domain.StreamName(id), uint64(len(events)-1), len(events), domain.Fold(rules, events))
	}
	return rows
}

// BenchmarkReadModelPut measures storing rows; one op is one row.
// rebuild: a replay's sink as Rebuild opens it (fresh file, no fsync,
// sorted batches of 2048, every row new, the order indexes built at the
// end, in the time). rebuild_indexed_per_batch: the same file keeping
// its indexes with every batch instead. update: the live projection
// rewriting rows that exist (batches of 100, no fsync so the figure is
// the work, not the disk).
func BenchmarkReadModelPut(b *testing.B) {
	ctx := context.Background()
	rebuild := func(deferred bool) func(b *testing.B) {
		return func(b *testing.B) {
			rows := benchRows(b, b.N)
			slices.SortFunc(rows, func(x, y projections.Summary) int { return strings.Compare(x.OrderID, y.OrderID) })
			rm, err := bolt.OpenReadModelWith(filepath.Join(b.TempDir(), "rm.db"), bolt.ReadModelOptions{NoSync: true, DeferIndexes: deferred})
			if err != nil {
				b.Fatal(err)
			}
			defer rm.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(rows); i += 2048 {
				if err := rm.Put(ctx, rows[i:min(i+2048, len(rows))]); err != nil {
					b.Fatal(err)
				}
			}
			if deferred {
				if err := rm.BuildIndexes(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("rebuild", rebuild(true))
	b.Run("rebuild_indexed_per_batch", rebuild(false))
	b.Run("live", benchLive)
	b.Run("update", func(b *testing.B) {
		const orders = 20_000
		rows := benchRows(b, orders)
		rm, err := bolt.OpenReadModelWith(filepath.Join(b.TempDir(), "rm.db"), bolt.ReadModelOptions{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		defer rm.Close()
		for i := 0; i < len(rows); i += 2048 {
			if err := rm.Put(ctx, rows[i:min(i+2048, len(rows))]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		pos := domain.Position{}
		for done := 0; done < b.N; {
			n := min(100, b.N-done)
			batch := make([]projections.Summary, n)
			for k := range batch {
				r := rows[(done+k)*7919%orders]
				r.Revision++
				r.LastAt = r.LastAt.Add(time.Second)
				batch[k] = r
			}
			pos.Commit++
			pos.Prepare++
			if err := rm.Apply(ctx, projections.ReadModelName, pos, batch); err != nil {
				b.Fatal(err)
			}
			done += n
		}
	})
}

// benchLive writes what the projection writes under traffic: a checkout,
// the charge of the order checked out 50 orders ago and the completion of
// the one 100 ago, every third row, each dated now; one op is one row,
// in batches of 100, over 20,000 orders already stored.
func benchLive(b *testing.B) {
	ctx := context.Background()
	rm, err := bolt.OpenReadModelWith(filepath.Join(b.TempDir(), "rm.db"), bolt.ReadModelOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rm.Close()
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	ids := []string{}
	row := func(k int) projections.Summary {
		at := t0.Add(time.Duration(k) * 100 * time.Millisecond)
		j := k / 3
		switch k % 3 {
		case 1:
			j -= 50
		case 2:
			j -= 100
		}
		for len(ids) <= j {
			ids = append(ids, uuid.NewString())
		}
		s := projections.Summary{OrderID: ids[max(j, 0)], Status: domain.StatusInit, Total: 1000 + int64(j%500), LastAt: at, CreatedAt: at}
		if k%3 > 0 {
			s.Status = []domain.Status{domain.StatusCharged, domain.StatusFulfilled}[k%3-1]
			s.CreatedAt = at.Add(-time.Duration(k%3) * 5 * time.Second)
			s.Money = domain.Totals{Captured: s.Total, Net: s.Total}
			s.Days = []domain.DayMove{{Day: at.Format(domain.DayFormat), Money: s.Money}}
		}
		return s
	}
	k := 0
	batch := func(n int) []projections.Summary {
		out := make([]projections.Summary, n)
		for i := range out {
			out[i] = row(k)
			k++
		}
		return out
	}
	for range 600 { // 20,000 orders
		if err := rm.Put(ctx, batch(100)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	pos := domain.Position{}
	for done := 0; done < b.N; done += 100 {
		rows := batch(min(100, b.N-done))
		pos.Commit++
		if err := rm.Apply(ctx, projections.ReadModelName, pos, rows); err != nil {
			b.Fatal(err)
		}
	}
}
