package bolt_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

var indexDay0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

var listStatuses = []domain.Status{domain.StatusInit, domain.StatusCharged, domain.StatusFulfilled, domain.StatusRefunded, domain.StatusClosed}

// randomRow is a row as the fold could write it: money split over a few
// days (out of a small set, so days are shared), a checkout day, an
// activity time with ties and, sometimes, none.
func randomRow(rng *rand.Rand, id string) projections.Summary {
	s := projections.Summary{OrderID: id, Stream: domain.StreamName(id), Status: listStatuses[rng.IntN(len(listStatuses))]}
	if rng.IntN(12) == 0 {
		s.Status = "" // facts, no checkout yet
	}
	s.Total = []int64{0, 100, 999, 999, 5000, 12345}[rng.IntN(6)]
	if rng.IntN(10) > 0 {
		s.LastAt = indexDay0.Add(time.Duration(rng.IntN(50)) * time.Hour)
	}
	if s.Status != "" {
		s.CreatedAt = indexDay0.Add(time.Duration(rng.IntN(9*24)) * time.Hour)
	}
	days := map[string]domain.Totals{}
	for range rng.IntN(4) {
		d := indexDay0.AddDate(0, 0, rng.IntN(9)).Format(domain.DayFormat)
		m := domain.Totals{Captured: int64(rng.IntN(3)) * 1000, Refunded: int64(rng.IntN(2)) * 250, ChargedBack: int64(rng.IntN(2)) * 100}
		m.Net = m.Captured - m.Refunded - m.ChargedBack
		days[d] = days[d].Add(m)
	}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		s.Days = append(s.Days, domain.DayMove{Day: d, Money: days[d]})
		s.Money = s.Money.Add(days[d])
	}
	s.Books.Balance[domain.AccountPaymentsClearing] = s.Money.Net
	s.Books.Balance[domain.AccountDeferredRevenue] = -s.Money.Net
	if s.Status == domain.StatusFulfilled {
		s.Books.Recognized = true
		s.Books.Balance[domain.AccountDeferredRevenue], s.Books.Balance[domain.AccountRevenue] = 0, -s.Money.Net
	}
	return s
}

// allRows reads every stored row (the brute force's input).
func allRows(t *testing.T, rm projections.ReadModel) []projections.Summary {
	t.Helper()
	var out []projections.Summary
	for after := ""; ; {
		page, err := rm.Summaries(context.Background(), after, 97)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].OrderID
	}
}

func bruteOverview(rows []projections.Summary) projections.Overview {
	o := projections.Overview{ByStatus: map[domain.Status]int{}}
	for _, st := range domain.Statuses() {
		o.ByStatus[st] = 0
	}
	for _, r := range rows {
		o.Orders++
		o.ByStatus[r.Status]++
		o.Money = o.Money.Add(r.Money)
		o.Books = o.Books.Add(r.Books)
	}
	return o
}

func bruteDays(rows []projections.Summary, from, to string) []projections.DayTotals {
	byDay := map[string]projections.DayTotals{}
	for _, r := range rows {
		for _, d := range r.Days {
			t := byDay[d.Day]
			t.Day, t.Money = d.Day, t.Money.Add(d.Money)
			byDay[d.Day] = t
		}
		if !r.CreatedAt.IsZero() {
			day := r.CreatedAt.UTC().Format(domain.DayFormat)
			t := byDay[day]
			t.Day = day
			t.Orders++
			byDay[day] = t
		}
	}
	out := []projections.DayTotals{}
	for _, d := range slices.Sorted(maps.Keys(byDay)) {
		if (from == "" || d >= from) && (to == "" || d <= to) {
			out = append(out, byDay[d])
		}
	}
	return out
}

// bruteList is the listing q asks for, by filtering and sorting every row.
func bruteList(rows []projections.Summary, q projections.OrderQuery) []string {
	var match []projections.Summary
	for _, r := range rows {
		if (q.Status == "" || r.Status == q.Status) && strings.HasPrefix(r.OrderID, q.Prefix) {
			match = append(match, r)
		}
	}
	slices.SortFunc(match, func(a, b projections.Summary) int {
		var c int
		switch q.Sort {
		case projections.SortByActivity:
			c = b.LastAt.Compare(a.LastAt)
		case projections.SortByAmount:
			c = cmp.Compare(b.Total, a.Total)
		}
		return cmp.Or(c, strings.Compare(a.OrderID, b.OrderID))
	})
	ids := []string{}
	for _, r := range match {
		ids = append(ids, r.OrderID)
	}
	return ids
}

