package projectionspec

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// BooksStore is a read model that keeps the books: its rows carry each
// order's balances, Overview sums them, and DayStatus answers the period
// reports.
type BooksStore interface {
	projections.ReadModel
	projections.OrderIndex
	projections.BooksIndex
}

// RunBooksStore runs the books suite: rows keep their books, the summed
// books and the (day, status) cells follow every write, including rows
// that change status or money. open returns a new, empty store.
func RunBooksStore(t *testing.T, open func(t *testing.T) BooksStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s BooksStore)
	}{
		{"BooksRoundTrip", testBooksRoundTrip},
		{"DayStatusFollowsWrites", testDayStatusFollowsWrites},
		{"StatusChangeMovesCells", testStatusChangeMovesCells},
		{"DayStatusBadDays", testDayStatusBadDays},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var booksDay0 = time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC)

func bookID(i int) string { return fmt.Sprintf("0196a6b0-0000-7000-8000-%012x", 0xb00c0000+i) }

// booksRow is a row as the fold could write it: a status, a checkout day
// (none without a status), money on a few days around a month's end, and
// balances that are the money's (clearing = Net, the rest -Net).
func booksRow(rng *rand.Rand, id string) projections.Summary {
	sts := domain.Statuses()
	s := projections.Summary{OrderID: id, Stream: domain.StreamName(id), Revision: uint64(rng.IntN(9)), Facts: 1 + rng.IntN(9)}
	if rng.IntN(10) > 0 {
		s.Status = sts[rng.IntN(len(sts))]
		s.CreatedAt = booksDay0.Add(time.Duration(rng.IntN(5*24))*time.Hour + time.Duration(rng.IntN(1e9)))
		s.LastAt = s.CreatedAt.Add(time.Hour)
	}
	days := map[string]domain.Totals{}
	for range rng.IntN(4) {
		d := booksDay0.AddDate(0, 0, rng.IntN(5)).Format(domain.DayFormat)
		m := domain.Totals{Captured: int64(rng.IntN(3)) * 1000, Refunded: int64(rng.IntN(2)) * 250, ChargedBack: int64(rng.IntN(2)) * 100, Reversed: int64(rng.IntN(2)) * 50}
		m.Net = m.Captured - m.Refunded - m.ChargedBack + m.Reversed
		days[d] = days[d].Add(m)
	}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		s.Days = append(s.Days, domain.DayMove{Day: d, Money: days[d]})
		s.Money = s.Money.Add(days[d])
	}
	s.Books.Balance[domain.AccountPaymentsClearing] = s.Money.Net
	if rng.IntN(2) == 0 {
		s.Books.Recognized = true
		s.Books.Balance[domain.AccountRevenue] = -s.Money.Net - s.Money.Refunded
		s.Books.Balance[domain.AccountRefunds] = s.Money.Refunded
	} else {
		s.Books.Balance[domain.AccountDeferredRevenue] = -s.Money.Net
	}
	return s
}

func sumBooks(rows map[string]projections.Summary) domain.Books {
	var b domain.Books
	for _, r := range rows {
		b = b.Add(r.Books)
	}
	return b
}

// checkBooks compares the store's summed books and cells with rows.
func checkBooks(t *testing.T, s BooksStore, rows map[string]projections.Summary) {
	t.Helper()
	c := ctx(t)
	ov, err := s.Overview(c)
	require.NoError(t, err)
	assert.Equal(t, sumBooks(rows).Balance, ov.Books.Balance, "the summed books")
	assert.False(t, ov.BooksStale, "a store that started empty has every row's books")
	all := slices.Collect(maps.Values(rows))
	for _, r := range [][2]string{{"", ""}, {"2026-10-31", ""}, {"", "2026-11-01"}, {"2026-11-01", "2026-11-01"}, {"2026-11-02", "2026-11-03"}, {"2027-01-01", ""}} {
		got, err := s.DayStatus(c, r[0], r[1])
		require.NoError(t, err)
		want := projections.DayStatusOf(all, r[0], r[1])
		if len(want) == 0 {
			want = []projections.DayStatusTotals{}
		}
		require.Equal(t, want, got, "cells %s..%s", r[0], r[1])
	}
}

