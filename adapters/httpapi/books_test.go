package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Store-backed answers of the books endpoints are tested in cmd/ledger
// (books_browser_test.go); here, what is refused before any store is
// reached, and the picture and the CSV.

func TestBooksQueriesRefusedBeforeTheStore(t *testing.T) {
	s := newTestServer(t, Config{}, Deps{})
	for target, want := range map[string]string{
		"/api/books/report?from=2025-13-01":                                "from: want a date like 2025-11-20 (UTC)",
		"/api/books/report?to=yesterday":                                   "to: want a date",
		"/api/books/report?by=week":                                        "by: want day or month",
		"/api/books/report?from=2025-11-02&to=2025-11-01":                  "before from",
		"/api/books/report?format=xlsx":                                    "format: want json or csv",
		"/api/books/report?as_of=soon":                                     `as_of: "soon" is not a moment: want an RFC 3339 time`,
		"/api/books/chart.svg?by=year":                                     "by: want day or month",
		"/api/books/trial-balance?as_of=2025-11-20T10:00":                  "as_of: ",
		"/api/orders/3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10?as_of=x":         "as_of: ",
		"/api/orders/3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10?as_of=":          "as_of: want a moment",
		"/api/orders/3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10/audit?as_of=<b>": "as_of: ",
	} {
		rec := do(t, s, http.MethodGet, target, nil, nil)
		assert.Equal(t, http.StatusBadRequest, rec.Code, target)
		assert.Contains(t, decodeError(t, rec), want, target)
	}
	// Now, the books come from the index, which this server lacks.
	for _, target := range []string{"/api/books/report", "/api/books/trial-balance", "/api/books/chart.svg"} {
		rec := do(t, s, http.MethodGet, target, nil, nil)
		assert.Equal(t, http.StatusNotImplemented, rec.Code, target)
	}
}

func TestAuditAsOfPassedToDeps(t *testing.T) {
	id := "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10"
	var asked []time.Time
	s := newTestServer(t, Config{}, Deps{Audit: func(_ context.Context, orderID string, asOf time.Time) (projections.AuditReport, error) {
		asked = append(asked, asOf)
		rep := sampleReport()
		rep.AsOf = asOf
		rep.Final = projections.Summary{OrderID: orderID, Status: domain.StatusCharged, Facts: 2}
		return rep, nil
	}})
	rec := do(t, s, http.MethodGet, "/api/orders/"+id+"/audit?as_of=2025-03-01T14:00:00%2B02:00", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"asOf":"2025-03-01T12:00:00Z"`)
	rec = do(t, s, http.MethodGet, "/api/orders/"+id+"?as_of=2025-03-01", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"status":"CHARGED"`)
	assert.Contains(t, rec.Body.String(), `"asOf":"2025-03-01T23:59:59.999999999Z"`, "a date is the end of that UTC day")
	rec = do(t, s, http.MethodGet, "/api/orders/"+id+"/timeline.svg?as_of=2025-03-01T12:00:00Z", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	rec = do(t, s, http.MethodGet, "/api/orders/"+id+"/audit", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, asked, 4)
	assert.True(t, asked[0].Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)))
	assert.True(t, asked[1].Equal(time.Date(2025, 3, 1, 23, 59, 59, 999999999, time.UTC)))
	assert.True(t, asked[2].Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)))
	assert.True(t, asked[3].IsZero(), "no as_of: every fact")
}

// sampleBooks is three days, one of them with a refund larger than the
// day's captures (a net below zero), and a status with markup.
func sampleBooks() projections.BooksReport {
	cells := []projections.DayStatusTotals{
		{Day: "2025-11-01", Status: domain.StatusCharged, Orders: 2, Money: domain.Totals{Captured: 3000, Net: 3000}},
		{Day: "2025-11-01", Status: domain.StatusFulfilled, Orders: 1, Money: domain.Totals{Captured: 4999, Net: 4999}},
		{Day: "2025-11-02", Status: domain.StatusRefunded, Money: domain.Totals{Refunded: 4999, Net: -4999}},
		{Day: "2025-11-03", Status: domain.StatusChargebackReversed, Orders: 1,
			Money: domain.Totals{Captured: 633, ChargedBack: 633, Reversed: 633, Net: 633}},
	}
	return projections.BuildReport(domain.Currency{Code: "EUR", Decimals: 2}, projections.BooksQuery{From: "2025-11-01", To: "2025-11-03"}, cells)
}

