package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// orderEvents reads an order's stored events from the seeded store
// (closed again before the command runs).
func orderEvents(t *testing.T, bf booksFacts, order string) []domain.RecordedEvent {
	t.Helper()
	l, err := bolt.Open(filepath.Join(bf.dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	evs, err := l.ReadStream(context.Background(), domain.StreamName(order), 0, domain.Forwards, 0)
	require.NoError(t, err)
	return evs
}

// journalCSVOfA is order A's journal as CSV lines: its capture and its
// recognition on 2025-10-31, its refund (after the fulfilment: off
// revenue) on 2025-11-01.
func journalCSVOfA(t *testing.T, bf booksFacts) [][]string {
	t.Helper()
	evs := orderEvents(t, bf, bf.a)
	require.Len(t, evs, 4)
	line := func(e domain.RecordedEvent, at time.Time, entry, account, code, side, amount string) []string {
		dr, cr := amount, ""
		if side == "credit" {
			dr, cr = "", amount
		}
		return []string{at.Format(time.RFC3339Nano), e.Created.UTC().Format(time.RFC3339Nano), bf.a, strconv.FormatUint(e.Revision, 10),
			e.ID, e.Type, entry, account, code, side, dr, cr, "USD"}
	}
	return [][]string{
		line(evs[1], booksDay1.Add(5*time.Minute), "capture", "payments_clearing", "1100", "debit", "50.00"),
		line(evs[1], booksDay1.Add(5*time.Minute), "capture", "deferred_revenue", "2100", "credit", "50.00"),
		line(evs[2], booksDay1.Add(time.Hour), "recognition", "deferred_revenue", "2100", "debit", "50.00"),
		line(evs[2], booksDay1.Add(time.Hour), "recognition", "revenue", "4000", "credit", "50.00"),
		line(evs[3], booksDay2.Add(time.Hour), "refund", "refunds", "4100", "debit", "10.00"),
		line(evs[3], booksDay2.Add(time.Hour), "refund", "payments_clearing", "1100", "credit", "10.00"),
	}
}

func readCSV(t *testing.T, s string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	require.NoError(t, err)
	return recs
}

func TestBooksJournal(t *testing.T) {
	bf := seedBooks(t)
	env := bf.env()
	ofA := journalCSVOfA(t, bf)

	out, _, err := ledger(t, env, "books", "journal", "--csv", "--order", bf.a)
	require.NoError(t, err, "the journal folds the log: no read model needed")
	assert.Equal(t, append([][]string{httpapi.JournalCSVHeader}, ofA...), readCSV(t, out))

	// Every order, by business time: B's capture (2025-11-01 08:01) comes
	// before A's refund (09:00).
	out, _, err = ledger(t, env, "books", "journal", "--csv")
	require.NoError(t, err)
	recs := readCSV(t, out)
	require.Len(t, recs, 1+8)
	assert.Equal(t, ofA[:4], recs[1:5])
	assert.Equal(t, []string{bf.b, "capture", "payments_clearing", "debit", "20.00", ""},
		[]string{recs[5][2], recs[5][6], recs[5][7], recs[5][9], recs[5][10], recs[5][11]})
	assert.Equal(t, []string{bf.b, "capture", "deferred_revenue", "credit", "", "20.00"},
		[]string{recs[6][2], recs[6][6], recs[6][7], recs[6][9], recs[6][10], recs[6][11]})
	assert.Equal(t, ofA[4:], recs[7:])

	out, _, err = ledger(t, env, "books", "journal", "--csv", "--from", "2025-11-01", "--to", "2025-11-01")
	require.NoError(t, err)
	assert.Len(t, readCSV(t, out), 1+4, "B's capture and A's refund")
	out, _, err = ledger(t, env, "books", "journal", "--csv", "--as-of", bf.charged.Format(time.RFC3339Nano))
	require.NoError(t, err)
	assert.Equal(t, append([][]string{httpapi.JournalCSVHeader}, ofA[:2]...), readCSV(t, out), "only A's charge was recorded by then")

	// JSON: the lines and their sums, which add up per account to the
	// trial balance.
	js, _, err := ledger(t, env, "books", "journal", "--json")
	require.NoError(t, err)
	assertCamelCase(t, []byte(js))
	var rep projections.JournalReport
	require.NoError(t, json.Unmarshal([]byte(js), &rep))
	assert.Equal(t, "USD", rep.Currency)
	require.Len(t, rep.Lines, 8)
	assert.Equal(t, int64(13000), rep.Debits)
	assert.Equal(t, int64(13000), rep.Credits)
	sums := map[string]int64{}
	for _, l := range rep.Lines {
		sums[l.Account.Name()] += domain.Posting{Side: l.Side, Amount: l.Amount}.Signed()
	}
	assert.Equal(t, map[string]int64{"payments_clearing": 6000, "deferred_revenue": -2000, "revenue": -5000, "refunds": 1000}, sums)
	assert.Equal(t, projections.JournalLine{At: booksDay2.Add(time.Hour), Recorded: rep.Lines[7].Recorded, Position: rep.Lines[7].Position,
		OrderID: bf.a, Revision: 3, EventID: ofA[5][4], Fact: ofA[5][5],
		Entry: domain.EntryRefund, Account: domain.AccountPaymentsClearing, Side: domain.Credit, Amount: 1000}, rep.Lines[7])

	table, _, err := ledger(t, env, "books", "journal", "--order", bf.a)
	require.NoError(t, err)
	assert.Contains(t, table, "journal (USD), every day, order "+bf.a+", every fact recorded; dated by the facts' business time")
	assert.Regexp(t, `2025-10-31T11:00:00Z\s+`+bf.a+`\s+2\s+\S+\s+recognition\s+4000 revenue\s+50\.00\n`, table)
	assert.Regexp(t, `total\s+6 postings\s+110\.00\s+110\.00\n`, table)
	assert.Contains(t, table, "balanced: debits equal credits")

	for args, want := range map[string]string{
		"--from 2025-11-31":                 `books journal: invalid query: from "2025-11-31": want a day 2006-01-02`,
		"--from 2025-11-02 --to 2025-11-01": "before from",
		"--order 42":                        `order "42": want an order id`,
		"--csv --json":                      "choose one",
		"--as-of soon":                      `--as-of: "soon" is not a moment`,
		"--order " + domain.NameUUID("books-test", "nobody"): "order " + domain.NameUUID("books-test", "nobody") + ": no facts",
	} {
		_, _, err := ledger(t, env, append([]string{"books", "journal"}, strings.Fields(args)...)...)
		assert.ErrorContains(t, err, want, args)
	}
}
