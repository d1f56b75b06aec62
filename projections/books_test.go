package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

func TestBooksQueryValidate(t *testing.T) {
	for _, q := range []projections.BooksQuery{{}, {From: "2026-11-01"}, {To: "2026-11-30", By: projections.PeriodMonth},
		{From: "2026-11-01", To: "2026-11-01", By: projections.PeriodDay}} {
		assert.NoError(t, q.Validate(), "%+v", q)
	}
	for _, q := range []projections.BooksQuery{{From: "2026-11-31"}, {To: "11/01/2026"}, {From: "2026-11-02", To: "2026-11-01"}, {By: "week"}} {
		err := q.Validate()
		assert.ErrorIs(t, err, projections.ErrInvalidQuery, "%+v", q)
	}
}

func cellsFixture() []projections.DayStatusTotals {
	m := func(c, r int64) domain.Totals { return domain.Totals{Captured: c, Refunded: r, Net: c - r} }
	return []projections.DayStatusTotals{ // out of order on purpose
		{Day: "2026-11-02", Status: domain.StatusInit, Orders: 1},
		{Day: "2026-10-31", Status: domain.StatusRefunded, Orders: 1, Money: m(100, 0)},
		{Day: "2026-11-01", Status: domain.StatusRefunded, Money: m(0, 100)},
		{Day: "2026-11-01", Status: domain.StatusCharged, Orders: 2, Money: m(700, 0)},
		{Day: "2026-11-02", Status: domain.StatusCharged, Orders: 1, Money: m(50, 0)},
		{Day: "2026-10-31", Status: domain.StatusCharged, Orders: 1, Money: m(20, 0)},
	}
}

func TestBuildReportByDayAndMonth(t *testing.T) {
	cur := domain.DefaultCurrency()
	m := func(c, r int64) domain.Totals { return domain.Totals{Captured: c, Refunded: r, Net: c - r} }
	byDay := projections.BuildReport(cur, projections.BooksQuery{}, cellsFixture())
	assert.Equal(t, "USD", byDay.Currency)
	assert.Equal(t, projections.PeriodDay, byDay.By)
	assert.Equal(t, []projections.BooksRow{
		{Period: "2026-10-31", Status: domain.StatusCharged, Orders: 1, Money: m(20, 0)},
		{Period: "2026-10-31", Status: domain.StatusRefunded, Orders: 1, Money: m(100, 0)},
		{Period: "2026-11-01", Status: domain.StatusCharged, Orders: 2, Money: m(700, 0)},
		{Period: "2026-11-01", Status: domain.StatusRefunded, Money: m(0, 100)},
		{Period: "2026-11-02", Status: domain.StatusInit, Orders: 1},
		{Period: "2026-11-02", Status: domain.StatusCharged, Orders: 1, Money: m(50, 0)},
	}, byDay.Rows)
	assert.Equal(t, []projections.BooksRow{
		{Period: "2026-10-31", Orders: 2, Money: m(120, 0)},
		{Period: "2026-11-01", Orders: 2, Money: m(700, 100)},
		{Period: "2026-11-02", Orders: 2, Money: m(50, 0)},
	}, byDay.Periods)
	assert.Equal(t, projections.BooksRow{Period: projections.TotalPeriod, Orders: 6, Money: m(870, 100)}, byDay.Total)

	byMonth := projections.BuildReport(cur, projections.BooksQuery{By: projections.PeriodMonth}, cellsFixture())
	assert.Equal(t, []projections.BooksRow{
		{Period: "2026-10", Status: domain.StatusCharged, Orders: 1, Money: m(20, 0)},
		{Period: "2026-10", Status: domain.StatusRefunded, Orders: 1, Money: m(100, 0)},
		{Period: "2026-11", Status: domain.StatusInit, Orders: 1},
		{Period: "2026-11", Status: domain.StatusCharged, Orders: 3, Money: m(750, 0)},
		{Period: "2026-11", Status: domain.StatusRefunded, Money: m(0, 100)},
	}, byMonth.Rows, "a month's statuses in lifecycle order though its cells came day by day")
	assert.Equal(t, []projections.BooksRow{{Period: "2026-10", Orders: 2, Money: m(120, 0)}, {Period: "2026-11", Orders: 4, Money: m(750, 100)}}, byMonth.Periods)
	assert.Equal(t, byDay.Total, byMonth.Total)

	ranged := projections.BuildReport(cur, projections.BooksQuery{From: "2026-11-01", To: "2026-11-01", By: projections.PeriodMonth}, cellsFixture())
	assert.Equal(t, []projections.BooksRow{{Period: "2026-11", Orders: 2, Money: m(700, 100)}}, ranged.Periods, "only the days asked")
	assert.Equal(t, "2026-11-01", ranged.From)

	empty := projections.BuildReport(cur, projections.BooksQuery{}, nil)
	js, err := json.Marshal(empty)
	require.NoError(t, err)
	assert.JSONEq(t, `{"currency":"USD","by":"day","rows":[],"periods":[],"total":{"period":"total","orders":0,
		"money":{"captured":0,"refunded":0,"chargedBack":0,"reversed":0,"net":0}}}`, string(js))
}