func TestPeriodChart(t *testing.T) {
	rep := sampleBooks()
	svg := RenderPeriodChart(rep, domain.Currency{Code: "EUR", Decimals: 2})
	els := parseSVG(t, svg)
	var periods, bars, dots []svgElement
	var net *svgElement
	for i, el := range els {
		switch {
		case el.name == "g" && el.attrs["class"] == "period":
			periods = append(periods, el)
		case el.name == "rect" && strings.HasPrefix(el.attrs["class"], "bar "):
			bars = append(bars, el)
		case el.name == "path" && el.attrs["data-series"] == "net":
			net = &els[i]
		case el.name == "circle" && el.attrs["r"] == "3.5":
			dots = append(dots, el)
		}
	}
	require.Len(t, periods, 3)
	assert.Equal(t, []string{"2025-11-01", "2025-11-02", "2025-11-03"}, []string{periods[0].attrs["data-period"], periods[1].attrs["data-period"], periods[2].attrs["data-period"]})
	assert.Equal(t, "-4999", periods[1].attrs["data-net"])
	require.Len(t, bars, 12, "four bars a period")
	byKey := map[string]string{}
	for i, b := range bars {
		byKey[fmt.Sprintf("%d %s", i/4, b.attrs["data-series"])] = b.attrs["data-value"]
		h, err := strconv.ParseFloat(b.attrs["height"], 64)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, h, 0.0, "no negative height")
	}
	assert.Equal(t, "7999", byKey["0 captured"])
	assert.Equal(t, "4999", byKey["1 refunded"])
	assert.Equal(t, "633", byKey["2 charged back"])
	assert.Equal(t, "633", byKey["2 reversed"])
	// Colour is not the only cue: each kind of bar has its own fill.
	fills := map[string]bool{}
	for _, b := range bars[:4] {
		fills[b.attrs["fill"]] = true
	}
	assert.Len(t, fills, 4)
	require.NotNil(t, net, "the net line")
	assert.Equal(t, 3, strings.Count(net.attrs["d"], "L")+1, "a point a period")
	assert.Len(t, dots, 3+1, "a dot a period, and the legend's")
	// The net below zero is drawn below the zero line.
	assert.Contains(t, string(svg), ">-50.00<", "the axis reaches below zero")
	assert.Contains(t, string(svg), "Money by day, 2025-11-01 to 2025-11-03")
	assert.Contains(t, string(svg), "2025-11-02: 0 orders checked out\ncaptured 0.00, refunded 49.99, charged back 0.00, reversed 0.00, net -49.99 EUR")
	assert.NotContains(t, string(svg), "<script")

	empty := RenderPeriodChart(projections.BuildReport(domain.Currency{Code: "EUR", Decimals: 2}, projections.BooksQuery{}, nil), domain.Currency{Code: "EUR", Decimals: 2})
	parseSVG(t, empty)
	assert.Contains(t, string(empty), "no money moved in these periods")

	// Many periods: the latest are drawn, and the picture says so.
	var many []projections.DayStatusTotals
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 200 {
		many = append(many, projections.DayStatusTotals{Day: start.AddDate(0, 0, i).Format(domain.DayFormat), Status: domain.StatusCharged,
			Orders: 1, Money: domain.Totals{Captured: int64(100 * (i + 1)), Net: int64(100 * (i + 1))}})
	}
	big := RenderPeriodChart(projections.BuildReport(domain.Currency{Code: "EUR", Decimals: 2}, projections.BooksQuery{}, many), domain.Currency{Code: "EUR", Decimals: 2})
	els = parseSVG(t, big)
	n := 0
	for _, el := range els {
		if el.name == "g" && el.attrs["class"] == "period" {
			n++
		}
	}
	assert.Equal(t, maxChartPeriods, n)
	assert.Contains(t, string(big), fmt.Sprintf("the last %d of 200 periods", maxChartPeriods))
	assert.Contains(t, string(big), `data-period="2025-07-19"`, "the last day is drawn")
}

func TestBooksCSV(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteBooksCSV(&b, sampleBooks(), domain.Currency{Code: "EUR", Decimals: 2}))
	recs, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{BooksCSVHeader,
		{"2025-11-01", "CHARGED", "2", "30.00", "0.00", "0.00", "0.00", "30.00", "EUR"},
		{"2025-11-01", "FULFILLED", "1", "49.99", "0.00", "0.00", "0.00", "49.99", "EUR"},
		{"2025-11-02", "REFUNDED", "0", "0.00", "49.99", "0.00", "0.00", "-49.99", "EUR"},
		{"2025-11-03", "CHARGEBACK_REVERSED", "1", "6.33", "0.00", "6.33", "6.33", "6.33", "EUR"},
	}, recs)
}
