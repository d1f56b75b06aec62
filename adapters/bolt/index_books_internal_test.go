package bolt

import (
	"encoding/hex"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// oldRow is a compact row as the ledger wrote it before the books (flags
// 0, nothing after the days).
const oldRow = "01002431613262323461322d653436622d346334382d613737322d3035643266333830316436610207434841524745440000c801c801000000c80100ffdb8ff9ce030000000003c0ea96fc0c05c0ea96fc0c05010a323032352d30332d3031c801000000c801"

func oldRowSummary() projections.Summary {
	at := time.Date(2025, 3, 1, 10, 0, 0, 5, time.UTC)
	return projections.Summary{OrderID: "1a2b24a2-e46b-4c48-a772-05d2f3801d6a", Stream: "order-1a2b24a2-e46b-4c48-a772-05d2f3801d6a",
		Revision: 2, Status: domain.StatusCharged, Total: 100, Money: domain.Totals{Captured: 100, Net: 100}, Facts: 3, LastAt: at, CreatedAt: at,
		Days: []domain.DayMove{{Day: "2025-03-01", Money: domain.Totals{Captured: 100, Net: 100}}}}
}

// Rows written before the books, compact or JSON, read back with zero
// books through every reader; a row without books is stored as before.
func TestRowsBeforeTheBooksReadWithZeroBooks(t *testing.T) {
	b, err := hex.DecodeString(oldRow)
	require.NoError(t, err)
	want := oldRowSummary()
	var got projections.Summary
	got.Books.Balance[0] = 7 // decoding overwrites what was there
	require.NoError(t, decodeRow(b, &got))
	assert.Equal(t, want, got)
	var v rowIndex
	require.NoError(t, rowIndexVals(b, &v, map[string]string{}))
	assert.Equal(t, indexedOf(&want), v.ix)
	assert.Equal(t, b, appendSummaryRow(nil, &want), "zero books add nothing to a row")

	js, err := json.Marshal(want)
	require.NoError(t, err)
	var ix indexed
	require.NoError(t, decodeIndexed(js, &ix))
	assert.Equal(t, indexedOf(&want), ix)
	noBooks := []byte(`{"orderId":"x","status":"CHARGED","total":5,"money":{"captured":5,"net":5}}`) // as written before Summary had books
	require.NoError(t, decodeRow(noBooks, &got))
	assert.Zero(t, got.Books)
	require.NoError(t, decodeIndexed(noBooks, &ix))
	assert.Zero(t, ix.Books)
}

// The books survive the compact row, and the partial readers skip them.
func TestCompactRowKeepsBooks(t *testing.T) {
	base := oldRowSummary()
	for _, books := range []domain.Books{
		{Recognized: true},
		{Balance: [domain.NumAccounts]int64{100, -100}},
		{Balance: [domain.NumAccounts]int64{-1 << 62, 1 << 62, -1, 0, 1}, Recognized: true},
	} {
		row := base
		row.Books = books
		enc := appendSummaryRow(nil, &row)
		var got projections.Summary
		require.NoError(t, decodeRow(enc, &got))
		assert.Equal(t, row, got)
		var v rowIndex
		require.NoError(t, rowIndexVals(enc, &v, map[string]string{}))
		assert.Equal(t, books, v.ix.Books)
		sv, err := rowSortVals(enc)
		require.NoError(t, err)
		assert.Equal(t, valsOf(&v.ix), sv)
		d, err := rowDiffVals(enc)
		require.NoError(t, err)
		assert.Equal(t, projections.DiffRow{Status: row.Status, Total: row.Total, Money: row.Money}, d)
		off, n := rowIDAt(enc)
		assert.Equal(t, row.OrderID, string(enc[off:off+n]))
		// A row cut inside its books is corrupt, not zero books.
		if books.Balance != ([domain.NumAccounts]int64{}) {
			assert.Error(t, decodeRow(enc[:len(enc)-1], &got))
		}
	}
}