func TestTrialBalanceOf(t *testing.T) {
	var b domain.Books
	b.Balance[domain.AccountPaymentsClearing] = 900
	b.Balance[domain.AccountDeferredRevenue] = -200
	b.Balance[domain.AccountRevenue] = -800
	b.Balance[domain.AccountRefunds] = 100
	tb := projections.TrialBalanceOf(domain.Currency{Code: "EUR", Decimals: 2}, b, 3)
	assert.True(t, tb.Balanced)
	assert.Equal(t, int64(1000), tb.Debits)
	assert.Equal(t, int64(1000), tb.Credits)
	require.Len(t, tb.Accounts, domain.NumAccounts)
	assert.Equal(t, projections.AccountLine{Account: domain.AccountDeferredRevenue, Code: "2100", Title: "Deferred revenue", Normal: domain.Credit, Credit: 200}, tb.Accounts[1])
	assert.Equal(t, projections.AccountLine{Account: domain.AccountChargebacks, Code: "4200", Title: "Chargebacks", Normal: domain.Debit}, tb.Accounts[4])
	js, err := json.Marshal(tb)
	require.NoError(t, err)
	assert.Contains(t, string(js), `{"account":"payments_clearing","code":"1100","title":"Payments clearing","normal":"debit","debit":900,"credit":0}`)
	assert.Contains(t, string(js), `"currency":"EUR","orders":3,`)
	assert.NotContains(t, string(js), "asOf")

	b.Balance[domain.AccountChargebacks] = 1
	off := projections.TrialBalanceOf(domain.DefaultCurrency(), b, 3)
	assert.False(t, off.Balanced)
	assert.Equal(t, int64(1001), off.Debits)
}

func TestReportRefusesWhatTheReadModelCannotAnswer(t *testing.T) {
	rm := openRM(t)
	_, err := projections.Report(context.Background(), rm, rules.Currency, projections.BooksQuery{AsOf: t0})
	assert.ErrorIs(t, err, projections.ErrInvalidQuery)
	_, err = projections.Report(context.Background(), rm, rules.Currency, projections.BooksQuery{By: "year"})
	assert.ErrorIs(t, err, projections.ErrInvalidQuery)
}

// booksHistories are random histories of n orders, their facts dated over
// eight days across a month's end, interleaved in one arrival order; some
// facts are redelivered (same message id).
type booksFact struct {
	msgID string
	fact  domain.Fact
}

