package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// fixedIndex answers fixed values and records what it was asked; it
// stands where the bolt read model's index goes, whose own tests run in
// adapters/bolt and which cmd/ledger's browser test runs wired.
type fixedIndex struct {
	mu       sync.Mutex
	queries  []projections.OrderQuery
	days     []string
	page     projections.OrderPage
	overview projections.Overview
	dayRows  []projections.DayTotals
	err      error
}

func (f *fixedIndex) Orders(_ context.Context, q projections.OrderQuery) (projections.OrderPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return f.page, f.err
}

func (f *fixedIndex) Overview(context.Context) (projections.Overview, error) {
	return f.overview, f.err
}

func (f *fixedIndex) Days(_ context.Context, from, to string) ([]projections.DayTotals, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.days = append(f.days, from+".."+to)
	return f.dayRows, f.err
}

func (f *fixedIndex) asked() []projections.OrderQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]projections.OrderQuery(nil), f.queries...)
}

// summariesModel answers Summaries only, with fixed rows.
type summariesModel struct {
	untouchedModel
	rows []projections.Summary
}

func (m summariesModel) Summaries(_ context.Context, after string, limit int) ([]projections.Summary, error) {
	var out []projections.Summary
	for _, r := range m.rows {
		if r.OrderID > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func getJSON(t *testing.T, s *Server, target string, out any) *http.Response {
	t.Helper()
	rec := do(t, s, http.MethodGet, target, nil, nil)
	if out != nil && rec.Code == http.StatusOK {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out), rec.Body.String())
	}
	return rec.Result()
}

func TestOrdersWithoutIndex(t *testing.T) {
	rows := []projections.Summary{{OrderID: orderB, Status: domain.StatusInit}, {OrderID: orderA, Status: domain.StatusCharged}}
	s := newTestServer(t, Config{}, Deps{Orders: summariesModel{rows: rows}})
	var body ordersBody
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/orders?limit=1", &body).StatusCode)
	assert.Equal(t, []projections.Summary{rows[0]}, body.Orders)
	assert.Equal(t, orderB, body.Next, "paged by id, as before")

	for _, q := range []string{"status=INIT", "sort=activity", "prefix=0b5e", "cursor=abc"} {
		rec := do(t, s, http.MethodGet, "/api/orders?"+q, nil, nil)
		assert.Equal(t, http.StatusNotImplemented, rec.Code, q)
		assert.Contains(t, decodeError(t, rec), "order index", q)
	}
	for _, path := range []string{"/api/overview", "/api/days", "/api/days?from=2025-11-01"} {
		rec := do(t, s, http.MethodGet, path, nil, nil)
		assert.Equal(t, http.StatusNotImplemented, rec.Code, path)
		assert.Equal(t, noIndex, decodeError(t, rec))
	}
	var info infoBody
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/info", &info).StatusCode)
	assert.False(t, info.Index)
	assert.Equal(t, domain.Statuses(), info.Statuses)
}

