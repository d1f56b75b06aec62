package bolt

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The books' side of the read model: the (day, status) cells of
// ix_day_status (index.go keeps them) and the marker that says every row
// carries its books.
//
// Rows written before the books read back with zero balances, so the
// summed balances of a file holding such rows are not the books. A file
// is marked (rm_meta "books") when it is created empty by a ledger that
// writes the books, which a replay's new file always is; an older file
// stays unmarked, and its trial balance ErrBooksStale, until a replay.
// The marker outlives index rebuilds: it is about the rows, not the
// indexes.
var (
	bucketModelMeta = []byte("rm_meta")
	keyBooksMarker  = []byte("books")
)

var (
	_ projections.BooksIndex = (*ReadModel)(nil)
	_ projections.BooksIndex = (*Swappable)(nil)
)

// markBooksIfEmpty marks a file that holds no row yet: every row it will
// hold carries its books.
func markBooksIfEmpty(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketModelMeta)
	if meta.Get(keyBooksMarker) != nil {
		return nil
	}
	if k, _ := tx.Bucket(bucketSummaries).Cursor().First(); k != nil {
		return nil // rows from before the books
	}
	if err := meta.Put(keyBooksMarker, []byte{1}); err != nil {
		return fmt.Errorf("mark books: %w", err)
	}
	return nil
}

// hasBooks reports whether every row of the file carries its books.
func hasBooks(tx *bbolt.Tx) bool {
	meta := tx.Bucket(bucketModelMeta)
	return meta != nil && meta.Get(keyBooksMarker) != nil
}

// DayStatus implements projections.BooksIndex from the (day, status)
// cells alone: oldest day first, statuses in domain.Statuses() order
// within a day (orders without a checkout, status "", first).
func (r *ReadModel) DayStatus(ctx context.Context, from, to string) ([]projections.DayStatusTotals, error) {
	if err := r.checkDayQuery(ctx, from, to); err != nil {
		return nil, err
	}
	out := []projections.DayStatusTotals{}
	err := r.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDayStatus).Cursor()
		dayStart := 0
		for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(v) != 48 {
				return fmt.Errorf("corrupt day status cell %q", k)
			}
			day := string(k[:i])
			if to != "" && day > to {
				break
			}
			if len(out) > 0 && out[len(out)-1].Day != day {
				sortCells(out[dayStart:])
				dayStart = len(out)
			}
			d := decodeDay(day, v)
			out = append(out, projections.DayStatusTotals{Day: day, Status: internStatusBytes(k[i+1:]), Orders: d.Orders, Money: d.Money})
		}
		sortCells(out[dayStart:])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("day status %s..%s: %w", from, to, err)
	}
	return out, nil
}

// sortCells puts one day's cells, stored in status-name order, in
// lifecycle order.
func sortCells(cells []projections.DayStatusTotals) {
	slices.SortStableFunc(cells, func(a, b projections.DayStatusTotals) int { return statusRank(a.Status) - statusRank(b.Status) })
}

// statusRank is st's place in domain.Statuses(); "" first, unknown last.
func statusRank(st domain.Status) int {
	if st == "" {
		return -1
	}
	if i := slices.Index(knownStatuses, st); i >= 0 {
		return i
	}
	return len(knownStatuses)
}

// DayStatus implements projections.BooksIndex.
func (s *Swappable) DayStatus(ctx context.Context, from, to string) ([]projections.DayStatusTotals, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.DayStatus(ctx, from, to)
}