func testBooksRoundTrip(t *testing.T, s BooksStore) {
	c := ctx(t)
	rng := rand.New(rand.NewPCG(1, 15))
	rows := map[string]projections.Summary{}
	var batch []projections.Summary
	for i := range 40 {
		r := booksRow(rng, bookID(i))
		switch i {
		case 0:
			r.Books = domain.Books{} // nothing moved
		case 1:
			r.Books = domain.Books{Recognized: true} // fulfilled, nothing captured
		case 2:
			r.Books.Balance = [domain.NumAccounts]int64{-1 << 50, 1 << 50, -3, 2, 1} // wide and negative
		}
		rows[r.OrderID] = r
		batch = append(batch, r)
	}
	require.NoError(t, s.Apply(c, projections.ReadModelName, domain.Position{Commit: 1, Prepare: 1}, batch))
	for _, want := range batch {
		got, ok, err := s.Summary(c, want.OrderID)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, want.Books, got.Books, "order %s", want.OrderID)
	}
	listed, err := s.Summaries(c, "", 100)
	require.NoError(t, err)
	require.Len(t, listed, len(batch))
	for _, got := range listed {
		assert.Equal(t, rows[got.OrderID].Books, got.Books)
	}
	checkBooks(t, s, rows)
}

func testDayStatusFollowsWrites(t *testing.T, s BooksStore) {
	c := ctx(t)
	rng := rand.New(rand.NewPCG(2, 15))
	rows := map[string]projections.Summary{}
	pos := domain.Position{}
	for round := range 6 {
		var batch []projections.Summary
		for range 30 {
			i := rng.IntN(60)
			r := booksRow(rng, bookID(i))
			if old, ok := rows[r.OrderID]; ok && rng.IntN(3) == 0 {
				r = old // the same row again: nothing moves
				r.Revision++
			}
			rows[r.OrderID] = r
			batch = append(batch, r)
		}
		pos.Commit++
		pos.Prepare++
		require.NoError(t, s.Apply(c, projections.ReadModelName, pos, batch), "round %d", round)
		checkBooks(t, s, rows)
	}
}

func testStatusChangeMovesCells(t *testing.T, s BooksStore) {
	c := ctx(t)
	id := bookID(1)
	at := time.Date(2026, 11, 1, 23, 59, 59, 0, time.UTC)
	row := projections.Summary{OrderID: id, Stream: domain.StreamName(id), Status: domain.StatusInit, Total: 500, CreatedAt: at, LastAt: at}
	require.NoError(t, s.Apply(c, projections.ReadModelName, domain.Position{Commit: 1, Prepare: 1}, []projections.Summary{row}))
	got, err := s.DayStatus(c, "", "")
	require.NoError(t, err)
	assert.Equal(t, []projections.DayStatusTotals{{Day: "2026-11-01", Status: domain.StatusInit, Orders: 1}}, got)

	row.Status = domain.StatusCharged
	row.Money = domain.Totals{Captured: 500, Net: 500}
	row.Days = []domain.DayMove{{Day: "2026-11-02", Money: row.Money}}
	row.Books.Balance[domain.AccountPaymentsClearing], row.Books.Balance[domain.AccountDeferredRevenue] = 500, -500
	require.NoError(t, s.Apply(c, projections.ReadModelName, domain.Position{Commit: 2, Prepare: 2}, []projections.Summary{row}))
	got, err = s.DayStatus(c, "", "")
	require.NoError(t, err)
	assert.Equal(t, []projections.DayStatusTotals{
		{Day: "2026-11-01", Status: domain.StatusCharged, Orders: 1},
		{Day: "2026-11-02", Status: domain.StatusCharged, Money: row.Money},
	}, got, "the INIT cell is gone; the order counts on its checkout day, its money on the day it moved")
	ov, err := s.Overview(c)
	require.NoError(t, err)
	assert.Equal(t, row.Books.Balance, ov.Books.Balance)
}

func testDayStatusBadDays(t *testing.T, s BooksStore) {
	for _, r := range [][2]string{{"2026-13-01", ""}, {"", "yesterday"}, {"2026-11-1", ""}} {
		_, err := s.DayStatus(ctx(t), r[0], r[1])
		assert.ErrorIs(t, err, projections.ErrInvalidQuery, "%q..%q", r[0], r[1])
	}
}