func TestOrdersWithIndex(t *testing.T) {
	idx := &fixedIndex{page: projections.OrderPage{Orders: []projections.Summary{{OrderID: orderA}}, Next: "c2"}}
	rows := []projections.Summary{{OrderID: orderB}}
	s := newTestServer(t, Config{MaxPageSize: 200}, Deps{Index: idx, Orders: summariesModel{rows: rows}})

	var body ordersBody
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/orders?status=chargeback_reversed&sort=Activity&prefix=3F2C6A8E-1D&cursor=c1&limit=20", &body).StatusCode)
	assert.Equal(t, idx.page.Orders, body.Orders)
	assert.Equal(t, "c2", body.Next, "the index's cursor, passed on as it is")
	require.NoError(t, getJSON(t, s, "/api/orders", &body).Body.Close())
	require.NoError(t, getJSON(t, s, "/api/orders?sort=amount&prefix=", &body).Body.Close())
	assert.Equal(t, []projections.OrderQuery{
		{Status: domain.StatusChargebackReversed, Sort: projections.SortByActivity, Prefix: "3f2c6a8e-1d", Cursor: "c1", Limit: 20},
		{Limit: 50},
		{Sort: projections.SortByAmount, Limit: 50},
	}, idx.asked())

	// after= alone still pages the read model by id.
	body = ordersBody{}
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/orders?after=00000000-0000-4000-8000-000000000000", &body).StatusCode)
	assert.Equal(t, rows, body.Orders)
	assert.Len(t, idx.asked(), 3)

	idx.page = projections.OrderPage{}
	rec := do(t, s, http.MethodGet, "/api/orders?status=INIT", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"orders":[]}`, rec.Body.String())
}

func TestOrdersParameterErrors(t *testing.T) {
	idx := &fixedIndex{}
	s := newTestServer(t, Config{MaxPageSize: 200}, Deps{Index: idx})
	cases := []struct{ query, want string }{
		{"status=PAID", "status: want one of INIT, CHARGED, FULFILLED, FULFILL_FAILED, REFUNDING, REFUNDED, REFUND_FAILED, CHARGEBACK, CHARGEBACK_REVERSED, CLOSED"},
		{"status=%3Cb%3E", "status: want one of INIT"},
		{"sort=name", "sort: want one of id, activity, amount"},
		{"sort=-activity", "sort: want one of id, activity, amount"},
		{"prefix=xyz", "prefix: want the start of an order id"},
		{"prefix=3f2c6a8e1", "prefix: want the start of an order id"},
		{"prefix=" + strings.Repeat("a", 37), "prefix: want the start of an order id"},
		{"cursor=" + strings.Repeat("c", maxCursor+1), "cursor: pass back"},
		{"cursor=a%20b", "cursor: pass back"},
		{"cursor=%E2%82%AC", "cursor: pass back"},
		{"status=INIT&after=" + orderA, "after: pages the listing by id"},
		{"status=INIT&limit=201", "limit: want a whole number from 1 to 200"},
		{"after=nope", "after: want an order id"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			rec := do(t, s, http.MethodGet, "/api/orders?"+c.query, nil, nil)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			msg := decodeError(t, rec)
			assert.Contains(t, msg, c.want)
			assert.NotContains(t, msg, "<")
		})
	}
	assert.Empty(t, idx.asked(), "no bad request reaches the index")

	// What only the index can tell is wrong (a cursor of another listing)
	// is the client's mistake too.
	idx.err = fmt.Errorf("list orders: %w: the cursor is not one of this listing's", projections.ErrInvalidQuery)
	rec := do(t, s, http.MethodGet, "/api/orders?status=INIT&cursor=aWQ", nil, nil)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Equal(t, "invalid query: the cursor is not one of this listing's", decodeError(t, rec))

	idx.err = fmt.Errorf("index: %w", domain.ErrUnavailable)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, s, http.MethodGet, "/api/orders?status=INIT", nil, nil).Code)
	idx.err = errors.New("bucket at /var/lib/ledger/readmodel.db is corrupt")
	rec = do(t, s, http.MethodGet, "/api/orders?status=INIT", nil, nil)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.NotContains(t, rec.Body.String(), "/var/lib")
}

func TestDays(t *testing.T) {
	idx := &fixedIndex{dayRows: []projections.DayTotals{
		{Day: "2025-11-19", Orders: 2, Money: domain.Totals{Captured: 1000, Net: 1000}},
		{Day: "2025-11-20", Orders: 1, Money: domain.Totals{Captured: 633, ChargedBack: 633, Reversed: 633, Net: 633}},
	}}
	s := newTestServer(t, Config{}, Deps{Index: idx})
	var body daysBody
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/days?from=2025-11-19&to=2025-11-20", &body).StatusCode)
	assert.Equal(t, "2025-11-19", body.From)
	assert.Equal(t, idx.dayRows, body.Days)
	assert.Equal(t, dayTotal{Orders: 3, Money: domain.Totals{Captured: 1633, ChargedBack: 633, Reversed: 633, Net: 1633}}, body.Total)
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/days", &body).StatusCode)
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/days?to=2025-11-20", &body).StatusCode)
	assert.Equal(t, []string{"2025-11-19..2025-11-20", "..", "..2025-11-20"}, idx.days, "open ends stay open")

	idx.dayRows = nil
	rec := do(t, s, http.MethodGet, "/api/days?from=2030-01-01", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"from":"2030-01-01","days":[],"total":{"orders":0,"money":{"captured":0,"refunded":0,"chargedBack":0,"reversed":0,"net":0}}}`, rec.Body.String())

	for _, c := range []struct{ query, want string }{
		{"from=2025-13-01", "from: want a date like 2025-11-20"},
		{"from=20251120", "from: want a date like 2025-11-20"},
		{"from=2025-2-1", "from: want a date like 2025-11-20"},
		{"to=yesterday", "to: want a date like 2025-11-20"},
		{"from=2025-11-20&to=2025-11-19", "to: must not be before from"},
	} {
		rec := do(t, s, http.MethodGet, "/api/days?"+c.query, nil, nil)
		assert.Equal(t, http.StatusBadRequest, rec.Code, c.query)
		assert.Contains(t, decodeError(t, rec), c.want, c.query)
	}
	assert.Len(t, idx.days, 4, "no bad request reaches the index")
}

