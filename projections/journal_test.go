package projections_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

func TestJournalQueryValidate(t *testing.T) {
	for _, q := range []projections.JournalQuery{{}, {From: "2026-11-01", To: "2026-11-01"}, {OrderID: orderA}, {OrderID: "0196A6B0-0000-7000-8000-00000000000A"}} {
		assert.NoError(t, q.Validate(), "%+v", q)
	}
	for q, want := range map[projections.JournalQuery]string{
		{From: "2026-11-31"}:                      `from "2026-11-31"`,
		{To: "yesterday"}:                         `to "yesterday"`,
		{From: "2026-11-02", To: "2026-11-01"}:    "before from",
		{OrderID: "order-" + orderA}:              "want an order id",
		{OrderID: "0196a6b0-0000-7000-8000-0000"}: "want an order id",
	} {
		err := q.Validate()
		assert.ErrorIs(t, err, projections.ErrInvalidQuery, "%+v", q)
		assert.ErrorContains(t, err, want, "%+v", q)
		_, err = projections.Journal(context.Background(), nil, rules, q)
		assert.ErrorIs(t, err, projections.ErrInvalidQuery, "refused before the log is read")
	}
}

// One order, charged and fulfilled: its capture and its recognition,
// dated by the facts and in the rules' order.
func TestJournalLinesOfAnOrder(t *testing.T) {
	l := openLog(t)
	ctx := context.Background()
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	appendFact(t, l, "m3", completed(orderA, t0.AddDate(0, 0, 1)))
	appendFact(t, l, "m4", checkout(orderB, t0.Add(time.Hour)))
	evs, err := l.ReadStream(ctx, domain.StreamName(orderA), 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3)

	lines, err := projections.Journal(ctx, l, rules, projections.JournalQuery{})
	require.NoError(t, err)
	line := func(e domain.RecordedEvent, at time.Time, entry domain.Entry, acc domain.Account, side domain.Side) projections.JournalLine {
		return projections.JournalLine{At: at, Recorded: e.Created.UTC(), Position: e.Position.String(), OrderID: orderA, Revision: e.Revision,
			EventID: e.ID, Fact: e.Type, Entry: entry, Account: acc, Side: side, Amount: 9999}
	}
	want := []projections.JournalLine{
		line(evs[1], t0.Add(time.Minute), domain.EntryCapture, domain.AccountPaymentsClearing, domain.Debit),
		line(evs[1], t0.Add(time.Minute), domain.EntryCapture, domain.AccountDeferredRevenue, domain.Credit),
		line(evs[2], t0.AddDate(0, 0, 1), domain.EntryRecognition, domain.AccountDeferredRevenue, domain.Debit),
		line(evs[2], t0.AddDate(0, 0, 1), domain.EntryRecognition, domain.AccountRevenue, domain.Credit),
	}
	assert.Equal(t, want, lines, "a checkout posts nothing; order B has no money")

	js, err := json.Marshal(lines[3])
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"at":"2026-11-02T12:00:00Z","recorded":%q,"position":%q,"orderId":%q,"revision":2,"eventId":%q,
		"fact":%q,"entry":"recognition","account":"revenue","side":"credit","amount":9999}`,
		evs[2].Created.UTC().Format(time.RFC3339Nano), evs[2].Position.String(), orderA, evs[2].ID, evs[2].Type), string(js))

	day1, err := projections.Journal(ctx, l, rules, projections.JournalQuery{To: "2026-11-01"})
	require.NoError(t, err)
	assert.Equal(t, want[:2], day1, "the fulfilment is dated the next day")
	day2, err := projections.Journal(ctx, l, rules, projections.JournalQuery{From: "2026-11-02", OrderID: orderA})
	require.NoError(t, err)
	assert.Equal(t, want[2:], day2)
	asOf, err := projections.Journal(ctx, l, rules, projections.JournalQuery{AsOf: evs[1].Created})
	require.NoError(t, err)
	assert.Equal(t, want[:2], asOf, "the fulfilment was recorded later")

	rep, err := projections.JournalReportOf(ctx, l, rules, projections.JournalQuery{OrderID: orderB})
	require.NoError(t, err)
	assert.Equal(t, projections.JournalReport{Currency: "USD", OrderID: orderB, Lines: []projections.JournalLine{}}, rep, "B moved no money")
	rep, err = projections.JournalReportOf(ctx, l, rules, projections.JournalQuery{})
	require.NoError(t, err)
	assert.Equal(t, int64(2*9999), rep.Debits)
	assert.Equal(t, rep.Debits, rep.Credits)

	_, err = projections.Journal(ctx, l, rules, projections.JournalQuery{OrderID: "0196a6b0-0000-7000-8000-0000000000ff"})
	assert.ErrorIs(t, err, domain.ErrStreamNotFound)
}

// signedByAccount sums lines debit-positive per account.
func signedByAccount(lines []projections.JournalLine) [domain.NumAccounts]int64 {
	var out [domain.NumAccounts]int64
	for _, l := range lines {
		out[l.Account] += domain.Posting{Account: l.Account, Side: l.Side, Amount: l.Amount}.Signed()
	}
	return out
}

func trialBalances(tb projections.TrialBalance) [domain.NumAccounts]int64 {
	var out [domain.NumAccounts]int64
	for _, a := range tb.Accounts {
		out[a.Account] = a.Debit - a.Credit
	}
	return out
}

// For random histories the journal balances, sums to the trial balance,
// holds per order the audit's postings, and its filters keep exactly the
// lines they name.
func TestJournalAgreesWithTheBooksAndTheAudit(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 16))
			l := openLog(t)
			facts := booksHistories(rng, 120)
			cut := len(facts) / 2
			appendBooksFacts(t, l, facts[:cut])
			then, err := projections.Journal(ctx, l, rules, projections.JournalQuery{})
			require.NoError(t, err)
			headThen, _, err := l.Head(ctx)
			require.NoError(t, err)
			appendBooksFacts(t, l, facts[cut:])

			all, err := projections.Journal(ctx, l, rules, projections.JournalQuery{})
			require.NoError(t, err)
			require.Greater(t, len(all), len(then), "the later facts posted")
			assert.True(t, slices.IsSortedFunc(all, func(a, b projections.JournalLine) int { return a.At.Compare(b.At) }), "by business time")
			var debits, credits int64
			for _, l := range all {
				require.Positive(t, l.Amount)
				if l.Side == domain.Debit {
					debits += l.Amount
				} else {
					credits += l.Amount
				}
			}
			assert.Equal(t, debits, credits, "the journal balances")

			tb, err := projections.TrialBalanceAsOf(ctx, l, rules, time.Time{})
			require.NoError(t, err)
			assert.Equal(t, trialBalances(tb), signedByAccount(all), "summed per account it is the trial balance")

			checkJournalPerOrder(t, l, all)
			checkJournalDays(t, l, all)

			// As of the last of the earlier facts, or a moment after it:
			// the journal then.
			at, firstAfter := recordedTimes(t, l, headThen)
			require.True(t, firstAfter.After(at))
			for _, asOf := range []time.Time{at, at.Add(firstAfter.Sub(at) / 2)} {
				got, err := projections.Journal(ctx, l, rules, projections.JournalQuery{AsOf: asOf})
				require.NoError(t, err)
				assert.Equal(t, then, got, "as of %v", asOf)
				tbThen, err := projections.TrialBalanceAsOf(ctx, l, rules, asOf)
				require.NoError(t, err)
				assert.Equal(t, trialBalances(tbThen), signedByAccount(got))
			}
		})
	}
}

// checkJournalPerOrder: each order's lines (OrderID set, and in the whole
// journal) are its audit's postings, fact by fact.
func checkJournalPerOrder(t *testing.T, l domain.EventLog, all []projections.JournalLine) {
	t.Helper()
	ctx := context.Background()
	infos, err := l.ListStreams(ctx, domain.StreamPrefix, "", 0)
	require.NoError(t, err)
	require.NotEmpty(t, infos)
	posted := 0
	for _, in := range infos {
		id, ok := domain.OrderIDFromStream(in.Name)
		require.True(t, ok)
		audit, err := projections.Audit(ctx, l, rules, outCfg, id)
		require.NoError(t, err)
		want := []projections.JournalLine{}
		for _, e := range audit.Entries {
			for _, p := range e.Postings {
				want = append(want, projections.JournalLine{At: e.At.UTC(), Recorded: e.Recorded.UTC(), Position: e.Position, OrderID: id,
					Revision: e.Revision, EventID: e.EventID, Fact: e.Type, Entry: p.Entry, Account: p.Account, Side: p.Side, Amount: p.Amount})
			}
		}
		got, err := projections.Journal(ctx, l, rules, projections.JournalQuery{OrderID: id})
		require.NoError(t, err)
		// The audit goes by revision; the journal by business time.
		byRevision := func(a, b projections.JournalLine) int { return cmp.Compare(a.Revision, b.Revision) }
		slices.SortStableFunc(got, byRevision)
		assert.Equal(t, want, got, id)
		inAll := slices.DeleteFunc(slices.Clone(all), func(x projections.JournalLine) bool { return x.OrderID != id })
		slices.SortStableFunc(inAll, byRevision)
		assert.Equal(t, want, inAll, "%s in the whole journal", id)
		posted += len(want)
	}
	assert.Equal(t, len(all), posted, "every line is an order's")
}

// checkJournalDays: From/To keep the lines of the facts dated in the span.
func checkJournalDays(t *testing.T, l domain.EventLog, all []projections.JournalLine) {
	t.Helper()
	var days []string
	for _, x := range all {
		if d := x.At.Format(domain.DayFormat); len(days) == 0 || days[len(days)-1] != d {
			days = append(days, d) // all is sorted by time
		}
	}
	require.GreaterOrEqual(t, len(days), 3, "the histories post on several days")
	entries := map[domain.Entry]int{}
	for _, x := range all {
		entries[x.Entry]++
	}
	t.Logf("%d lines over %d days, by entry %v", len(all), len(days), entries)
	mid := days[len(days)/2]
	for _, q := range []projections.JournalQuery{{To: days[0]}, {From: days[len(days)-1]}, {From: days[1], To: days[len(days)-2]}, {From: mid, To: mid}, {From: mid}} {
		got, err := projections.Journal(context.Background(), l, rules, q)
		require.NoError(t, err)
		want := slices.DeleteFunc(slices.Clone(all), func(x projections.JournalLine) bool {
			d := x.At.Format(domain.DayFormat)
			return (q.From != "" && d < q.From) || (q.To != "" && d > q.To)
		})
		require.NotEmpty(t, want, "%+v: the histories post on those days", q)
		require.Less(t, len(want), len(all), "%+v leaves some out", q)
		assert.Equal(t, want, got, "%+v", q)
	}
}