// listAll pages through q with q.Limit, checking each page's size and that
// the last page, and only it, has no cursor.
func listAll(t *testing.T, idx projections.OrderIndex, q projections.OrderQuery) []string {
	t.Helper()
	ids := []string{}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000, "the cursor goes round in circles")
		page, err := idx.Orders(context.Background(), q)
		require.NoError(t, err, "%+v", q)
		require.LessOrEqual(t, len(page.Orders), q.Limit)
		for _, s := range page.Orders {
			ids = append(ids, s.OrderID)
		}
		if page.Next == "" {
			return ids
		}
		require.Len(t, page.Orders, q.Limit, "only the last page is short")
		q.Cursor = page.Next
	}
}

// checkIndexes compares every answer of the index with the brute force over
// the stored rows.
func checkIndexes(t *testing.T, rm *bolt.ReadModel, rng *rand.Rand, prefixes []string) {
	t.Helper()
	ctx := context.Background()
	rows := allRows(t, rm)
	o, err := rm.Overview(ctx)
	require.NoError(t, err)
	o.BooksStale = false // the callers say whether the rows carry books
	assert.Equal(t, bruteOverview(rows), o)
	days, err := rm.Days(ctx, "", "")
	require.NoError(t, err)
	assert.Equal(t, bruteDays(rows, "", ""), days)
	from, to := indexDay0.AddDate(0, 0, 2).Format(domain.DayFormat), indexDay0.AddDate(0, 0, 5).Format(domain.DayFormat)
	for _, r := range [][2]string{{from, to}, {from, ""}, {"", to}, {to, to}} {
		days, err := rm.Days(ctx, r[0], r[1])
		require.NoError(t, err)
		assert.Equal(t, bruteDays(rows, r[0], r[1]), days, "days %s..%s", r[0], r[1])
		cells, err := rm.DayStatus(ctx, r[0], r[1])
		require.NoError(t, err)
		want := projections.DayStatusOf(rows, r[0], r[1])
		if len(want) == 0 {
			want = []projections.DayStatusTotals{}
		}
		assert.Equal(t, want, cells, "day status %s..%s", r[0], r[1])
	}
	for _, sort := range []projections.OrderSort{"", projections.SortByID, projections.SortByActivity, projections.SortByAmount} {
		for _, st := range append([]domain.Status{"", domain.StatusRefunding}, listStatuses...) {
			for _, pre := range prefixes {
				q := projections.OrderQuery{Status: st, Prefix: pre, Sort: sort, Limit: 1 + rng.IntN(9)}
				assert.Equal(t, bruteList(rows, q), listAll(t, rm, q), "%+v", q)
			}
		}
	}
}

// indexIDs are order ids with shared prefixes, so prefix searches match
// some and not others.
func indexIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%02x%06x-0000-7000-8000-%012x", i%5*0x11, i*7919%0xffffff, i)
	}
	return ids
}

var indexPrefixes = []string{"", "0", "00", "22", "3", "4401", "ff", "00000000-nothing"}

func TestOrderIndexMatchesABruteForceAfterRandomWrites(t *testing.T) {
	const seed = 20261101
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	ids := indexIDs(60)
	want := map[string]projections.Summary{}
	for step := range 40 {
		batch := make([]projections.Summary, 1+rng.IntN(12))
		for i := range batch {
			id := ids[rng.IntN(len(ids))] // often one already stored; sometimes twice in a batch
			batch[i] = randomRow(rng, id)
			want[id] = batch[i]
		}
		if step%2 == 0 {
			err = rm.Put(ctx, batch)
		} else {
			err = rm.Apply(ctx, projections.ReadModelName, domain.Position{Commit: uint64(step), Prepare: uint64(step)}, batch)
		}
		require.NoError(t, err)
		if step%8 == 7 {
			t.Logf("seed %d, after step %d", seed, step)
			checkIndexes(t, rm, rng, indexPrefixes)
		}
	}
	stored := allRows(t, rm)
	require.Len(t, stored, len(want))
	for _, s := range stored {
		require.Equal(t, want[s.OrderID].Money, s.Money, "the rows are what was written last")
	}

	o, err := rm.Overview(ctx)
	require.NoError(t, err)
	assert.False(t, o.BooksStale, "every row was written with its books")

	// Reopened, the file answers the same.
	require.NoError(t, rm.Close())
	rm = openReadModel(t, path)
	checkIndexes(t, rm, rng, indexPrefixes)
}