// headLog answers Head only.
type headLog struct {
	untouchedLog
	head domain.Position
	ok   bool
}

func (l headLog) Head(context.Context) (domain.Position, bool, error) { return l.head, l.ok, nil }

// checkpointModel answers Checkpoint only.
type checkpointModel struct {
	untouchedModel
	cp *domain.Position
}

func (m checkpointModel) Checkpoint(_ context.Context, name string) (*domain.Position, error) {
	if name != projections.ReadModelName {
		return nil, fmt.Errorf("unexpected checkpoint %q", name)
	}
	return m.cp, nil
}

func TestOverview(t *testing.T) {
	idx := &fixedIndex{
		overview: projections.Overview{Orders: 6, ByStatus: map[domain.Status]int{domain.StatusCharged: 3, domain.StatusChargebackReversed: 2, "": 1},
			Money: domain.Totals{Captured: 5000, ChargedBack: 1000, Reversed: 1000, Net: 5000}},
		dayRows: []projections.DayTotals{{Day: "2025-11-20", Orders: 2, Money: domain.Totals{Captured: 2000, Net: 2000}}},
		page:    projections.OrderPage{Orders: []projections.Summary{{OrderID: orderA}, {OrderID: orderB}}, Next: "more"},
	}
	clock := func() time.Time { return time.Date(2025, 11, 20, 23, 59, 0, 0, time.FixedZone("east", 3*3600)) }
	var depthAsked []string
	s := newTestServer(t, Config{}, Deps{Index: idx, Clock: clock,
		Lag: func(context.Context) (map[string]int64, error) {
			return map[string]int64{projections.ReadModelName: 0, projections.LifecycleName: 12}, nil
		},
		DeadLetterDepth: func(_ context.Context, q string) (int, error) {
			depthAsked = append(depthAsked, q)
			return map[string]int{DeadLetterError: 3, DeadLetterSkipped: 1}[q], nil
		},
		Parked: func(context.Context) ([]projections.Parked, error) { return sampleParked(), nil },
	})
	var body overviewBody
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/overview", &body).StatusCode)
	assert.Equal(t, "2025-11-20", body.Today, "today is the UTC day")
	assert.Equal(t, []string{"2025-11-20..2025-11-20"}, idx.days)
	assert.Equal(t, 6, body.Orders)
	assert.Equal(t, 1, body.NoCheckout, "facts before their checkout: an order without a status")
	require.Len(t, body.ByStatus, len(domain.Statuses()), "every status, zeros too")
	for i, st := range domain.Statuses() {
		assert.Equal(t, st, body.ByStatus[i].Status)
		assert.Equal(t, idx.overview.ByStatus[st], body.ByStatus[i].Count, st)
	}
	assert.Equal(t, moneyOverview{Today: domain.Totals{Captured: 2000, Net: 2000}, TodayOrders: 2, All: idx.overview.Money}, body.Money)
	assert.Equal(t, idx.page.Orders, body.Recent)
	assert.Equal(t, []projections.OrderQuery{{Sort: projections.SortByActivity, Limit: recentOrders}}, idx.asked())
	assert.Equal(t, lagSection{section: section{Available: true},
		Projections: []lagJSON{{projections.LifecycleName, 12}, {projections.ReadModelName, 0}}}, body.Lag)
	assert.Equal(t, deadLetterSection{section: section{Available: true},
		Queues: []queueCount{{DeadLetterError, 3}, {DeadLetterSkipped, 1}}}, body.DeadLetters)
	assert.Equal(t, []string{DeadLetterError, DeadLetterSkipped}, depthAsked)
	assert.Equal(t, parkedSection{section: section{Available: true}, Orders: 2, Lanes: 3}, body.Parked)

	// Nothing moved today: zeros, not an error.
	idx.dayRows = []projections.DayTotals{{Day: "2025-11-19", Orders: 9, Money: domain.Totals{Captured: 1}}}
	body = overviewBody{}
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/overview", &body).StatusCode)
	assert.Equal(t, moneyOverview{All: idx.overview.Money}, body.Money)

	idx.err = fmt.Errorf("overview: %w", domain.ErrUnavailable)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, s, http.MethodGet, "/api/overview", nil, nil).Code)
}

