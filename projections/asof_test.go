package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

func TestParseAsOf(t *testing.T) {
	for in, want := range map[string]time.Time{
		"":                               {},
		"2025-11-20T15:04:05Z":           time.Date(2025, 11, 20, 15, 4, 5, 0, time.UTC),
		"2025-11-20T15:04:05.123456789Z": time.Date(2025, 11, 20, 15, 4, 5, 123456789, time.UTC),
		"2025-11-20T17:04:05+02:00":      time.Date(2025, 11, 20, 15, 4, 5, 0, time.UTC),
		"2025-11-20T10:04:05-05:00":      time.Date(2025, 11, 20, 15, 4, 5, 0, time.UTC),
		// A date is the end of that UTC day: its last nanosecond.
		"2025-11-20": time.Date(2025, 11, 20, 23, 59, 59, 999999999, time.UTC),
		"2024-02-29": time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
	} {
		got, err := projections.ParseAsOf(in)
		require.NoError(t, err, in)
		assert.True(t, want.Equal(got), "%s: got %v want %v", in, got, want)
		assert.Equal(t, time.UTC, got.Location(), in)
	}
	for _, bad := range []string{"yesterday", "2025-13-01", "2025-02-30", "2025-11-20 15:04:05", "2025-11-20T15:04:05",
		"20251120", "2025-11-20T25:00:00Z", "<script>alert(1)</script>" + strings.Repeat("x", 500)} {
		_, err := projections.ParseAsOf(bad)
		require.Error(t, err, bad)
		assert.True(t, errors.Is(err, projections.ErrInvalidQuery), "%q: an invalid query", bad)
		assert.Contains(t, err.Error(), "RFC 3339", bad)
		assert.Contains(t, err.Error(), "end of that UTC day", bad)
		assert.NotContains(t, err.Error(), "invalid query", "the message is the value's, for CLI and API alike")
		assert.Less(t, len(err.Error()), 250, "a long value is cut")
	}
}

// recordedAt is when the store recorded the last event of stream.
func recordedAt(t *testing.T, l domain.EventLog, stream string) time.Time {
	t.Helper()
	evs, err := l.ReadStream(context.Background(), stream, domain.EndOfStream, domain.Backwards, 1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return evs[0].Created
}

// TestAuditAsOfShowsOnlyTheFactsRecordedByThen: as of the moment the
// charge was recorded, the order is CHARGED with its capture deferred;
// the fulfilment and the refund recorded after are not there. Now, they
// are, and every fact's journal entry balances.
func TestAuditAsOfShowsOnlyTheFactsRecordedByThen(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	stream := domain.StreamName(orderA)
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	charged := recordedAt(t, l, stream)
	appendFact(t, l, "m3", completed(orderA, t0.Add(2*time.Minute)))
	fulfilled := recordedAt(t, l, stream)
	appendFact(t, l, "m4", domain.Fact{Type: domain.FactOrderRefundRequested, OrderID: orderA, Amount: 2500, HasAmount: true, Reason: "damaged", At: t0.Add(3 * time.Minute)})
	require.True(t, charged.Before(fulfilled), "the store records later appends later")

	then, err := projections.AuditAsOf(ctx, l, rules, outCfg, orderA, charged)
	require.NoError(t, err)
	assert.True(t, charged.Equal(then.AsOf))
	require.Len(t, then.Entries, 2, "the facts recorded by then, the moment itself included")
	assert.Equal(t, domain.StatusCharged, then.Final.Status)
	assert.Equal(t, 2, then.Final.Facts)
	assert.Equal(t, int64(9999), then.Final.Money.Captured)
	assert.Equal(t, []domain.Posting{
		{Account: domain.AccountPaymentsClearing, Side: domain.Debit, Amount: 9999, Entry: domain.EntryCapture},
		{Account: domain.AccountDeferredRevenue, Side: domain.Credit, Amount: 9999, Entry: domain.EntryCapture},
	}, then.Entries[1].Postings, "the capture is owed to the customer until fulfilment")
	assert.Equal(t, int64(-9999), then.Final.Books.Of(domain.AccountDeferredRevenue))
	assert.Zero(t, then.Final.Books.Of(domain.AccountRevenue))

	now, err := projections.AuditAsOf(ctx, l, rules, outCfg, orderA, time.Time{})
	require.NoError(t, err)
	all, err := projections.Audit(ctx, l, rules, outCfg, orderA)
	require.NoError(t, err)
	assert.Equal(t, all, now, "zero as-of is the plain audit")
	assert.True(t, now.AsOf.IsZero())
	require.Len(t, now.Entries, 4)
	assert.Equal(t, then.Entries, now.Entries[:2], "the earlier facts fold the same either way")
	assert.Equal(t, int64(9999-2500), now.Final.Money.Net)

	// Every entry balances, and the entries add up to the order's books.
	var sum domain.Books
	for _, e := range now.Entries {
		var dr, cr int64
		for _, p := range e.Postings {
			assert.Positive(t, p.Amount)
			if p.Side == domain.Debit {
				dr += p.Amount
			} else {
				cr += p.Amount
			}
			sum.Balance[p.Account] += p.Signed()
		}
		assert.Equal(t, dr, cr, "rev %d: debits equal credits", e.Revision)
	}
	assert.Equal(t, now.Final.Books.Balance, sum.Balance)
	assert.Equal(t, int64(9999-2500), now.Final.Books.Of(domain.AccountPaymentsClearing), "clearing holds the net")
	assert.Equal(t, int64(-9999), now.Final.Books.Of(domain.AccountRevenue), "earned at fulfilment")
	assert.Equal(t, int64(2500), now.Final.Books.Of(domain.AccountRefunds), "refunded after it: off revenue")
	assert.Zero(t, now.Final.Books.Of(domain.AccountDeferredRevenue))

	mid, err := projections.AuditAsOf(ctx, l, rules, outCfg, orderA, fulfilled)
	require.NoError(t, err)
	assert.Len(t, mid.Entries, 3)
	assert.Equal(t, domain.StatusFulfilled, mid.Final.Status)

	// Before the first fact the order did not exist yet.
	_, err = projections.AuditAsOf(ctx, l, rules, outCfg, orderA, t0.Add(-time.Hour).AddDate(-10, 0, 0))
	require.ErrorIs(t, err, domain.ErrStreamNotFound)
	assert.Contains(t, err.Error(), "no fact recorded by then")
	_, err = projections.AuditAsOf(ctx, l, rules, outCfg, orderB, time.Time{})
	require.ErrorIs(t, err, domain.ErrStreamNotFound)
}