func booksHistories(rng *rand.Rand, n int) []booksFact {
	day0 := time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)
	amounts := []int64{100, 2500, 4000, 9999}
	types := []domain.FactType{domain.FactBasketDeletedComplete, domain.FactBasketDeletedFailed, domain.FactOrderCompleted, domain.FactOrderCompleted,
		domain.FactOrderCancelled, domain.FactOrderRefundRequested, domain.FactPaymentRefunded, domain.FactPaymentRefundFailed,
		domain.FactPaymentChargeback, domain.FactPaymentChargebackReversed, domain.FactOrderFulfillFailed, domain.FactPlacementTimedOut}
	var per [][]booksFact
	for i := range n {
		id := fmt.Sprintf("0196a6b0-0000-7000-8000-%012x", 0xb0000+i)
		at := day0.Add(time.Duration(rng.IntN(6*24)) * time.Hour)
		var h []booksFact
		if rng.IntN(8) > 0 {
			h = append(h, booksFact{fmt.Sprintf("m-%d-0", i), domain.Fact{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: 9999, HasAmount: true, At: at}})
		}
		for k := range rng.IntN(7) {
			at = at.Add(time.Duration(rng.IntN(40)) * time.Hour)
			f := domain.Fact{Type: types[rng.IntN(len(types))], OrderID: id, At: at}
			switch f.Type {
			case domain.FactBasketDeletedComplete, domain.FactBasketDeletedFailed, domain.FactOrderCompleted, domain.FactOrderCancelled:
				f.BasketID, f.Amount, f.HasAmount = id, 9999, true
			case domain.FactPaymentRefunded, domain.FactPaymentRefundFailed, domain.FactPaymentChargeback, domain.FactPaymentChargebackReversed:
				f.Amount, f.HasAmount, f.ProviderRef = amounts[rng.IntN(len(amounts))], true, "p"
			case domain.FactOrderRefundRequested:
				if rng.IntN(2) == 0 {
					f.Amount, f.HasAmount = amounts[rng.IntN(len(amounts))], true
				}
			case domain.FactPlacementTimedOut:
				f.Attempt = 1 + rng.IntN(3)
			}
			h = append(h, booksFact{fmt.Sprintf("m-%d-%d", i, k+1), f})
			if rng.IntN(10) == 0 {
				h = append(h, h[rng.IntN(len(h))]) // a redelivery
			}
		}
		per = append(per, h)
	}
	var out []booksFact
	for len(per) > 0 {
		j := rng.IntN(len(per))
		if len(per[j]) == 0 {
			per = append(per[:j], per[j+1:]...)
			continue
		}
		out = append(out, per[j][0])
		per[j] = per[j][1:]
	}
	return out
}

func appendBooksFacts(t *testing.T, l domain.EventLog, facts []booksFact) {
	t.Helper()
	for _, bf := range facts {
		p, err := ingest.FactEvent(bf.fact, rules.Currency, domain.Metadata{CorrelationID: bf.fact.OrderID, MessageID: bf.msgID, Envelope: domain.EnvelopeMassTransit})
		require.NoError(t, err, "%s %+v", bf.msgID, bf.fact)
		_, err = l.Append(context.Background(), p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
	}
}

// followToHead runs the read-model projection until it has folded the
// whole log.
func followToHead(t *testing.T, l domain.EventLog, rm projections.ReadModel) {
	t.Helper()
	head, ok, err := l.Head(context.Background())
	require.NoError(t, err)
	require.True(t, ok)
	runFor(t, projections.NewOrders(l, rm, projections.ReadModelConfig{Rules: rules}).Run, func() bool {
		cp, err := rm.Checkpoint(context.Background(), projections.ReadModelName)
		return err == nil && cp != nil && *cp == head
	})
}

// lastCreated is the latest recorded time of the log's events, and the
// earliest after position after (zero when none).
func recordedTimes(t *testing.T, l domain.EventLog, after domain.Position) (last, firstAfter time.Time) {
	t.Helper()
	evs, err := l.ReadAll(context.Background(), nil, 0)
	require.NoError(t, err)
	for _, e := range evs {
		if after.Less(e.Position) {
			if firstAfter.IsZero() || e.Created.Before(firstAfter) {
				firstAfter = e.Created
			}
			continue
		}
		if e.Created.After(last) {
			last = e.Created
		}
	}
	return last, firstAfter
}

var booksQueries = []projections.BooksQuery{{}, {By: projections.PeriodMonth}, {From: "2026-10-31", To: "2026-11-02"}, {From: "2026-11-01", By: projections.PeriodMonth}}

type booksView struct {
	reports []projections.BooksReport
	tb      projections.TrialBalance
}

func viewOfIndex(t *testing.T, ix projections.OrderIndex) booksView {
	t.Helper()
	var v booksView
	for _, q := range booksQueries {
		rep, err := projections.Report(context.Background(), ix, rules.Currency, q)
		require.NoError(t, err)
		v.reports = append(v.reports, rep)
	}
	tb, err := projections.TrialBalanceNow(context.Background(), ix, rules.Currency)
	require.NoError(t, err)
	v.tb = tb
	return v
}

func viewAsOf(t *testing.T, l domain.EventLog, asOf time.Time) booksView {
	t.Helper()
	var v booksView
	for _, q := range booksQueries {
		q.AsOf = asOf
		rep, err := projections.ReportAsOf(context.Background(), l, rules, q)
		require.NoError(t, err)
		rep.AsOf = time.Time{} // compared with the read model's, which has none
		v.reports = append(v.reports, rep)
	}
	tb, err := projections.TrialBalanceAsOf(context.Background(), l, rules, asOf)
	require.NoError(t, err)
	assert.True(t, tb.AsOf.Equal(asOf))
	tb.AsOf = time.Time{}
	v.tb = tb
	return v
}

// The books from the read model (kept by the live projection, fact by
// fact, and by a replay) equal the books folded from the log as of now;
// and as of a moment between two arrivals they are what the read model
// said at that moment: only the earlier facts count.
func TestBooksFromTheReadModelEqualTheLogAsOf(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			l, rm := openLog(t), openRM(t)
			facts := booksHistories(rng, 60)
			cut := len(facts) * 3 / 5
			appendBooksFacts(t, l, facts[:cut])
			followToHead(t, l, rm)
			then := viewOfIndex(t, rm)
			headThen, _, err := l.Head(context.Background())
			require.NoError(t, err)

			appendBooksFacts(t, l, facts[cut:])
			followToHead(t, l, rm)
			now := viewOfIndex(t, rm)
			require.NotEqual(t, then, now, "the later facts moved the books")
			assert.True(t, now.tb.Balanced, "%+v", now.tb)
			ov, err := rm.Overview(context.Background())
			require.NoError(t, err)
			assert.Equal(t, ov.Money.Net, now.tb.Accounts[domain.AccountPaymentsClearing].Debit-now.tb.Accounts[domain.AccountPaymentsClearing].Credit)
			assert.Equal(t, now, viewAsOf(t, l, time.Time{}), "every fact")
			assert.Equal(t, now, viewAsOf(t, l, time.Now()), "as of now")

			at, firstAfter := recordedTimes(t, l, headThen)
			require.True(t, firstAfter.After(at), "the later facts were recorded after the earlier ones")
			assert.Equal(t, then, viewAsOf(t, l, at), "as of the last earlier fact")
			mid := at.Add(firstAfter.Sub(at) / 2)
			assert.Equal(t, then, viewAsOf(t, l, mid), "as of a moment between the two")

			// A replay writes the same books as the live projection.
			next, err := bolt.OpenReadModelWith(filepath.Join(t.TempDir(), "replay.db"), bolt.ReadModelOptions{NoSync: true, DeferIndexes: true})
			require.NoError(t, err)
			defer next.Close()
			_, err = projections.Replay(context.Background(), l, projections.ReplayOptions{Rules: rules, Sink: next})
			require.NoError(t, err)
			require.NoError(t, next.BuildIndexes(context.Background()))
			assert.Equal(t, now, viewOfIndex(t, next), "replayed")
		})
	}
}