func TestOrdersMoveBetweenStatusListsAndCounters(t *testing.T) {
	ctx := context.Background()
	rm := openReadModel(t, filepath.Join(t.TempDir(), "readmodel.db"))
	ids := indexIDs(3)
	at := indexDay0.Add(10 * time.Hour)
	init := func(id string) projections.Summary {
		return projections.Summary{OrderID: id, Status: domain.StatusInit, Total: 999, LastAt: at, CreatedAt: at}
	}
	require.NoError(t, rm.Put(ctx, []projections.Summary{init(ids[0]), init(ids[1]), init(ids[2])}))

	charged := init(ids[1])
	charged.Status, charged.LastAt = domain.StatusCharged, at.AddDate(0, 0, 1)
	charged.Money = domain.Totals{Captured: 999, Net: 999}
	charged.Days = []domain.DayMove{{Day: "2026-11-02", Money: charged.Money}}
	require.NoError(t, rm.Apply(ctx, projections.ReadModelName, domain.Position{Commit: 1, Prepare: 1}, []projections.Summary{charged}))

	list := func(st domain.Status, sort projections.OrderSort) []string {
		return listAll(t, rm, projections.OrderQuery{Status: st, Sort: sort, Limit: 10})
	}
	assert.Equal(t, []string{ids[0], ids[2]}, list(domain.StatusInit, ""))
	assert.Equal(t, []string{ids[1]}, list(domain.StatusCharged, ""))
	assert.Equal(t, []string{ids[1]}, list(domain.StatusCharged, projections.SortByActivity))
	assert.Equal(t, []string{ids[0], ids[2]}, list(domain.StatusInit, projections.SortByAmount))
	assert.Equal(t, []string{ids[1], ids[0], ids[2]}, list("", projections.SortByActivity), "the charge is the newest activity")
	o, err := rm.Overview(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, o.Orders)
	assert.Equal(t, 2, o.ByStatus[domain.StatusInit])
	assert.Equal(t, 1, o.ByStatus[domain.StatusCharged])
	assert.Equal(t, domain.Totals{Captured: 999, Net: 999}, o.Money)
	days, err := rm.Days(ctx, "", "")
	require.NoError(t, err)
	assert.Equal(t, []projections.DayTotals{
		{Day: "2026-11-01", Orders: 3},
		{Day: "2026-11-02", Money: domain.Totals{Captured: 999, Net: 999}},
	}, days)

	// Folded again to something else (a replay's fix), the money moves
	// with it and a day left with nothing is gone.
	refolded := init(ids[1])
	refolded.Status = domain.StatusClosed
	refolded.CreatedAt = at.AddDate(0, 0, 2)
	require.NoError(t, rm.Put(ctx, []projections.Summary{refolded}))
	days, err = rm.Days(ctx, "", "")
	require.NoError(t, err)
	assert.Equal(t, []projections.DayTotals{{Day: "2026-11-01", Orders: 2}, {Day: "2026-11-03", Orders: 1}}, days)
	o, err = rm.Overview(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, o.ByStatus[domain.StatusCharged])
	assert.Equal(t, 1, o.ByStatus[domain.StatusClosed])
	assert.Equal(t, domain.Totals{}, o.Money)
	assert.Empty(t, list(domain.StatusCharged, projections.SortByAmount))
}

func TestOrdersPageSizeAndBadQueries(t *testing.T) {
	ctx := context.Background()
	rm := openReadModel(t, filepath.Join(t.TempDir(), "readmodel.db"))
	ids := indexIDs(520)
	rows := make([]projections.Summary, len(ids))
	for i, id := range ids {
		rows[i] = projections.Summary{OrderID: id, Status: domain.StatusInit, Total: int64(i)}
	}
	require.NoError(t, rm.Put(ctx, rows))

	page, err := rm.Orders(ctx, projections.OrderQuery{})
	require.NoError(t, err)
	assert.Len(t, page.Orders, 50, "the default page")
	assert.NotEmpty(t, page.Next)
	page, err = rm.Orders(ctx, projections.OrderQuery{Sort: projections.SortByAmount, Limit: 10_000})
	require.NoError(t, err)
	assert.Len(t, page.Orders, 500, "pages are capped")
	assert.Equal(t, int64(519), page.Orders[0].Total)
	next := page.Next
	page, err = rm.Orders(ctx, projections.OrderQuery{Sort: projections.SortByAmount, Limit: 500, Cursor: next})
	require.NoError(t, err)
	assert.Len(t, page.Orders, 20)
	assert.Empty(t, page.Next)

	for _, q := range []projections.OrderQuery{
		{Sort: "newest"},
		{Status: "PAID"},
		{Cursor: "!!not base64!!"},
		{Sort: projections.SortByID, Cursor: next}, // a cursor of the amount listing
		{Sort: projections.SortByAmount, Status: domain.StatusInit, Cursor: next},
	} {
		_, err := rm.Orders(ctx, q)
		assert.ErrorIs(t, err, projections.ErrInvalidQuery, "%+v", q)
	}
	_, err = rm.Days(ctx, "2026-13-01", "")
	assert.ErrorIs(t, err, projections.ErrInvalidQuery)
	_, err = rm.Days(ctx, "", "yesterday")
	assert.ErrorIs(t, err, projections.ErrInvalidQuery)
}

