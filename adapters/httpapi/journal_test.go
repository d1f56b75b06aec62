package httpapi

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The journal's store-backed answers are tested in cmd/ledger
// (books_test.go); here, what is refused before the log is read, and the
// CSV.

func TestJournalQueriesRefusedBeforeTheStore(t *testing.T) {
	s := newTestServer(t, Config{}, Deps{})
	for target, want := range map[string]string{
		"/api/books/journal?from=2025-13-01":               "from: want a date like 2025-11-20 (UTC)",
		"/api/books/journal?to=yesterday":                  "to: want a date",
		"/api/books/journal?from=2025-11-02&to=2025-11-01": "before from",
		"/api/books/journal?order=order-42":                `order "order-42": want an order id`,
		"/api/books/journal?as_of=soon":                    `as_of: "soon" is not a moment`,
		"/api/books/journal?format=xlsx":                   "format: want json or csv",
	} {
		rec := do(t, s, http.MethodGet, target, nil, nil)
		assert.Equal(t, http.StatusBadRequest, rec.Code, target)
		assert.Contains(t, decodeError(t, rec), want, target)
	}
}

func TestJournalCSV(t *testing.T) {
	at := time.Date(2025, 11, 1, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	rec := time.Date(2025, 11, 1, 8, 30, 0, 123000000, time.UTC)
	id := "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10"
	line := func(e domain.Entry, a domain.Account, side domain.Side, amount int64) projections.JournalLine {
		return projections.JournalLine{At: at, Recorded: rec, Position: "7/7", OrderID: id, Revision: 3, EventID: "ev-1",
			Fact: "PaymentRefunded", Entry: e, Account: a, Side: side, Amount: amount}
	}
	var b bytes.Buffer
	require.NoError(t, WriteJournalCSV(&b, []projections.JournalLine{
		line(domain.EntryRefund, domain.AccountRefunds, domain.Debit, 4999),
		line(domain.EntryRefund, domain.AccountPaymentsClearing, domain.Credit, 4999),
	}, domain.Currency{Code: "JPY", Decimals: 0}))
	recs, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{JournalCSVHeader,
		{"2025-11-01T08:30:00Z", "2025-11-01T08:30:00.123Z", id, "3", "ev-1", "PaymentRefunded", "refund", "refunds", "4100", "debit", "4999", "", "JPY"},
		{"2025-11-01T08:30:00Z", "2025-11-01T08:30:00.123Z", id, "3", "ev-1", "PaymentRefunded", "refund", "payments_clearing", "1100", "credit", "", "4999", "JPY"},
	}, recs, "times in UTC, the amount on its side in the currency's decimals")
}
