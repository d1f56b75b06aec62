package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// booksFacts are three orders over two days in two months, with known
// books:
//
//	A  checkout 50.00 on 2025-10-31, charged, fulfilled; 10.00 refunded on 2025-11-01 (REFUNDED)
//	B  checkout 20.00 on 2025-11-01, charged (CHARGED)
//	C  checkout 7.00 on 2025-11-01 (INIT)
//
// Trial balance: payments clearing 60.00 Dr (the net), revenue 50.00 Cr
// (A's, earned at fulfilment), refunds 10.00 Dr (after it), deferred
// revenue 20.00 Cr (B's, not yet earned): debits 70.00 = credits 70.00.
type booksFacts struct {
	dir         string
	a, b, c     string
	charged     time.Time // when the store recorded A's charge
	fulfilled   time.Time // and its fulfilment; B, C and A's refund after
	beforeFirst time.Time
}

var (
	booksDay1 = time.Date(2025, 10, 31, 10, 0, 0, 0, time.UTC)
	booksDay2 = time.Date(2025, 11, 1, 8, 0, 0, 0, time.UTC)
)

func seedBooks(t *testing.T) booksFacts {
	t.Helper()
	bf := booksFacts{dir: t.TempDir(), a: domain.NameUUID("books-test", "a"), b: domain.NameUUID("books-test", "b"),
		c: domain.NameUUID("books-test", "c"), beforeFirst: time.Now().UTC().Add(-time.Hour)}
	l, err := bolt.Open(filepath.Join(bf.dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	ctx := context.Background()
	cur := domain.DefaultRules().Currency
	name, email := "Ada Lovelace", "ada@example.test"
	add := func(typ domain.FactType, order string, amount int64, at time.Time) time.Time {
		t.Helper()
		f := domain.Fact{Type: typ, OrderID: order, At: at, Amount: amount, HasAmount: true}
		if typ != domain.FactOrderRefundRequested {
			f.BasketID = domain.NameUUID("basket", order)
		}
		if typ == domain.FactUserCheckedOut || typ == domain.FactOrderCompleted {
			f.FullName, f.Email = &name, &email
		}
		if typ == domain.FactOrderRefundRequested {
			f.Reason = "damaged in transit"
		}
		require.NoError(t, f.Validate())
		msgID := domain.NameUUID("books-test", order, string(typ))
		p, err := ingest.FactEvent(f, cur, domain.Metadata{CorrelationID: order, MessageID: msgID, Envelope: domain.EnvelopeMassTransit, ReceivedAt: at})
		require.NoError(t, err)
		res, err := l.Append(ctx, p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
		evs, err := l.ReadStream(ctx, p.Stream, res.NextRevision, domain.Forwards, 1)
		require.NoError(t, err)
		return evs[0].Created
	}
	add(domain.FactUserCheckedOut, bf.a, 5000, booksDay1)
	bf.charged = add(domain.FactBasketDeletedComplete, bf.a, 5000, booksDay1.Add(5*time.Minute))
	bf.fulfilled = add(domain.FactOrderCompleted, bf.a, 5000, booksDay1.Add(time.Hour))
	add(domain.FactUserCheckedOut, bf.b, 2000, booksDay2)
	add(domain.FactBasketDeletedComplete, bf.b, 2000, booksDay2.Add(time.Minute))
	add(domain.FactUserCheckedOut, bf.c, 700, booksDay2.Add(4*time.Hour))
	refunded := add(domain.FactOrderRefundRequested, bf.a, 1000, booksDay2.Add(time.Hour))
	require.True(t, bf.charged.Before(bf.fulfilled) && bf.fulfilled.Before(refunded), "the store records later appends later")
	return bf
}

func (bf booksFacts) env() map[string]string { return map[string]string{"LEDGER_DATA_DIR": bf.dir} }

// balances is a trial balance's lines by account name: debit, credit.
func balances(tb projections.TrialBalance) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, l := range tb.Accounts {
		out[l.Account.Name()] = [2]int64{l.Debit, l.Credit}
	}
	return out
}

func TestBooksTrialBalanceAndReportFromTheReadModel(t *testing.T) {
	bf := seedBooks(t)
	env := bf.env()
	_, _, err := ledger(t, env, "books", "trial-balance")
	require.ErrorContains(t, err, "no read model", "the tools never create it")
	_, _, err = ledger(t, env, "replay")
	require.NoError(t, err)

	out, _, err := ledger(t, env, "books", "trial-balance")
	require.NoError(t, err, "balanced books exit 0")
	assert.Contains(t, out, "trial balance (USD) of 3 orders, now (the read model)")
	assert.Contains(t, out, "balanced: debits equal credits")
	assert.Contains(t, out, `CODE  ACCOUNT            NORMAL  DEBIT  CREDIT
1100  Payments clearing  debit   60.00
2100  Deferred revenue   credit          20.00
4000  Revenue            credit          50.00
4100  Refunds            debit   10.00
4200  Chargebacks        debit    0.00
      total                      70.00   70.00
`, "each balance on its side")

	js, _, err := ledger(t, env, "books", "trial-balance", "--json")
	require.NoError(t, err)
	assertCamelCase(t, []byte(js))
	var tb projections.TrialBalance
	require.NoError(t, json.Unmarshal([]byte(js), &tb))
	assert.True(t, tb.Balanced)
	assert.Equal(t, 3, tb.Orders)
	assert.Equal(t, int64(7000), tb.Debits)
	assert.Equal(t, int64(7000), tb.Credits)
	assert.Equal(t, map[string][2]int64{"payments_clearing": {6000, 0}, "deferred_revenue": {0, 2000}, "revenue": {0, 5000},
		"refunds": {1000, 0}, "chargebacks": {0, 0}}, balances(tb))

	// CSV: one line per period and status, in the ledger's decimals.
	csvOut, _, err := ledger(t, env, "books", "report", "--csv")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{httpapi.BooksCSVHeader,
		{"2025-10-31", "REFUNDED", "1", "50.00", "0.00", "0.00", "0.00", "50.00", "USD"},
		{"2025-11-01", "INIT", "1", "0.00", "0.00", "0.00", "0.00", "0.00", "USD"},
		{"2025-11-01", "CHARGED", "1", "20.00", "0.00", "0.00", "0.00", "20.00", "USD"},
		{"2025-11-01", "REFUNDED", "0", "0.00", "10.00", "0.00", "0.00", "-10.00", "USD"},
	}, recs)
	csvOut, _, err = ledger(t, env, "books", "report", "--csv", "--from", "2025-11-01", "--to", "2025-11-01")
	require.NoError(t, err)
	recs, err = csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	require.NoError(t, err)
	assert.Len(t, recs, 4, "the header and 2025-11-01's three statuses")

	// JSON by month: October has A's capture, November the rest.
	js, _, err = ledger(t, env, "books", "report", "--by", "month", "--json")
	require.NoError(t, err)
	assertCamelCase(t, []byte(js))
	var rep projections.BooksReport
	require.NoError(t, json.Unmarshal([]byte(js), &rep))
	assert.Equal(t, projections.PeriodMonth, rep.By)
	assert.Equal(t, "USD", rep.Currency)
	require.Len(t, rep.Periods, 2)
	assert.Equal(t, projections.BooksRow{Period: "2025-10", Orders: 1, Money: domain.Totals{Captured: 5000, Net: 5000}}, rep.Periods[0])
	assert.Equal(t, projections.BooksRow{Period: "2025-11", Orders: 2, Money: domain.Totals{Captured: 2000, Refunded: 1000, Net: 1000}}, rep.Periods[1])
	assert.Equal(t, projections.BooksRow{Period: projections.TotalPeriod, Orders: 3, Money: domain.Totals{Captured: 7000, Refunded: 1000, Net: 6000}}, rep.Total)
	var statuses []string
	for _, r := range rep.Rows {
		statuses = append(statuses, r.Period+" "+string(r.Status))
	}
	assert.Equal(t, []string{"2025-10 REFUNDED", "2025-11 INIT", "2025-11 CHARGED", "2025-11 REFUNDED"}, statuses)

	table, _, err := ledger(t, env, "books", "report")
	require.NoError(t, err)
	assert.Contains(t, table, "books (USD) by day, every day, now (the read model)")
	assert.Regexp(t, `2025-11-01\s+REFUNDED\s+0\s+0\.00\s+10\.00\s+0\.00\s+0\.00\s+-10\.00`, table)
	assert.Regexp(t, `\n\s+all\s+2\s+20\.00\s+10\.00\s+0\.00\s+0\.00\s+10\.00\n`, table, "the day's subtotal")
	assert.Regexp(t, `total\s+all\s+3\s+70\.00\s+10\.00\s+0\.00\s+0\.00\s+60\.00`, table)

	for args, want := range map[string]string{
		"report --by week":                         "by \"week\"",
		"report --from 2025-11-31":                 "from \"2025-11-31\"",
		"report --from 2025-11-02 --to 2025-11-01": "before from",
		"report --csv --json":                      "choose one",
		"report --as-of soon":                      "--as-of: \"soon\" is not a moment",
		"trial-balance --as-of 2025-11-20T10:00":   "RFC 3339",
	} {
		_, _, err := ledger(t, env, append([]string{"books"}, strings.Fields(args)...)...)
		assert.ErrorContains(t, err, want, args)
	}
}

// TestBooksTrialBalanceFailsWhenTheBooksDoNotBalance: a row whose books
// do not balance, written through the bolt read model, makes the trial
// balance exit non-zero naming the currency and the difference.
func TestBooksTrialBalanceFailsWhenTheBooksDoNotBalance(t *testing.T) {
	bf := seedBooks(t)
	env := bf.env()
	_, _, err := ledger(t, env, "replay")
	require.NoError(t, err)

	rm, err := bolt.OpenReadModel(filepath.Join(bf.dir, "readmodel.db"))
	require.NoError(t, err)
	ctx := context.Background()
	cp, err := rm.Checkpoint(ctx, projections.ReadModelName)
	require.NoError(t, err)
	require.NotNil(t, cp)
	odd := domain.NameUUID("books-test", "unbalanced")
	row := projections.Summary{OrderID: odd, Stream: domain.StreamName(odd), Status: domain.StatusCharged, Total: 500, Facts: 2,
		Money: domain.Totals{Captured: 500, Net: 500}, CreatedAt: booksDay2,
		Days: []domain.DayMove{{Day: "2025-11-01", Money: domain.Totals{Captured: 500, Net: 500}}}}
	row.Books.Balance[domain.AccountPaymentsClearing] = 500 // and no credit
	require.NoError(t, rm.Apply(ctx, projections.ReadModelName, *cp, []projections.Summary{row}))
	require.NoError(t, rm.Close())

	out, _, err := ledger(t, env, "books", "trial-balance")
	require.Error(t, err, "unbalanced books exit non-zero")
	assert.Equal(t, "the books do not balance in USD: debits 75.00, credits 70.00, difference 5.00", err.Error())
	assert.Contains(t, out, "NOT BALANCED: debits - credits = 5.00")
	assert.Contains(t, out, "4 orders")

	js, _, err := ledger(t, env, "books", "trial-balance", "--json")
	require.Error(t, err)
	var tb projections.TrialBalance
	require.NoError(t, json.Unmarshal([]byte(js), &tb), "the JSON is printed before the failure")
	assert.False(t, tb.Balanced)
	assert.Equal(t, [2]int64{6500, 0}, balances(tb)["payments_clearing"])

	// The facts themselves balance: folded as of now, the odd row (which
	// no fact made) is not there.
	_, _, err = ledger(t, env, "books", "trial-balance", "--as-of", time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	require.NoError(t, err)
}

// TestBooksAsOfFoldsOnlyTheFactsRecordedByThen: as of the moment A's
// fulfilment was recorded, the books hold A's 50.00 as revenue and
// nothing else; before the first fact they are empty and balanced.
func TestBooksAsOfFoldsOnlyTheFactsRecordedByThen(t *testing.T) {
	bf := seedBooks(t)
	env := bf.env()
	asOf := bf.fulfilled.Format(time.RFC3339Nano)

	js, _, err := ledger(t, env, "books", "trial-balance", "--as-of", asOf, "--json")
	require.NoError(t, err, "as of a moment needs no read model")
	var tb projections.TrialBalance
	require.NoError(t, json.Unmarshal([]byte(js), &tb))
	assert.True(t, bf.fulfilled.Equal(tb.AsOf))
	assert.Equal(t, 1, tb.Orders)
	assert.Equal(t, map[string][2]int64{"payments_clearing": {5000, 0}, "deferred_revenue": {0, 0}, "revenue": {0, 5000},
		"refunds": {0, 0}, "chargebacks": {0, 0}}, balances(tb))
	out, _, err := ledger(t, env, "books", "trial-balance", "--as-of", asOf)
	require.NoError(t, err)
	assert.Contains(t, out, "of 1 orders, as of "+asOf+": the facts recorded by then, folded with today's rules")

	// As of A's charge the 50.00 was still owed to the customer.
	js, _, err = ledger(t, env, "books", "trial-balance", "--as-of", bf.charged.Format(time.RFC3339Nano), "--json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(js), &tb))
	assert.Equal(t, [2]int64{0, 5000}, balances(tb)["deferred_revenue"])
	assert.Equal(t, [2]int64{0, 0}, balances(tb)["revenue"])

	csvOut, _, err := ledger(t, env, "books", "report", "--csv", "--as-of", asOf)
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{httpapi.BooksCSVHeader, {"2025-10-31", "FULFILLED", "1", "50.00", "0.00", "0.00", "0.00", "50.00", "USD"}}, recs,
		"then A was FULFILLED, and B, C and the refund not recorded yet")

	out, _, err = ledger(t, env, "books", "trial-balance", "--as-of", bf.beforeFirst.Format(time.RFC3339))
	require.NoError(t, err, "no facts: empty books balance")
	assert.Contains(t, out, "of 0 orders")
}

// TestAuditAsOfShowsOnlyEarlierFacts: `audit --as-of` folds the order's
// facts recorded by then, and says so.
func TestAuditAsOfShowsOnlyEarlierFacts(t *testing.T) {
	bf := seedBooks(t)
	env := bf.env()
	asOf := bf.charged.Format(time.RFC3339Nano)

	js, _, err := ledger(t, env, "audit", bf.a, "--as-of", asOf, "--json")
	require.NoError(t, err)
	assertCamelCase(t, []byte(js))
	var rep projections.AuditReport
	require.NoError(t, json.Unmarshal([]byte(js), &rep))
	assert.True(t, bf.charged.Equal(rep.AsOf))
	require.Len(t, rep.Entries, 2, "the checkout and the charge, not the fulfilment or the refund")
	assert.Equal(t, domain.StatusCharged, rep.Final.Status)
	assert.Equal(t, domain.Totals{Captured: 5000, Net: 5000}, rep.Final.Money)
	assert.Equal(t, []domain.Posting{
		{Account: domain.AccountPaymentsClearing, Side: domain.Debit, Amount: 5000, Entry: domain.EntryCapture},
		{Account: domain.AccountDeferredRevenue, Side: domain.Credit, Amount: 5000, Entry: domain.EntryCapture},
	}, rep.Entries[1].Postings)

	table, _, err := ledger(t, env, "audit", bf.a, "--as-of", asOf)
	require.NoError(t, err)
	assert.Contains(t, table, "as of "+asOf+": the facts recorded by then, folded with today's rules")
	assert.Contains(t, table, "status CHARGED")
	assert.NotContains(t, table, "OrderStatusChangedToComplete")
	assert.NotContains(t, table, "OrderRefundRequested")
	assert.Regexp(t, `journal \(USD\): each fact's postings; debits equal credits\n.*\n\s+1\s+BasketDeletedComplete\s+capture\s+1100 payments_clearing\s+50\.00\n\s+capture\s+2100 deferred_revenue\s+50\.00\n`, table)
	assert.NotContains(t, table, "recognition", "not fulfilled by then")

	all, _, err := ledger(t, env, "audit", bf.a, "--json")
	require.NoError(t, err)
	var now projections.AuditReport
	require.NoError(t, json.Unmarshal([]byte(all), &now))
	assert.Len(t, now.Entries, 4)
	assert.True(t, now.AsOf.IsZero())
	assert.NotContains(t, all, `"asOf"`)
	assert.Equal(t, domain.StatusRefunded, now.Final.Status)

	// A date is the end of that UTC day: every fact was recorded today.
	today, _, err := ledger(t, env, "audit", bf.a, "--as-of", time.Now().UTC().Format("2006-01-02"), "--json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(today), &rep))
	assert.Len(t, rep.Entries, 4)

	_, _, err = ledger(t, env, "audit", bf.a, "--as-of", bf.beforeFirst.Format(time.RFC3339))
	assert.ErrorContains(t, err, "order "+bf.a+": no facts recorded by "+bf.beforeFirst.Format(time.RFC3339))
	_, _, err = ledger(t, env, "audit", bf.a, "--as-of", "last tuesday")
	assert.ErrorContains(t, err, `--as-of: "last tuesday" is not a moment: want an RFC 3339 time`)
}

// TestBooksAndAuditAsOfThroughRunningServer: while serve owns the data,
// the books and audit --as-of go through it and answer as offline.
func TestBooksAndAuditAsOfThroughRunningServer(t *testing.T) {
	t.Parallel()
	bf := seedBooks(t)
	offline, _, err := ledger(t, bf.env(), "books", "journal", "--csv")
	require.NoError(t, err, "the journal before serve, to compare")
	ofA := journalCSVOfA(t, bf)
	// The facts are from 2025: a long placement time-out keeps C placing
	// rather than expired while the test runs.
	in, u := startServe(t, bf.dir, "LEDGER_RULES_PLACEMENT_TIMEOUT=87600h")
	var sum projections.Summary
	require.Eventually(t, func() bool {
		return getJSON(t, in, "/api/orders/"+bf.a, &sum) == 200 && sum.Status == domain.StatusRefunded
	}, 30*time.Second, 50*time.Millisecond, "the read model caught up")
	for name, flags := range map[string][]string{"url": {"--server", in.URL()}, "discovered": nil} {
		t.Run(name, func(t *testing.T) {
			run := func(args ...string) string {
				t.Helper()
				out, stderr, err := cli(t, bf.dir, u, nil, append(args, flags...)...)
				require.NoError(t, err, "%v: %s%s", args, out, stderr)
				assert.Empty(t, stderr, "%v: quiet", args)
				return out
			}
			var tb projections.TrialBalance
			require.NoError(t, json.Unmarshal([]byte(run("books", "trial-balance", "--json")), &tb))
			assert.True(t, tb.Balanced)
			assert.Equal(t, int64(7000), tb.Debits)
			assert.Contains(t, run("books", "trial-balance"), "balanced: debits equal credits")

			recs, err := csv.NewReader(strings.NewReader(run("books", "report", "--csv", "--by", "month"))).ReadAll()
			require.NoError(t, err)
			assert.Equal(t, [][]string{httpapi.BooksCSVHeader,
				{"2025-10", "REFUNDED", "1", "50.00", "0.00", "0.00", "0.00", "50.00", "USD"},
				{"2025-11", "INIT", "1", "0.00", "0.00", "0.00", "0.00", "0.00", "USD"},
				{"2025-11", "CHARGED", "1", "20.00", "0.00", "0.00", "0.00", "20.00", "USD"},
				{"2025-11", "REFUNDED", "0", "0.00", "10.00", "0.00", "0.00", "-10.00", "USD"},
			}, recs)

			asOf := bf.fulfilled.Format(time.RFC3339Nano)
			require.NoError(t, json.Unmarshal([]byte(run("books", "trial-balance", "--as-of", asOf, "--json")), &tb))
			assert.Equal(t, 1, tb.Orders)
			assert.Equal(t, [2]int64{0, 5000}, balances(tb)["revenue"])
			var rep projections.BooksReport
			require.NoError(t, json.Unmarshal([]byte(run("books", "report", "--as-of", asOf, "--json", "--from", "2025-10-31", "--to", "2025-10-31")), &rep))
			assert.Equal(t, projections.BooksRow{Period: projections.TotalPeriod, Orders: 1, Money: domain.Totals{Captured: 5000, Net: 5000}}, rep.Total)

			assert.Equal(t, offline, run("books", "journal", "--csv"), "the journal as offline")
			assert.Equal(t, append([][]string{httpapi.JournalCSVHeader}, ofA[:2]...),
				readCSV(t, run("books", "journal", "--csv", "--order", bf.a, "--as-of", bf.charged.Format(time.RFC3339Nano))))
			assert.Len(t, readCSV(t, run("books", "journal", "--csv", "--from", "2025-11-01")), 1+4)
			var jr projections.JournalReport
			require.NoError(t, json.Unmarshal([]byte(run("books", "journal", "--json")), &jr))
			assert.Len(t, jr.Lines, 8)
			assert.Equal(t, [2]int64{13000, 13000}, [2]int64{jr.Debits, jr.Credits})
			assert.Contains(t, run("books", "journal"), "balanced: debits equal credits")
			_, stderr, err := cli(t, bf.dir, u, nil, append([]string{"books", "journal", "--from", "2025-11-31"}, flags...)...)
			require.Error(t, err)
			assert.Contains(t, stderr, `from "2025-11-31"`, "refused before the server is asked")

			var audit projections.AuditReport
			require.NoError(t, json.Unmarshal([]byte(run("audit", bf.a, "--as-of", bf.charged.Format(time.RFC3339Nano), "--json")), &audit))
			assert.Len(t, audit.Entries, 2)
			assert.True(t, bf.charged.Equal(audit.AsOf))
			assert.Contains(t, run("audit", bf.a, "--as-of", bf.charged.Format(time.RFC3339Nano)), "as of "+bf.charged.Format(time.RFC3339Nano))

			_, stderr, err = cli(t, bf.dir, u, nil, append([]string{"audit", bf.a, "--as-of", bf.beforeFirst.Format(time.RFC3339)}, flags...)...)
			require.Error(t, err)
			assert.Contains(t, stderr, "no facts recorded by")
		})
	}
	require.NoError(t, in.Alive())
}
