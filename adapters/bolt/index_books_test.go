package bolt_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// booksLog is a log of three orders: one fulfilled and partly refunded on
// a later day, one charged, one only checked out.
func booksLog(t *testing.T, dir string) *bolt.Log {
	t.Helper()
	ctx := context.Background()
	log, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { log.Close() })
	at := time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC)
	ids := []string{"0196a6b0-0000-7000-8000-00000000000a", "0196a6b0-0000-7000-8000-00000000000b", "0196a6b0-0000-7000-8000-00000000000c"}
	var facts []domain.Fact
	for i, id := range ids {
		amount := int64(1000 * (i + 1))
		facts = append(facts, domain.Fact{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: amount, HasAmount: true, At: at})
		if i < 2 {
			facts = append(facts, domain.Fact{Type: domain.FactBasketDeletedComplete, OrderID: id, BasketID: id, Amount: amount, HasAmount: true, At: at.Add(time.Minute)})
		}
	}
	facts = append(facts,
		domain.Fact{Type: domain.FactOrderCompleted, OrderID: ids[0], BasketID: ids[0], Amount: 1000, HasAmount: true, At: at.Add(3 * time.Hour)},
		domain.Fact{Type: domain.FactOrderRefundRequested, OrderID: ids[0], Amount: 300, HasAmount: true, At: at.Add(30 * time.Hour)})
	for k, f := range facts {
		p, err := ingest.FactEvent(f, domain.DefaultCurrency(), domain.Metadata{MessageID: f.OrderID + string(rune('a'+k))})
		require.NoError(t, err)
		_, err = log.Append(ctx, p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
	}
	return log
}

// ageReadModel turns the file at path into one an older ledger wrote:
// rows without books (rewritten through the model, as the old one wrote
// them: a row without books is stored as before), no books marker, index
// version 1 with neither the books sum nor the (day, status) cells.
func ageReadModel(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	rows := allRows(t, rm)
	for i := range rows {
		rows[i].Books = domain.Books{}
	}
	require.NoError(t, rm.Put(ctx, rows))
	require.NoError(t, rm.Close())
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		for _, b := range []string{"rm_meta", "ix_day_status"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("ix_stats")).Delete([]byte("books")); err != nil {
			return err
		}
		return tx.Bucket([]byte("ix_meta")).Put([]byte("version"), binary.BigEndian.AppendUint64(nil, 1))
	}))
	require.NoError(t, db.Close())
}

// A read model written before the books: opening it builds the (day,
// status) cells from its rows, so the period report is right at once, but
// its trial balance is ErrBooksStale, not zeros, until a replay rewrites
// the rows.
func TestAReadModelFromBeforeTheBooksIsStaleUntilAReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := booksLog(t, dir)
	rules := domain.DefaultRules()
	path := filepath.Join(dir, "readmodel.db")
	cur, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	rm := bolt.NewSwappable(cur)
	_, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: rules})
	require.NoError(t, err)
	fresh, err := projections.TrialBalanceNow(ctx, rm, rules.Currency)
	require.NoError(t, err)
	require.True(t, fresh.Balanced)
	require.Equal(t, int64(2700), fresh.Accounts[domain.AccountPaymentsClearing].Debit, "a replayed model has its books")
	wantReport, err := projections.Report(ctx, rm, rules.Currency, projections.BooksQuery{})
	require.NoError(t, err)
	require.NotEmpty(t, wantReport.Rows)
	require.NoError(t, rm.Close())

	ageReadModel(t, path)
	cur, err = bolt.OpenReadModel(path)
	require.NoError(t, err)
	rm = bolt.NewSwappable(cur)
	defer rm.Close()
	ov, err := rm.Overview(ctx)
	require.NoError(t, err)
	assert.True(t, ov.BooksStale)
	assert.Zero(t, ov.Books)
	_, err = projections.TrialBalanceNow(ctx, rm, rules.Currency)
	require.ErrorIs(t, err, projections.ErrBooksStale)
	assert.Contains(t, err.Error(), "ledger replay")
	got, err := projections.Report(ctx, rm, rules.Currency, projections.BooksQuery{})
	require.NoError(t, err, "the cells come from the rows' status and days, which old rows have")
	assert.Equal(t, wantReport, got)

	// New writes do not make the old rows right: still stale.
	row, ok, err := rm.Summary(ctx, "0196a6b0-0000-7000-8000-00000000000c")
	require.NoError(t, err)
	require.True(t, ok)
	row.Books.Balance[domain.AccountPaymentsClearing] = 0
	require.NoError(t, rm.Apply(ctx, projections.ReadModelName, domain.Position{Commit: 99, Prepare: 99}, []projections.Summary{row}))
	ov, err = rm.Overview(ctx)
	require.NoError(t, err)
	assert.True(t, ov.BooksStale)

	_, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: rules})
	require.NoError(t, err)
	after, err := projections.TrialBalanceNow(ctx, rm, rules.Currency)
	require.NoError(t, err, "a replay rewrites every row with its books")
	assert.Equal(t, fresh, after)
	asOf, err := projections.TrialBalanceAsOf(ctx, log, rules, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, fresh, asOf)
}

// A file left with no rows by an older ledger has nothing stale in it.
func TestAnEmptyOldReadModelIsNotStale(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	require.NoError(t, rm.Close())
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("rm_meta")) }))
	require.NoError(t, db.Close())
	rm, err = bolt.OpenReadModel(path)
	require.NoError(t, err)
	defer rm.Close()
	ov, err := rm.Overview(ctx)
	require.NoError(t, err)
	assert.False(t, ov.BooksStale)
}