func TestOverviewOptionalSections(t *testing.T) {
	idx := &fixedIndex{overview: projections.Overview{ByStatus: map[domain.Status]int{}}}
	// Without Lag, the server tells the read model's own lag.
	s := newTestServer(t, Config{}, Deps{Index: idx,
		Log: headLog{head: domain.Position{Commit: 40, Prepare: 40}, ok: true}, Orders: checkpointModel{cp: &domain.Position{Commit: 33, Prepare: 33}}})
	var body overviewBody
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/overview", &body).StatusCode)
	assert.Equal(t, lagSection{section: section{Available: true}, Projections: []lagJSON{{projections.ReadModelName, 7}}}, body.Lag)
	assert.Equal(t, deadLetterSection{Queues: []queueCount{}}, body.DeadLetters, "not wired: not available")
	assert.Equal(t, parkedSection{}, body.Parked)
	assert.Equal(t, []projections.Summary{}, body.Recent)
	rec := do(t, s, http.MethodGet, "/api/overview", nil, nil)
	assert.Contains(t, rec.Body.String(), `"deadLetters":{"available":false,"queues":[]}`)

	// An empty log: nothing to be behind; a read model that never wrote
	// a checkpoint is behind the whole log.
	s = newTestServer(t, Config{}, Deps{Index: idx, Log: headLog{}, Orders: checkpointModel{}})
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/overview", &body).StatusCode)
	assert.Equal(t, []lagJSON{{projections.ReadModelName, 0}}, body.Lag.Projections)
	s = newTestServer(t, Config{}, Deps{Index: idx, Log: headLog{head: domain.Position{Commit: 4}, ok: true}, Orders: checkpointModel{}})
	require.Equal(t, http.StatusOK, getJSON(t, s, "/api/overview", &body).StatusCode)
	assert.Equal(t, []lagJSON{{projections.ReadModelName, 5}}, body.Lag.Projections)

	// Sections that fail or hang say so in a word; the rest of the page
	// stands, and no error detail reaches the body.
	release := make(chan struct{})
	defer close(release)
	s = newTestServer(t, Config{ReadyTimeout: 50 * time.Millisecond}, Deps{Index: idx,
		Lag: func(context.Context) (map[string]int64, error) { panic("lag exploded") },
		DeadLetterDepth: func(context.Context, string) (int, error) {
			return 0, errors.New("dial amqp://guest:secret@broker.internal: refused")
		},
		Parked: func(context.Context) ([]projections.Parked, error) { <-release; return nil, nil },
	})
	start := time.Now()
	rec = do(t, s, http.MethodGet, "/api/overview", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Less(t, time.Since(start), 5*time.Second)
	body = overviewBody{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, section{Available: true, Error: "could not be read just now"}, body.Lag.section)
	assert.Equal(t, section{Available: true, Error: "could not be read just now"}, body.DeadLetters.section)
	assert.Equal(t, section{Available: true, Error: "no answer within 50ms"}, body.Parked.section)
	assert.NotContains(t, rec.Body.String(), "secret")
	assert.NotContains(t, rec.Body.String(), "broker.internal")
}