func TestOrderIndexIsBuiltOnceForAFileWithoutOne(t *testing.T) {
	t.Run("one chunk", func(t *testing.T) { indexBuiltOnce(t) })
	t.Run("many chunks", func(t *testing.T) {
		// 80 rows in transactions of 7: the chunk boundaries are where a
		// row would be counted twice or skipped.
		defer bolt.SetBuildChunk(7)()
		indexBuiltOnce(t)
	})
}

func indexBuiltOnce(t *testing.T) {
	const seed = 20261102
	rng := rand.New(rand.NewPCG(seed, 1))
	path := filepath.Join(t.TempDir(), "readmodel.db")
	// A read model as older ledgers wrote it: summaries (some without days
	// or a checkout time) and no index buckets.
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	ids := indexIDs(80)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		sums, err := tx.CreateBucket([]byte("summaries"))
		if err != nil {
			return err
		}
		for i, id := range ids {
			s := randomRow(rng, id)
			if i%3 == 0 {
				s.Days, s.CreatedAt = nil, time.Time{}
			}
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			if err := sums.Put([]byte(id), b); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	checkIndexes(t, rm, rng, indexPrefixes)
	o, err := rm.Overview(context.Background())
	require.NoError(t, err)
	assert.Equal(t, len(ids), o.Orders)
	assert.True(t, o.BooksStale, "rows from an older ledger")
	require.NoError(t, rm.Close())

	// The build left its version mark: the next open builds nothing.
	db, err = bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("ix_meta"))
		require.NotNil(t, meta)
		assert.NotNil(t, meta.Get([]byte("version")))
		return nil
	}))
	require.NoError(t, db.Close())
	rm = openReadModel(t, path)
	checkIndexes(t, rm, rng, indexPrefixes)
}

func TestDeferredIndexesAreBuiltAtTheEndAndKeptAfter(t *testing.T) {
	const seed = 20261103
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	defer bolt.SetBuildChunk(7)() // several transactions per index
	path := filepath.Join(t.TempDir(), "readmodel.db.replay-1")
	rm, err := bolt.OpenReadModelWith(path, bolt.ReadModelOptions{NoSync: true, DeferIndexes: true})
	require.NoError(t, err)
	ids := indexIDs(60)
	for range 10 {
		batch := make([]projections.Summary, 1+rng.IntN(20))
		for i := range batch {
			batch[i] = randomRow(rng, ids[rng.IntN(len(ids))]) // a replay writes some orders twice
		}
		require.NoError(t, rm.Put(ctx, batch))
	}
	// A write that fails leaves nothing behind for the build either.
	failed := []projections.Summary{randomRow(rng, "ffffffff-0000-7000-8000-000000000000"), {OrderID: ""}}
	require.Error(t, rm.Put(ctx, failed), "bbolt refuses an empty key")
	_, err = rm.Orders(ctx, projections.OrderQuery{})
	assert.Error(t, err, "no answers before the indexes are built")
	_, err = rm.Overview(ctx)
	assert.Error(t, err)

	require.NoError(t, rm.BuildIndexes(ctx))
	checkIndexes(t, rm, rng, indexPrefixes)
	// From then on every write keeps them, as in a live file.
	for step := range 5 {
		batch := []projections.Summary{randomRow(rng, ids[rng.IntN(len(ids))]), randomRow(rng, ids[rng.IntN(len(ids))])}
		require.NoError(t, rm.Apply(ctx, projections.ReadModelName, domain.Position{Commit: uint64(step + 1)}, batch))
	}
	checkIndexes(t, rm, rng, indexPrefixes)
	require.NoError(t, rm.Sync())
	require.NoError(t, rm.Close())
	rm = openReadModel(t, path)
	checkIndexes(t, rm, rng, indexPrefixes)
}

func TestADeferredFileLeftUnbuiltIsIndexedWhenOpened(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261104, 1))
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm, err := bolt.OpenReadModelWith(path, bolt.ReadModelOptions{DeferIndexes: true})
	require.NoError(t, err)
	ids := indexIDs(40)
	rows := make([]projections.Summary, len(ids))
	for i, id := range ids {
		rows[i] = randomRow(rng, id)
	}
	require.NoError(t, rm.Put(ctx, rows))
	require.NoError(t, rm.Close()) // no BuildIndexes: a rebuild that stopped half-way

	rm = openReadModel(t, path)
	checkIndexes(t, rm, rng, indexPrefixes)
	require.NoError(t, rm.Close())
	_, err = bolt.OpenReadModelWith(path, bolt.ReadModelOptions{DeferIndexes: true})
	assert.ErrorContains(t, err, "needs a new read model", "writes without the indexes into a file that has them would leave them wrong")
}
