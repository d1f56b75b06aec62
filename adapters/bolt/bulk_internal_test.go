package bolt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// A replay's file (DeferIndexes) buffers rows and writes them sorted,
// spilling sorted runs when they pass bulkLimit: the last row of an order
// wins, and the file ends up as one written row by row, whether the rows
// go into an empty file or one with rows.
func TestBulkWritesMatchRowByRowWrites(t *testing.T) {
	defer func(n, c int) { bulkLimit, bulkChunk = n, c }(bulkLimit, bulkChunk)
	bulkLimit = 2 << 10 // a spilled run every batch
	bulkChunk = 7       // many transactions
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	row := func(i, round int) projections.Summary {
		id := fmt.Sprintf("%08x-0000-7000-8000-%012d", (i*7919)%1000, i)
		s := projections.Summary{OrderID: id, Stream: domain.StreamPrefix + id, Revision: uint64(round), Status: domain.StatusCharged,
			Total: int64(100 + i), Money: domain.Totals{Captured: int64(100 + i), Net: int64(100 + i)}, Facts: round + 1,
			LastAt: at.Add(time.Duration(i) * time.Minute), CreatedAt: at.AddDate(0, 0, i%3),
			Days: []domain.DayMove{{Day: at.AddDate(0, 0, i%3).Format(domain.DayFormat), Money: domain.Totals{Captured: int64(100 + i), Net: int64(100 + i)}}}}
		s.Books.Balance[domain.AccountPaymentsClearing], s.Books.Balance[domain.AccountDeferredRevenue] = s.Money.Net, -s.Money.Net
		if i%5 == 0 {
			s.Status, s.Books.Recognized = domain.StatusFulfilled, true
			s.Books.Balance[domain.AccountDeferredRevenue], s.Books.Balance[domain.AccountRevenue] = 0, -s.Money.Net
		}
		if (i+round)%2 == 0 {
			s.Status, s.Money, s.Days, s.Books = domain.StatusInit, domain.Totals{}, nil, domain.Books{}
			s.PlacementDeadline, s.PlacementAttempts = at.Add(time.Duration(i)*time.Second), round+1
		}
		return s
	}
	var batches [][]projections.Summary
	for round := range 3 {
		var b []projections.Summary
		for i := round * 10; i < 90; i++ {
			b = append(b, row(i, round))
		}
		batches = append(batches, b)
	}
	dir := t.TempDir()
	bulk, err := OpenReadModelWith(filepath.Join(dir, "bulk.db"), ReadModelOptions{NoSync: true, DeferIndexes: true})
	require.NoError(t, err)
	defer bulk.Close()
	plain, err := OpenReadModel(filepath.Join(dir, "plain.db"))
	require.NoError(t, err)
	defer plain.Close()
	for i, b := range batches {
		require.NoError(t, bulk.Put(ctx, b))
		require.NoError(t, plain.Put(ctx, b))
		if i == 0 {
			// A read writes what is buffered: the next rows go into a
			// file that has rows.
			n, err := bulk.Count(ctx)
			require.NoError(t, err)
			require.Equal(t, 90, n)
		}
	}
	_, err = os.Stat(bulk.Path() + ".spill")
	require.NoError(t, err, "rows past bulkLimit went to the spill file")
	require.NoError(t, bulk.BuildIndexes(ctx))
	_, err = os.Stat(bulk.Path() + ".spill")
	assert.ErrorIs(t, err, os.ErrNotExist, "the spill file goes once the rows are in")

	want, err := plain.Summaries(ctx, "", 1000)
	require.NoError(t, err)
	got, err := bulk.Summaries(ctx, "", 1000)
	require.NoError(t, err)
	require.Len(t, got, 90)
	assert.Equal(t, want, got)
	ov, err := bulk.Overview(ctx)
	require.NoError(t, err)
	assert.NotZero(t, ov.Books.Of(domain.AccountRevenue), "the rows' books are summed")
	assert.False(t, ov.BooksStale)
	for _, q := range []func(m *ReadModel) (any, error){
		func(m *ReadModel) (any, error) { return m.Overview(ctx) },
		func(m *ReadModel) (any, error) { return m.Days(ctx, "", "") },
		func(m *ReadModel) (any, error) { return m.DayStatus(ctx, "", "") },
		func(m *ReadModel) (any, error) { return m.Due(ctx, at.Add(time.Hour), 1000) },
		func(m *ReadModel) (any, error) {
			return m.Orders(ctx, projections.OrderQuery{Status: domain.StatusInit, Sort: projections.SortByAmount, Limit: 100})
		},
	} {
		w, err := q(plain)
		require.NoError(t, err)
		g, err := q(bulk)
		require.NoError(t, err)
		assert.Equal(t, w, g)
	}
}

// The buffer keeps its rows across growth of its row index and blocks.
func TestBulkRowsGrow(t *testing.T) {
	var b bulkRows
	defer b.freeMem()
	const n = 3*4096 + 5
	for i := range n {
		id := fmt.Sprintf("%08d-%d", (i*7919)%n, i%2)
		b.add(&projections.Summary{OrderID: id, Stream: domain.StreamPrefix + id, Revision: uint64(i), StatusReason: string(make([]byte, i%300))})
	}
	kept := b.sorted()
	require.Len(t, kept, n)
	for i := 1; i < len(kept); i++ {
		require.Less(t, string(b.id(kept[i-1])), string(b.id(kept[i])))
	}
	var s projections.Summary
	require.NoError(t, decodeRow(b.enc(kept[0]), &s))
	assert.Equal(t, "00000000-0", s.OrderID)
	assert.EqualValues(t, 0, s.Revision)
}
