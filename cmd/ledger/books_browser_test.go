package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The books through the JSON API and the stream browser's books page,
// over the real embedded store and read model that startWebEnv serves.
//
// seed and seedToday give these books (USD):
//
//	2025-11-19  3 orders checked out; 49.99 captured and earned (FULFILLED)
//	2025-11-20  6 orders; 6.33 captured, earned, charged back and reversed
//	            (CHARGEBACK_REVERSED), 5 × 10.00…50.00 captured (CHARGED)
//
//	payments clearing 206.32 Dr   deferred revenue 150.00 Cr   revenue 56.32 Cr
type booksWeb struct {
	*webEnv
	fulfilled string
	day       dayOrders
	yesterday time.Time // when the store recorded the last of 2025-11-19's facts
	chargedBk time.Time // when it recorded the 6.33 chargeback (its reversal after)
}

func seedBooksWeb(t *testing.T) booksWeb {
	e := startWebEnv(t)
	fulfilled, _, closed := e.seed()
	bw := booksWeb{webEnv: e, fulfilled: fulfilled, yesterday: e.lastRecorded(closed)}
	bw.day = e.seedToday()
	evs, err := e.store.ReadStream(context.Background(), domain.StreamName(bw.day.reversed), 3, domain.Forwards, 1)
	require.NoError(t, err)
	require.Equal(t, string(domain.FactPaymentChargeback), evs[0].Type)
	bw.chargedBk = evs[0].Created
	return bw
}

// lastRecorded is when the store recorded the last fact of an order.
func (e *webEnv) lastRecorded(orderID string) time.Time {
	e.t.Helper()
	evs, err := e.store.ReadStream(context.Background(), domain.StreamName(orderID), domain.EndOfStream, domain.Backwards, 1)
	require.NoError(e.t, err)
	return evs[0].Created
}