func TestFoldAsOfSeesOnlyEarlierFacts(t *testing.T) {
	l := openLog(t)
	ctx := context.Background()
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	first, _, err := l.Head(ctx)
	require.NoError(t, err)
	appendFact(t, l, "m3", completed(orderA, t0.Add(2*time.Minute)))
	appendFact(t, l, "m4", checkout(orderB, t0.Add(3*time.Minute)))
	at, after := recordedTimes(t, l, first)
	require.True(t, after.After(at))

	rows, err := projections.FoldAsOf(ctx, l, rules, at)
	require.NoError(t, err)
	require.Len(t, rows, 1, "order B's checkout came later")
	assert.Equal(t, domain.StatusCharged, rows[0].Status)
	assert.EqualValues(t, 1, rows[0].Revision)
	assert.Equal(t, 2, rows[0].Facts)
	assert.False(t, rows[0].Books.Recognized)
	assert.Equal(t, int64(-9999), rows[0].Books.Of(domain.AccountDeferredRevenue))

	rows, err = projections.FoldAsOf(ctx, l, rules, time.Time{})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, []string{orderA, orderB}, []string{rows[0].OrderID, rows[1].OrderID})
	assert.Equal(t, domain.StatusFulfilled, rows[0].Status)
	assert.Equal(t, int64(-9999), rows[0].Books.Of(domain.AccountRevenue))

	none, err := projections.FoldAsOf(ctx, l, rules, t0.AddDate(-10, 0, 0))
	require.NoError(t, err)
	assert.Empty(t, none)
	tb, err := projections.TrialBalanceAsOf(ctx, l, rules, t0.AddDate(-10, 0, 0))
	require.NoError(t, err)
	assert.True(t, tb.Balanced)
	assert.Zero(t, tb.Orders)
	assert.True(t, strings.HasPrefix(tb.Currency, "USD"))
}