func TestBooksAPIOverEmbeddedStore(t *testing.T) {
	e := seedBooksWeb(t)

	var tb projections.TrialBalance
	require.Equal(t, http.StatusOK, e.get("/api/books/trial-balance", &tb))
	assert.True(t, tb.Balanced)
	assert.Equal(t, 9, tb.Orders)
	assert.Equal(t, int64(20632), tb.Debits)
	assert.Equal(t, map[string][2]int64{"payments_clearing": {20632, 0}, "deferred_revenue": {0, 15000}, "revenue": {0, 5632},
		"refunds": {0, 0}, "chargebacks": {0, 0}}, balances(tb))

	var rep projections.BooksReport
	require.Equal(t, http.StatusOK, e.get("/api/books/report", &rep))
	assert.Equal(t, projections.PeriodDay, rep.By)
	var rows []string
	for _, r := range rep.Rows {
		rows = append(rows, r.Period+" "+string(r.Status)+" "+domain.FormatMinor(r.Money.Net, 2))
	}
	assert.Equal(t, []string{"2025-11-19 INIT 0.00", "2025-11-19 FULFILLED 49.99", "2025-11-19 CLOSED 0.00",
		"2025-11-20 CHARGED 150.00", "2025-11-20 CHARGEBACK_REVERSED 6.33"}, rows)
	assert.Equal(t, projections.BooksRow{Period: projections.TotalPeriod, Orders: 9,
		Money: domain.Totals{Captured: 20632, ChargedBack: 633, Reversed: 633, Net: 20632}}, rep.Total)

	// Now, the read model; as of now, a fold of the facts: the same books.
	var folded projections.BooksReport
	now := url.QueryEscape(time.Now().UTC().Add(time.Minute).Format(time.RFC3339Nano))
	require.Equal(t, http.StatusOK, e.get("/api/books/report?as_of="+now, &folded))
	assert.Equal(t, rep.Rows, folded.Rows)
	assert.Equal(t, rep.Total, folded.Total)
	var tbNow projections.TrialBalance
	require.Equal(t, http.StatusOK, e.get("/api/books/trial-balance?as_of="+now, &tbNow))
	assert.Equal(t, tb.Accounts, tbNow.Accounts)

	// As of the end of 2025-11-19's facts: only yesterday's books.
	then := url.QueryEscape(e.yesterday.Format(time.RFC3339Nano))
	require.Equal(t, http.StatusOK, e.get("/api/books/trial-balance?as_of="+then, &tb))
	assert.True(t, e.yesterday.Equal(tb.AsOf))
	assert.Equal(t, 3, tb.Orders)
	assert.Equal(t, [2]int64{4999, 0}, balances(tb)["payments_clearing"])
	assert.Equal(t, [2]int64{0, 4999}, balances(tb)["revenue"])
	require.Equal(t, http.StatusOK, e.get("/api/books/report?by=month&as_of="+then, &rep))
	require.Len(t, rep.Periods, 1)
	assert.Equal(t, projections.BooksRow{Period: "2025-11", Orders: 3, Money: domain.Totals{Captured: 4999, Net: 4999}}, rep.Periods[0])

	// CSV, and what is refused.
	resp, err := http.Get(e.url + "/api/books/report?format=csv&from=2025-11-20")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "period,status,orders,captured,refunded,charged_back,reversed,net,currency\n"+
		"2025-11-20,CHARGED,5,150.00,0.00,0.00,0.00,150.00,USD\n"+
		"2025-11-20,CHARGEBACK_REVERSED,1,6.33,0.00,6.33,6.33,6.33,USD\n", string(body))
	assert.Equal(t, http.StatusBadRequest, e.get("/api/books/report?by=year", nil))
	assert.Equal(t, http.StatusBadRequest, e.get("/api/books/trial-balance?as_of=noon", nil))

	// The order as of its chargeback: charged back, not yet reversed.
	var sum struct {
		projections.Summary
		AsOf time.Time `json:"asOf"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/orders/"+e.day.reversed+"?as_of="+url.QueryEscape(e.chargedBk.Format(time.RFC3339Nano)), &sum))
	assert.Equal(t, domain.StatusChargeback, sum.Status)
	assert.Equal(t, 4, sum.Facts)
	assert.True(t, e.chargedBk.Equal(sum.AsOf))
	assert.Equal(t, int64(633), sum.Books.Of(domain.AccountChargebacks), "taken back after fulfilment: off revenue")
	assert.Equal(t, http.StatusNotFound, e.get("/api/orders/"+e.day.reversed+"?as_of=2000-01-01", nil), "no fact by then")
}

func TestBrowserBooksPage(t *testing.T) {
	e := seedBooksWeb(t)
	b := newBrowser(t)
	run, eval := b.run, b.eval
	text := func(sel string) string {
		return eval(`document.querySelector(` + jsString(sel) + `).textContent.trim()`)
	}
	count := func(sel string) string {
		return eval(`String(document.querySelectorAll(` + jsString(sel) + `).length)`)
	}
	tbCell := func(account, side string) string {
		return text(`#trial-balance tr[data-account="` + account + `"] td[data-field="` + side + `"]`)
	}
	cell := func(period, status, field string) string {
		return text(`#books-report tr[data-period="` + period + `"][data-status="` + status + `"] td[data-field="` + field + `"]`)
	}
	waitBooks := func(what string) {
		t.Helper()
		run(what, chromedp.WaitVisible(chromedp.CSS(`#view[data-ready="1"] #trial-balance`)),
			chromedp.WaitVisible(chromedp.CSS(`#books-chart svg`)), chromedp.WaitVisible(chromedp.CSS(`#books-report`)))
	}

	// ---- Now: the trial balance, the chart by day, the report. ----
	run("open the books from the nav",
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#overview[data-orders="9"]`)),
		chromedp.Click(chromedp.CSS(`#nav-books`)))
	waitBooks("the books page")
	assert.Equal(t, "/ui/books", eval(`location.pathname`))
	assert.Equal(t, "page", eval(`document.querySelector('#nav-books').getAttribute('aria-current')`))
	assert.Equal(t, "true", eval(`document.querySelector('#trial-balance').dataset.balanced`))
	assert.Equal(t, []string{"206.32", "", "", "150.00", "", "56.32", "0.00", "", "0.00", ""},
		[]string{tbCell("payments_clearing", "debit"), tbCell("payments_clearing", "credit"), tbCell("deferred_revenue", "debit"),
			tbCell("deferred_revenue", "credit"), tbCell("revenue", "debit"), tbCell("revenue", "credit"),
			tbCell("refunds", "debit"), tbCell("refunds", "credit"), tbCell("chargebacks", "debit"), tbCell("chargebacks", "credit")})
	assert.Equal(t, []string{"206.32", "206.32"}, []string{tbCell("total", "debit"), tbCell("total", "credit")})
	assert.Equal(t, "1100,2100,4000,4100,4200", eval(`[...document.querySelectorAll('#trial-balance tbody tr td:first-child')].map(c => c.textContent).join()`))
	assert.Equal(t, "Balanced: debits equal credits over 9 orders.", text(`#tb-status`))

	assert.Equal(t, "2025-11-19,2025-11-20", eval(`[...document.querySelectorAll('#books-chart svg .period')].map(g => g.dataset.period).join()`))
	assert.Equal(t, "4999,15633", eval(`[...document.querySelectorAll('#books-chart svg .period .bar[data-series="captured"]')].map(r => r.dataset.value).join()`))
	assert.Equal(t, "4999,15633", eval(`[...document.querySelectorAll('#books-chart svg .period')].map(g => g.dataset.net).join()`))
	assert.Equal(t, "captured,refunded,charged back,reversed,net", eval(`[...document.querySelectorAll('#books-chart svg .legend-item')].map(g => g.dataset.series).join()`))
	assert.Equal(t, "0", eval(`String((() => {
		const box = document.querySelector('#books-chart svg').getBoundingClientRect();
		return [...document.querySelectorAll('#books-chart svg .x-label, #books-chart svg .legend-item')].filter(l => {
			const r = l.getBoundingClientRect();
			return r.left < box.left - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1;
		}).length;
	})())`), "no label is cut off")

	assert.Equal(t, []string{"3", "49.99", "49.99"}, []string{cell("2025-11-19", "all", "orders"), cell("2025-11-19", "all", "captured"), cell("2025-11-19", "all", "net")})
	assert.Equal(t, []string{"5", "150.00", "0.00"}, []string{cell("2025-11-20", "CHARGED", "orders"), cell("2025-11-20", "CHARGED", "captured"), cell("2025-11-20", "CHARGED", "chargedBack")})
	assert.Equal(t, []string{"1", "6.33", "6.33", "6.33", "6.33"}, []string{cell("2025-11-20", "CHARGEBACK_REVERSED", "orders"),
		cell("2025-11-20", "CHARGEBACK_REVERSED", "captured"), cell("2025-11-20", "CHARGEBACK_REVERSED", "chargedBack"),
		cell("2025-11-20", "CHARGEBACK_REVERSED", "reversed"), cell("2025-11-20", "CHARGEBACK_REVERSED", "net")})
	assert.Equal(t, []string{"9", "206.32", "6.33", "206.32"}, []string{cell("total", "all", "orders"), cell("total", "all", "captured"),
		cell("total", "all", "chargedBack"), cell("total", "all", "net")})
	assert.Equal(t, "5", eval(`document.querySelector('#books-report').dataset.rows`))
	b.shot("books.png")
	b.checkA11y("books")

	// ---- By month, through the form. ----
	run("by month", chromedp.SetValue(chromedp.CSS(`#books-by`), "month"), chromedp.Click(chromedp.CSS(`#books-apply`)),
		chromedp.WaitVisible(chromedp.CSS(`#books-report tr[data-period="2025-11"]`)))
	waitBooks("the books by month")
	assert.Equal(t, "?by=month", eval(`location.search`))
	assert.Equal(t, "2025-11", eval(`[...document.querySelectorAll('#books-chart svg .period')].map(g => g.dataset.period).join()`))
	assert.Equal(t, []string{"9", "206.32"}, []string{cell("total", "all", "orders"), cell("total", "all", "net")})
	assert.Equal(t, "2", count(`#books-report tbody tr[data-period="2025-11"][data-status="INIT"], #books-report tbody tr[data-period="2025-11"][data-status="CHARGED"]`))
	b.shot("books-by-month.png")

	// ---- As of the end of yesterday's facts: what the ledger knew then. ----
	asOf := e.yesterday.Format(time.RFC3339Nano)
	run("as of then", chromedp.Navigate(e.url+"/ui/books"))
	waitBooks("the books now again")
	run("type the moment", chromedp.SendKeys(chromedp.CSS(`#books-asof`), asOf), chromedp.Click(chromedp.CSS(`#books-apply`)),
		chromedp.WaitVisible(chromedp.CSS(`#trial-balance[data-orders="3"]`)))
	waitBooks("the books as of then")
	assert.Equal(t, "?as_of="+url.QueryEscape(asOf), eval(`location.search`))
	assert.Contains(t, text(`#books-when`), "As of "+asOf+": the facts recorded by then.")
	assert.Equal(t, []string{"49.99", "49.99", "0.00"}, []string{tbCell("payments_clearing", "debit"), tbCell("revenue", "credit"), tbCell("deferred_revenue", "credit")}, "a zero balance on its normal side")
	assert.Equal(t, "2025-11-19", eval(`[...document.querySelectorAll('#books-chart svg .period')].map(g => g.dataset.period).join()`))
	assert.Equal(t, "0", count(`#books-report tr[data-period="2025-11-20"]`), "today's facts were not recorded yet")
	assert.Equal(t, []string{"3", "49.99"}, []string{cell("total", "all", "orders"), cell("total", "all", "net")})
	assert.Contains(t, eval(`document.querySelector('#books-chart svg title').textContent`), "as of ")
	b.shot("books-as-of.png")
	b.checkA11y("books as of")

	// ---- The order page as of its chargeback, beside now. ----
	run("open the reversed order", chromedp.Navigate(e.url+"/ui/orders/"+e.day.reversed),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="5"]`)))
	assert.Equal(t, "0", count(`#asof-banner`), "now: no as-of banner")
	assert.Equal(t, "4", count(`#timeline .timeline-entry[data-revision="1"] .posting, #timeline .timeline-entry[data-revision="2"] .posting`),
		"the capture's and the recognition's postings")
	chargeback := e.chargedBk.Format(time.RFC3339Nano)
	run("show it as of the chargeback", chromedp.SendKeys(chromedp.CSS(`#asof-input`), chargeback), chromedp.Click(chromedp.CSS(`#asof-apply`)),
		chromedp.WaitVisible(chromedp.CSS(`#asof-banner`)), chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="4"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-summary[data-status="CHARGEBACK"]`)), chromedp.WaitVisible(chromedp.CSS(`#money-chart svg`)))
	assert.Equal(t, "?as_of="+url.QueryEscape(chargeback), eval(`location.search`))
	assert.Equal(t, "CHARGEBACK", text(`#asof-compare tr[data-when="then"] .status`))
	assert.Equal(t, "CHARGEBACK_REVERSED", text(`#asof-compare tr[data-when="now"] .status`))
	assert.Equal(t, []string{"0.00", "6.33"}, []string{text(`#asof-compare tr[data-when="then"] td[data-field="net"]`), text(`#asof-compare tr[data-when="now"] td[data-field="net"]`)})
	assert.Contains(t, text(`#asof-banner`), "4 facts recorded by then; 1 recorded since is left out.")
	assert.Equal(t, "4", count(`#order-events .event`), "the events the audit folded")
	assert.Equal(t, "INIT,CHARGED,FULFILLED,CHARGEBACK", eval(`[...document.querySelectorAll('#money-chart svg .status-step')].map(g => g.dataset.status).join()`))
	assert.Equal(t, "chargebacks:debit,payments_clearing:credit",
		eval(`[...document.querySelectorAll('#timeline .timeline-entry[data-revision="3"] .posting')].map(p => p.dataset.account + ':' + p.dataset.side).join()`))
	b.shot("order-as-of.png")
	b.checkA11y("order as of")
	run("back to now", chromedp.Click(chromedp.CSS(`#asof-now`)), chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="5"]`)))
	assert.Equal(t, "", eval(`location.search`))

	// ---- Now, a new fact redraws the books: a refund of the fulfilled order. ----
	run("the books now", chromedp.Navigate(e.url+"/ui/books"), chromedp.WaitVisible(chromedp.CSS(`#tail-status[data-state="live"]`)))
	waitBooks("the books now")
	e.fact(domain.FactOrderRefundRequested, e.fulfilled, "", 0, func(f *domain.Fact) { f.Reason = "changed their mind" })
	run("see the refund in the books",
		chromedp.WaitVisible(chromedp.CSS(`#trial-balance tr[data-account="refunds"] td[data-field="debit"][data-minor="4999"]`)))
	assert.Equal(t, []string{"156.33", "49.99"}, []string{tbCell("payments_clearing", "debit"), tbCell("refunds", "debit")})
	assert.Equal(t, "true", eval(`document.querySelector('#trial-balance').dataset.balanced`))

	// ---- A read model whose books do not balance says so. ----
	odd := domain.NameUUID("browser-order", "unbalanced")
	row := projections.Summary{OrderID: odd, Stream: domain.StreamName(odd), Status: domain.StatusCharged, Facts: 1, CreatedAt: browserToday}
	row.Books.Balance[domain.AccountPaymentsClearing] = 500
	require.NoError(t, e.rm.Apply(context.Background(), "books-browser-test", domain.Position{}, []projections.Summary{row}))
	run("reload the books", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#trial-balance[data-balanced="false"]`)))
	assert.Equal(t, "Not balanced: debits − credits = 5.00 USD.", text(`#tb-status`))
	b.shot("books-unbalanced.png")

	assert.Empty(t, b.consoleProblems(), "the page logged errors (CSP violations show up here too)")
}
