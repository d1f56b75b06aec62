package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// The stream browser and the JSON API over a real embedded store and read
// model, with the read-model projection running, as `ledger serve` wires
// them (without the broker). The browser test drives Debian's chromium.

const browserToken = "browser-test-admin-token"

type webEnv struct {
	t     *testing.T
	store *bolt.Log
	rm    *bolt.ReadModel
	srv   *httpapi.Server
	url   string
	cur   domain.Currency
	clock time.Time // the next fact's time, less one step
}

// browserToday is the day the server calls today: seed's facts are dated
// the day before, seedToday's on it.
var browserToday = time.Date(2025, 11, 20, 12, 0, 0, 0, time.UTC)

func startWebEnv(t *testing.T) *webEnv {
	t.Helper()
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{}, logger.Named("store"))
	require.NoError(t, err)
	rm, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
	require.NoError(t, err)

	rules := domain.DefaultRules()
	out := domain.OutboundConfig{Namespace: "bookworm", ParentNamespace: "bookworm-parent", ClientID: "ledger",
		Currency: rules.Currency, CurrencySymbol: "$", CurrencyType: "REAL", DecimalsAsStrings: true}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := projections.NewOrders(store, rm, projections.ReadModelConfig{Rules: rules}).Run(ctx); err != nil {
			t.Errorf("read model projection: %v", err)
		}
	})
	// A short ReadTimeout proves long-lived responses (the tail) outlive it.
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Token: browserToken, TailHeartbeat: time.Second,
		ReadTimeout: 500 * time.Millisecond}, httpapi.Deps{
		Log:    store,
		Orders: rm,
		Audit: func(ctx context.Context, id string, asOf time.Time) (projections.AuditReport, error) {
			return projections.AuditAsOf(ctx, store, rules, out, id, asOf)
		},
		Replay: func(ctx context.Context, dryRun, restate bool) (projections.ReplayResult, error) {
			if !dryRun || restate {
				return projections.ReplayResult{}, errors.New("this test wires dry runs only")
			}
			return projections.Replay(ctx, store, projections.ReplayOptions{Rules: rules, Current: rm})
		},
		Ready: []httpapi.Check{{Name: "store", Fn: func(ctx context.Context) error {
			_, _, err := store.Head(ctx)
			return err
		}}},
		// The parked lanes as the bolt read model keeps them; the dead
		// letters as the broker adapter's browse would give them (the
		// broker-backed list runs in parked_test.go).
		Parked:      rm.ListParked,
		DeadLetters: sampleDeadLetters,
		DeadLetterDepth: func(ctx context.Context, queue string) (int, error) {
			msgs, err := sampleDeadLetters(ctx, queue, 1000)
			return len(msgs), err
		},
		// The read model's own indexes, as serve wires them; Lag is left
		// to the server (the read model's checkpoint against the head).
		Index: rm,
		Rules: rules,
		Clock: func() time.Time { return browserToday },
	}, logger.Named("http"))
	require.NoError(t, err)
	addr, err := srv.Start(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		assert.NoError(t, srv.Shutdown(sctx))
		cancel()
		wg.Wait()
		assert.NoError(t, rm.Close())
		assert.NoError(t, store.Close())
	})
	return &webEnv{t: t, store: store, rm: rm, srv: srv, url: "http://" + addr, cur: rules.Currency,
		clock: browserToday.Add(-14 * time.Hour)}
}

// fact appends one fact the way the ingester stores a consumed message and
// returns its event id.
func (e *webEnv) fact(typ domain.FactType, orderID, basketID string, amount int64, tweak ...func(*domain.Fact)) string {
	e.t.Helper()
	e.clock = e.clock.Add(7 * time.Minute)
	f := domain.Fact{Type: typ, OrderID: orderID, BasketID: basketID, At: e.clock}
	if amount > 0 || basketID != "" {
		f.Amount, f.HasAmount = amount, true
	}
	for _, fn := range tweak {
		fn(&f)
	}
	require.NoError(e.t, f.Validate())
	msgID := domain.NameUUID("browser-test", orderID, string(typ), e.clock.String())
	p, err := ingest.FactEvent(f, e.cur, domain.Metadata{CorrelationID: orderID, MessageID: msgID, Envelope: domain.EnvelopeMassTransit,
		Exchange: domain.InboundExchange(typ), ReceivedAt: e.clock})
	require.NoError(e.t, err)
	_, err = e.store.Append(context.Background(), p.Stream, domain.Any, p.Event)
	require.NoError(e.t, err)
	return p.Event.ID
}

// sampleDeadLetters stands where the broker's browse goes: two reasons,
// and a body that would run script if the page treated it as HTML.
func sampleDeadLetters(_ context.Context, queue string, limit int) ([]httpapi.DeadLetter, error) {
	if queue != httpapi.DeadLetterError {
		return nil, nil
	}
	at := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	return []httpapi.DeadLetter{
		{MessageID: "11111111-1111-4111-8111-111111111111", Type: "UserCheckedOutIntegrationEvent", Time: at, Reason: "invalid",
			Detail: "decode: totalMoney: not a decimal", Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent",
			ContentType: "application/json", Headers: map[string]any{"x-ledger-reason": "invalid"},
			Body: []byte(`{"orderId":"x","totalMoney":"<img src=x onerror=alert(1)>"}`)},
		{MessageID: "22222222-2222-4222-8222-222222222222", Time: at.Add(time.Minute), Reason: "invalid", Body: []byte("<script>alert(2)</script>")},
		{MessageID: "33333333-3333-4333-8333-333333333333", Time: at.Add(2 * time.Minute), Reason: "delivery limit", Body: []byte(`{"orderId":"y"}`)},
	}[:min(limit, 3)], nil
}

func named(f *domain.Fact) {
	name, email := "Ada Lovelace", "ada@example.test"
	f.FullName, f.Email = &name, &email
}

// seed writes three orders: one fulfilled, one still placing, one whose
// basket could not be deleted.
func (e *webEnv) seed() (fulfilled, placing, closed string) {
	fulfilled = domain.NameUUID("browser-order", "fulfilled")
	placing = domain.NameUUID("browser-order", "placing")
	closed = domain.NameUUID("browser-order", "closed")
	basket := func(o string) string { return domain.NameUUID("basket", o) }

	e.fact(domain.FactUserCheckedOut, fulfilled, basket(fulfilled), 4999, named)
	e.fact(domain.FactUserCheckedOut, placing, basket(placing), 1250, named)
	e.fact(domain.FactBasketDeletedComplete, fulfilled, basket(fulfilled), 4999, named)
	e.fact(domain.FactUserCheckedOut, closed, basket(closed), 300, named)
	e.fact(domain.FactOrderCompleted, fulfilled, basket(fulfilled), 4999, named)
	e.fact(domain.FactBasketDeletedFailed, closed, basket(closed), 300, named)
	e.waitStatus(fulfilled, domain.StatusFulfilled)
	e.waitStatus(placing, domain.StatusInit)
	e.waitStatus(closed, domain.StatusClosed)
	return fulfilled, placing, closed
}

// dayOrders are what seedToday writes on browserToday.
type dayOrders struct {
	reversed string   // charged 6.33, fulfilled, charged back, the chargeback reversed
	charged  []string // five orders charged 10.00, 20.00 … 50.00
}

func (e *webEnv) seedToday() dayOrders {
	e.t.Helper()
	e.clock = browserToday.Add(-4 * time.Hour)
	basket := func(o string) string { return domain.NameUUID("basket", o) }
	d := dayOrders{reversed: domain.NameUUID("browser-order", "reversed")}
	provider := func(ref string) func(*domain.Fact) { return func(f *domain.Fact) { f.ProviderRef = ref } }
	e.fact(domain.FactUserCheckedOut, d.reversed, basket(d.reversed), 633, named)
	e.fact(domain.FactBasketDeletedComplete, d.reversed, basket(d.reversed), 633, named)
	e.fact(domain.FactOrderCompleted, d.reversed, basket(d.reversed), 633, named)
	e.fact(domain.FactPaymentChargeback, d.reversed, "", 633, provider("ch_browser_1"), func(f *domain.Fact) { f.Reason = "fraudulent" })
	e.fact(domain.FactPaymentChargebackReversed, d.reversed, "", 633, provider("ch_browser_1"))
	for i := range 5 {
		id := domain.NameUUID("browser-order", fmt.Sprintf("charged-%d", i))
		d.charged = append(d.charged, id)
		e.fact(domain.FactUserCheckedOut, id, basket(id), int64(i+1)*1000, named)
		e.fact(domain.FactBasketDeletedComplete, id, basket(id), int64(i+1)*1000, named)
	}
	e.waitStatus(d.reversed, domain.StatusChargebackReversed)
	for _, id := range d.charged {
		e.waitStatus(id, domain.StatusCharged)
	}
	return d
}

func (e *webEnv) waitStatus(orderID string, want domain.Status) {
	e.t.Helper()
	var last domain.Status
	require.Eventually(e.t, func() bool {
		s, ok, err := e.rm.Summary(context.Background(), orderID)
		require.NoError(e.t, err)
		last = s.Status
		return ok && s.Status == want
	}, 15*time.Second, 20*time.Millisecond, "order %s never reached %s in the read model (last %q)", orderID, want, last)
}

func (e *webEnv) get(path string, out any) int {
	e.t.Helper()
	resp, err := http.Get(e.url + path)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(e.t, json.Unmarshal(body, out), string(body))
	}
	return resp.StatusCode
}

type apiEvent struct {
	Stream   string          `json:"stream"`
	Revision uint64          `json:"revision"`
	Position string          `json:"position"`
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Created  time.Time       `json:"created"`
}

type apiEvents struct {
	Stream  string     `json:"stream"`
	OrderID string     `json:"orderId"`
	Events  []apiEvent `json:"events"`
	Next    *uint64    `json:"next"`
}

type apiStreams struct {
	Streams []struct {
		Name         string `json:"name"`
		LastRevision uint64 `json:"lastRevision"`
		Count        uint64 `json:"count"`
		OrderID      string `json:"orderId"`
	} `json:"streams"`
	Next string `json:"next"`
}

func TestHTTPAPIOverEmbeddedStore(t *testing.T) {
	e := startWebEnv(t)
	fulfilled, placing, closed := e.seed()

	// Streams, paged by name.
	var page1, page2 apiStreams
	require.Equal(t, http.StatusOK, e.get("/api/streams?prefix=order-&limit=2", &page1))
	require.Len(t, page1.Streams, 2)
	require.NotEmpty(t, page1.Next)
	require.Equal(t, http.StatusOK, e.get("/api/streams?prefix=order-&limit=2&after="+page1.Next, &page2))
	require.Len(t, page2.Streams, 1)
	assert.Empty(t, page2.Next)
	var names []string
	counts := map[string]uint64{}
	for _, s := range append(page1.Streams, page2.Streams...) {
		names = append(names, s.Name)
		counts[s.OrderID] = s.Count
	}
	assert.IsIncreasing(t, names)
	assert.Equal(t, map[string]uint64{fulfilled: 3, placing: 1, closed: 2}, counts)

	// One stream's events: data and metadata as JSON objects.
	var evs apiEvents
	require.Equal(t, http.StatusOK, e.get("/api/streams/"+domain.StreamName(fulfilled), &evs))
	require.Len(t, evs.Events, 3)
	assert.Equal(t, fulfilled, evs.OrderID)
	assert.Nil(t, evs.Next)
	for i, ev := range evs.Events {
		assert.Equal(t, uint64(i), ev.Revision)
		assert.NotEmpty(t, ev.Position)
		assert.False(t, ev.Created.IsZero())
		var data map[string]any
		require.NoError(t, json.Unmarshal(ev.Data, &data), "data is a JSON object")
		assert.Equal(t, fulfilled, data["orderId"])
		var meta map[string]any
		require.NoError(t, json.Unmarshal(ev.Metadata, &meta), "metadata is a JSON object")
		assert.Equal(t, fulfilled, meta["$correlationId"])
	}
	assert.Equal(t, string(domain.FactOrderCompleted), evs.Events[2].Type)

	var back apiEvents
	require.Equal(t, http.StatusOK, e.get("/api/streams/"+domain.StreamName(fulfilled)+"?dir=backwards&limit=2", &back))
	require.Len(t, back.Events, 2)
	assert.Equal(t, []uint64{2, 1}, []uint64{back.Events[0].Revision, back.Events[1].Revision})
	require.NotNil(t, back.Next)
	assert.Equal(t, uint64(0), *back.Next)
	var mid apiEvents
	require.Equal(t, http.StatusOK, e.get("/api/streams/"+domain.StreamName(fulfilled)+"?from=1&limit=1", &mid))
	require.Len(t, mid.Events, 1)
	assert.Equal(t, uint64(1), mid.Events[0].Revision)
	require.NotNil(t, mid.Next)
	assert.Equal(t, uint64(2), *mid.Next)

	unknown := domain.NameUUID("browser-order", "never")
	assert.Equal(t, http.StatusNotFound, e.get("/api/streams/"+domain.StreamName(unknown), nil))
	assert.Equal(t, http.StatusNotFound, e.get("/api/orders/"+unknown, nil))
	assert.Equal(t, http.StatusNotFound, e.get("/api/orders/"+unknown+"/audit", nil))

	// The read model.
	var sum projections.Summary
	require.Equal(t, http.StatusOK, e.get("/api/orders/"+strings.ToUpper(fulfilled), &sum))
	assert.Equal(t, domain.StatusFulfilled, sum.Status)
	assert.Equal(t, domain.Totals{Captured: 4999, Net: 4999}, sum.Money)
	assert.Equal(t, 3, sum.Facts)
	var list struct {
		Orders []projections.Summary `json:"orders"`
		Next   string                `json:"next"`
	}
	// Paged by the index (a cursor) and, as before, by id (after=).
	for _, param := range []string{"cursor", "after"} {
		q := "/api/orders?limit=2"
		if param == "after" {
			q += "&after=00000000-0000-0000-0000-000000000000"
		}
		require.Equal(t, http.StatusOK, e.get(q, &list), param)
		require.Len(t, list.Orders, 2)
		require.NotEmpty(t, list.Next)
		seen, next := []string{list.Orders[0].OrderID, list.Orders[1].OrderID}, list.Next
		list.Next = ""
		require.Equal(t, http.StatusOK, e.get("/api/orders?limit=2&"+param+"="+next, &list), param)
		require.Len(t, list.Orders, 1)
		assert.Empty(t, list.Next)
		assert.ElementsMatch(t, []string{fulfilled, placing, closed}, append(seen, list.Orders[0].OrderID), param)
		assert.IsIncreasing(t, seen, "by id")
	}
	// Filtered, sorted and searched through the read model's index.
	list.Orders = nil
	require.Equal(t, http.StatusOK, e.get("/api/orders?status=closed", &list))
	require.Len(t, list.Orders, 1)
	assert.Equal(t, closed, list.Orders[0].OrderID)
	require.Equal(t, http.StatusOK, e.get("/api/orders?sort=amount", &list))
	assert.Equal(t, []string{fulfilled, placing, closed}, orderIDs(list.Orders), "largest total first")
	require.Equal(t, http.StatusOK, e.get("/api/orders?sort=activity", &list))
	assert.Equal(t, []string{closed, fulfilled, placing}, orderIDs(list.Orders), "last fact first")
	require.Equal(t, http.StatusOK, e.get("/api/orders?prefix="+strings.ToUpper(placing[:9]), &list))
	assert.Equal(t, []string{placing}, orderIDs(list.Orders))
	assert.Equal(t, http.StatusBadRequest, e.get("/api/orders?status=PAID", nil))
	assert.Equal(t, http.StatusBadRequest, e.get("/api/orders?sort=activity&cursor=bm90LW1pbmU", nil), "a cursor the index did not give")

	// The overview and the days, from the same index.
	var ov struct {
		Today    string `json:"today"`
		Orders   int    `json:"orders"`
		ByStatus []struct {
			Status domain.Status `json:"status"`
			Count  int           `json:"count"`
		} `json:"byStatus"`
		Money struct {
			Today       domain.Totals `json:"today"`
			TodayOrders int           `json:"todayOrders"`
			All         domain.Totals `json:"all"`
		} `json:"money"`
		Recent []projections.Summary `json:"recent"`
		Lag    struct {
			Available   bool `json:"available"`
			Projections []struct {
				Name   string `json:"name"`
				Behind int64  `json:"behind"`
			} `json:"projections"`
		} `json:"lag"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/overview", &ov))
	assert.Equal(t, "2025-11-20", ov.Today)
	assert.Equal(t, 3, ov.Orders)
	byStatus := map[domain.Status]int{}
	for _, sc := range ov.ByStatus {
		byStatus[sc.Status] = sc.Count
	}
	assert.Equal(t, 1, byStatus[domain.StatusFulfilled])
	assert.Equal(t, 1, byStatus[domain.StatusInit])
	assert.Equal(t, 1, byStatus[domain.StatusClosed])
	assert.Equal(t, domain.Totals{}, ov.Money.Today, "seed's facts are dated the day before")
	assert.Equal(t, domain.Totals{Captured: 4999, Net: 4999}, ov.Money.All)
	assert.Equal(t, []string{closed, fulfilled, placing}, orderIDs(ov.Recent))
	require.True(t, ov.Lag.Available)
	require.Len(t, ov.Lag.Projections, 1)
	assert.Equal(t, projections.ReadModelName, ov.Lag.Projections[0].Name)
	var days struct {
		Days  []projections.DayTotals `json:"days"`
		Total struct {
			Orders int           `json:"orders"`
			Money  domain.Totals `json:"money"`
		} `json:"total"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/days?from=2025-11-01&to=2025-11-30", &days))
	require.Len(t, days.Days, 1)
	assert.Equal(t, "2025-11-19", days.Days[0].Day)
	assert.Equal(t, 3, days.Total.Orders)
	assert.Equal(t, domain.Totals{Captured: 4999, Net: 4999}, days.Total.Money)
	assert.Equal(t, http.StatusBadRequest, e.get("/api/days?from=2025-11-30&to=2025-11-01", nil))

	// The audit and its chart.
	var rep projections.AuditReport
	require.Equal(t, http.StatusOK, e.get("/api/orders/"+fulfilled+"/audit", &rep))
	require.Len(t, rep.Entries, 3)
	var steps []string
	for _, en := range rep.Entries {
		steps = append(steps, fmt.Sprintf("%s>%s", en.StatusBefore, en.StatusAfter))
	}
	assert.Equal(t, []string{">INIT", "INIT>CHARGED", "CHARGED>FULFILLED"}, steps)
	assert.NotEmpty(t, rep.Entries[0].Outbound, "the checkout caused messages")
	resp, err := http.Get(e.url + "/api/orders/" + fulfilled + "/timeline.svg")
	require.NoError(t, err)
	svg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "image/svg+xml", resp.Header.Get("Content-Type"))
	assert.Contains(t, string(svg), `data-status="FULFILLED"`)

	// Readiness with the store check, and a dry-run replay over HTTP.
	assert.Equal(t, http.StatusOK, e.get("/readyz", nil))
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/admin/replay?dry_run=1", nil)
	req.Header.Set("Authorization", "Bearer "+browserToken)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var res projections.ReplayResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(3), res.Orders)
	assert.Equal(t, int64(6), res.Facts)
	assert.Empty(t, res.Changes, "the read model already says what a replay derives")

	// The live tail: only what comes after it started, filtered by prefix,
	// and resumable from Last-Event-ID.
	tail := openTail(t, e.url+"/api/tail?prefix="+domain.StreamName(placing), "")
	// Past the server's ReadTimeout: the tail must stay open.
	time.Sleep(time.Second)
	// Another stream: filtered out.
	e.fact(domain.FactBasketDeletedComplete, closed, domain.NameUUID("basket", closed), 300)
	id := e.fact(domain.FactBasketDeletedComplete, placing, domain.NameUUID("basket", placing), 1250, named)
	got := tail.next(t)
	assert.Equal(t, id, got.ID)
	assert.Equal(t, domain.StreamName(placing), got.Stream)
	assert.Equal(t, uint64(1), got.Revision)
	var data map[string]any
	require.NoError(t, json.Unmarshal(got.Data, &data))
	assert.Equal(t, placing, data["orderId"])

	var from domain.Position
	_, err = fmt.Sscanf(evs.Events[0].Position, "%d/%d", &from.Commit, &from.Prepare)
	require.NoError(t, err)
	after, err := e.store.ReadAll(context.Background(), &from, 1)
	require.NoError(t, err)
	require.Len(t, after, 1)
	all := openTail(t, e.url+"/api/tail?prefix=order-", evs.Events[0].Position)
	assert.Equal(t, after[0].ID, all.next(t).ID, "resumes right after Last-Event-ID")

	// Shutdown ends open tails instead of waiting for them.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	require.NoError(t, e.srv.Shutdown(sctx))
	require.NoError(t, sctx.Err(), "shutdown waited for the tails")
	tail.waitClosed(t)
}

func orderIDs(rows []projections.Summary) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.OrderID
	}
	return out
}

type tailClient struct {
	resp  *http.Response
	lines chan string
}

func openTail(t *testing.T, url, lastEventID string) *tailClient {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	tc := &tailClient{resp: resp, lines: make(chan string, 64)}
	go func() {
		defer close(tc.lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			tc.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	// The server subscribes before it answers, so what is appended from
	// here on is delivered.
	return tc
}

func (tc *tailClient) next(t *testing.T) apiEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-tc.lines:
			require.True(t, ok, "tail ended early")
			if payload, found := strings.CutPrefix(line, "data: "); found {
				var ev apiEvent
				require.NoError(t, json.Unmarshal([]byte(payload), &ev), payload)
				return ev
			}
		case <-timeout:
			t.Fatal("no event on the tail within 10s")
		}
	}
}

func (tc *tailClient) waitClosed(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-tc.lines:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the tail stayed open after shutdown")
		}
	}
}

// chromiumPath finds Debian's chromium; the browser test does not skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium not found: run make browser (installs Debian's chromium)")
	return ""
}

// artifactPath is where the screenshot goes: $LEDGER_ARTIFACTS_DIR, else
// <repo>/artifacts/browser.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("LEDGER_ARTIFACTS_DIR")
	if dir == "" {
		wd, err := os.Getwd()
		require.NoError(t, err)
		root := wd
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			require.NotEqual(t, root, parent, "no go.mod above %s", wd)
			root = parent
		}
		dir = filepath.Join(root, "artifacts", "browser")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return filepath.Join(dir, name)
}

// axePath is axe-core as `make browser` installs it (npm ci in
// cmd/ledger/testdata/axe).
const axePath = "testdata/axe/node_modules/axe-core/axe.min.js"

// axeFinding is one violation as the test prints it.
type axeFinding struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// browser drives one headless chromium through the pages.
type browser struct {
	t        *testing.T
	ctx      context.Context
	axe      string
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromium := chromiumPath(t)
	axe, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatalf("axe-core is missing (%v): run `make browser`, which installs it with npm ci in cmd/ledger/testdata/axe", err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	// Start the browser without a deadline; the steps get one below.
	require.NoError(t, chromedp.Do(bctx), "start chromium")
	b := &browser{t: t, axe: string(axe)}
	msgs := chromedp.Console(bctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	t.Cleanup(cancel)
	b.ctx = ctx
	return b
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, steps...), what)
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	require.NoError(b.t, err, expr)
	return v
}

// shot writes a screenshot of the whole page under artifacts/browser/.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.Greater(b.t, len(png), 10_000)
	path := artifactPath(b.t, name)
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
}

// checkA11y runs axe-core on the page as it is and fails on any serious
// or critical violation, printing every violation found.
func (b *browser) checkA11y(page string) {
	b.t.Helper()
	if b.eval(`typeof window.axe`) != "object" {
		_, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](b.axe))
		require.NoError(b.t, err, "inject axe-core")
	}
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`axe.run(document, { resultTypes: ['violations'] }).then(r => JSON.stringify(r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help,
		nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\s+/g, ' '))}))))`, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, "axe.run on %s", page)
	var found []axeFinding
	require.NoError(b.t, json.Unmarshal([]byte(res), &found))
	var bad []string
	for _, f := range found {
		line := fmt.Sprintf("%s [%s] %s\n    %s", f.ID, f.Impact, f.Help, strings.Join(f.Nodes, "\n    "))
		b.t.Logf("axe on %s: %s", page, line)
		if f.Impact == "serious" || f.Impact == "critical" {
			bad = append(bad, line)
		}
	}
	assert.Empty(b.t, bad, "axe-core: serious or critical accessibility violations on the %s page", page)
}

// expect404 runs step, whose page asks the server for n things it
// answers 404 (an unknown order's audit and summary), and drops the n
// "Failed to load resource" lines the browser logs for them; any other
// line stays a problem.
func (b *browser) expect404(n int, step func()) {
	b.t.Helper()
	b.mu.Lock()
	before := len(b.problems)
	b.mu.Unlock()
	step()
	notFound := func() (kept []string, got int) {
		b.mu.Lock()
		defer b.mu.Unlock()
		kept = append(kept, b.problems[:before]...)
		for _, p := range b.problems[before:] {
			if strings.Contains(p, "status of 404") {
				got++
			} else {
				kept = append(kept, p)
			}
		}
		return kept, got
	}
	require.Eventually(b.t, func() bool { _, got := notFound(); return got >= n }, 5*time.Second, 20*time.Millisecond,
		"the browser logs the 404s the page asked for")
	kept, got := notFound()
	assert.Equal(b.t, n, got, "404s")
	b.mu.Lock()
	b.problems = kept
	b.mu.Unlock()
}

func (b *browser) consoleProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// uniquePrefix is the shortest start of id (at least 4 characters) that
// no other of ids shares.
func uniquePrefix(id string, ids []string) string {
	for n := 4; n < len(id); n++ {
		shared := false
		for _, o := range ids {
			if o != id && strings.HasPrefix(o, id[:n]) {
				shared = true
			}
		}
		if !shared && id[n-1] != '-' {
			return id[:n]
		}
	}
	return id
}

func TestBrowserPages(t *testing.T) {
	e := startWebEnv(t)
	fulfilled, placing, closed := e.seed()
	day := e.seedToday()
	b := newBrowser(t)
	run, eval := b.run, b.eval
	count := func(sel string) string {
		return eval(`String(document.querySelectorAll(` + jsString(sel) + `).length)`)
	}
	text := func(sel string) string {
		return eval(`document.querySelector(` + jsString(sel) + `).textContent.trim()`)
	}

	// ---- The overview: what matters first. ----
	run("open the overview",
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#overview[data-orders="9"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tail-status[data-state="live"]`)))
	tile := func(status string) string {
		return text(`#status-counts .tile[data-status="` + status + `"] .tile-count`)
	}
	assert.Equal(t, "9", tile("all"))
	assert.Equal(t, "5", tile("CHARGED"))
	assert.Equal(t, "1", tile("INIT"))
	assert.Equal(t, "1", tile("FULFILLED"))
	assert.Equal(t, "1", tile("CLOSED"))
	assert.Equal(t, "1", tile("CHARGEBACK_REVERSED"))
	assert.Equal(t, "0", tile("REFUNDED"))
	assert.Equal(t, strings.Join(statusNames(), ","),
		eval(`[...document.querySelectorAll('#status-counts .tile .status')].map(s => s.textContent).join()`), "every status, named in full")
	assert.Equal(t, "/ui/orders?status=CHARGED", eval(`document.querySelector('#status-counts .tile[data-status="CHARGED"]').getAttribute('href')`))
	cell := func(period, field string) string {
		return text(`#money-overview tr[data-period="` + period + `"] td[data-field="` + field + `"]`)
	}
	// Today: the reversed order (6.33 captured, charged back, reversed)
	// and the five charged ones (150.00); all time adds yesterday's 49.99.
	assert.Equal(t, []string{"156.33", "0.00", "6.33", "6.33", "156.33", "6"},
		[]string{cell("today", "captured"), cell("today", "refunded"), cell("today", "chargedBack"), cell("today", "reversed"), cell("today", "net"), cell("today", "orders")})
	assert.Equal(t, []string{"206.32", "0.00", "6.33", "6.33", "206.32", "9"},
		[]string{cell("all", "captured"), cell("all", "refunded"), cell("all", "chargedBack"), cell("all", "reversed"), cell("all", "net"), cell("all", "orders")})
	assert.Equal(t, "9", count(`#recent-orders tbody tr`))
	assert.Equal(t, day.charged[4], eval(`document.querySelector('#recent-orders tbody tr').dataset.order`), "the most recently active first")
	assert.Equal(t, "up to date", text(`#lag li[data-projection="readmodel"] span`))
	assert.Equal(t, "3", eval(`document.querySelector('#dead-letter-counts li[data-queue="error"]').dataset.count`))
	assert.Equal(t, "/ui/deadletters?queue=error", eval(`document.querySelector('#dead-letter-counts li[data-queue="error"] a').getAttribute('href')`))
	assert.Equal(t, "0", eval(`document.querySelector('#parked-count').dataset.orders`))
	assert.Equal(t, "home", eval(`document.body.dataset.page`))
	assert.Equal(t, "page", eval(`document.querySelector('#nav-home').getAttribute('aria-current')`))
	b.checkA11y("overview")

	// ---- Keyboard: the skip link first, then the status tiles. ----
	run("tab to the skip link", chromedp.KeyEvent(kb.Tab))
	assert.Equal(t, "skip-link", eval(`document.activeElement.className`))
	assert.Equal(t, "true", eval(`String(document.activeElement.getBoundingClientRect().top >= 0)`), "the skip link shows when focused")
	assert.NotEqual(t, "none", eval(`getComputedStyle(document.activeElement).outlineStyle`), "focus is visible")
	run("skip to the content", chromedp.KeyEvent(kb.Enter))
	assert.Equal(t, "view", eval(`document.activeElement.id`))
	run("tab to the CHARGED tile", chromedp.KeyEvent(kb.Tab+kb.Tab+kb.Tab))
	assert.Equal(t, "CHARGED", eval(`document.activeElement.dataset.status`))
	run("open it with Enter", chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#orders-list tbody tr`)))
	assert.Equal(t, "?status=CHARGED", eval(`location.search`))
	assert.Equal(t, "5", count(`#orders-list tbody tr[data-status="CHARGED"]`))
	assert.Equal(t, "5", count(`#orders-list tbody tr`))

	// ---- The orders list: sort, pages that keep the filter. ----
	run("sort by amount, two a page (by keyboard)",
		chromedp.Navigate(e.url+"/ui/orders?status=CHARGED&limit=2"),
		chromedp.WaitVisible(chromedp.CSS(`#orders-list tbody tr`)),
		chromedp.SetValue(chromedp.CSS(`#filter-sort`), "amount"),
		chromedp.Focus(chromedp.CSS(`#filter-apply`)),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#view[data-ready="1"] #orders-list`)))
	pageRows := func() string {
		return eval(`[...document.querySelectorAll('#orders-list tbody tr')].map(r => r.dataset.status + ' ' + r.cells[2].textContent).join()`)
	}
	waitPage := func(n string) {
		t.Helper()
		run("page "+n, chromedp.WaitVisible(chromedp.CSS(`#view[data-ready="1"][data-page="`+n+`"] #orders-list`)))
	}
	waitPage("1")
	assert.Equal(t, "CHARGED 50.00,CHARGED 40.00", pageRows())
	assert.Contains(t, eval(`location.search`), "status=CHARGED")
	assert.Contains(t, eval(`location.search`), "sort=amount")
	assert.Equal(t, "span", eval(`document.querySelector('#orders-prev').localName`), "no previous page on the first")
	run("next page", chromedp.Click(chromedp.CSS(`a#orders-next`)))
	waitPage("2")
	assert.Equal(t, "CHARGED 30.00,CHARGED 20.00", pageRows())
	assert.Equal(t, "CHARGED", eval(`document.querySelector('#filter-status').value`), "the filter stays")
	assert.Equal(t, "amount", eval(`document.querySelector('#filter-sort').value`), "and the sort")
	assert.Contains(t, eval(`location.search`), "cursor=")
	run("last page", chromedp.Click(chromedp.CSS(`a#orders-next`)))
	waitPage("3")
	assert.Equal(t, "CHARGED 10.00", pageRows())
	assert.Equal(t, "span", eval(`document.querySelector('#orders-next').localName`), "no next page on the last")
	run("previous page", chromedp.Click(chromedp.CSS(`a#orders-prev`)))
	waitPage("2")
	assert.Equal(t, "CHARGED 30.00,CHARGED 20.00", pageRows())
	// history.back() rather than NavigateBack: a page restored from the
	// back-forward cache fires no load event to wait for.
	eval(`history.back(), 'ok'`)
	require.Eventually(t, func() bool {
		// The page may be between documents: an error is "not yet".
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.querySelector('#view[data-ready="1"][data-page="3"]') !== null`))
		return err == nil && ok
	}, 20*time.Second, 50*time.Millisecond, "back to page 3")
	assert.Equal(t, "CHARGED 10.00", pageRows(), "the back button goes where the page was")
	run("the whole filtered list", chromedp.Navigate(e.url+"/ui/orders?status=CHARGED&sort=amount"))
	waitPage("1")
	assert.Equal(t, "CHARGED 50.00,CHARGED 40.00,CHARGED 30.00,CHARGED 20.00,CHARGED 10.00", pageRows())
	b.shot("orders-filtered.png")
	b.checkA11y("orders list")

	// Search by the start of an id: the orders list with that prefix.
	all := append([]string{fulfilled, placing, closed, day.reversed}, day.charged...)
	prefix := uniquePrefix(day.reversed, all)
	run("search for the start of an id",
		chromedp.SendKeys(chromedp.CSS(`#search-input`), strings.ToUpper(prefix)),
		chromedp.Click(chromedp.CSS(`#search-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#orders-list tbody tr[data-order="`+day.reversed+`"]`)))
	assert.Equal(t, "?prefix="+prefix, eval(`location.search`))
	assert.Equal(t, "1", count(`#orders-list tbody tr`))
	assert.Equal(t, prefix, eval(`document.querySelector('#filter-prefix').value`))

	// ---- The order page: a chargeback and its reversal. ----
	var rep projections.AuditReport
	require.Equal(t, http.StatusOK, e.get("/api/orders/"+day.reversed+"/audit", &rep))
	transitions := 0
	for _, en := range rep.Entries {
		transitions += len(en.Transitions)
	}
	require.Equal(t, 5, transitions, "checkout, charge, fulfilment, chargeback, reversal")
	run("open the reversed order",
		chromedp.Click(chromedp.CSS(`#orders-list a.order-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="5"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-summary[data-status="CHARGEBACK_REVERSED"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#money-chart svg`)))
	figure := func(k string) string { return text(`#order-summary [data-money="` + k + `"]`) }
	assert.Equal(t, []string{"6.33", "0.00", "6.33", "6.33", "6.33"},
		[]string{figure("captured"), figure("refunded"), figure("chargedBack"), figure("reversed"), figure("net")})
	assert.Equal(t, "Reversed", text(`#order-summary [data-card="reversed"] .card-label`))
	assert.Equal(t, strconv.Itoa(transitions), count(`#timeline .transition`), "each transition once")
	assert.Equal(t, strconv.Itoa(transitions), eval(`document.querySelector('#timeline').dataset.transitions`))
	assert.Equal(t, "0", count(`#timeline .timeline-entry:has(.transition) .status-change`), "no second before → after line")
	assert.Equal(t, "INIT,CHARGED,FULFILLED,CHARGEBACK,CHARGEBACK_REVERSED",
		eval(`[...document.querySelectorAll('#timeline .transition')].map(t => t.dataset.to).join()`))
	// The badge names the status, and stays inside its card.
	assert.Equal(t, "CHARGEBACK_REVERSED", text(`#order-summary [data-card="status"] .status`))
	assert.Equal(t, "true", eval(`(() => {
		const card = document.querySelector('#order-summary [data-card="status"]');
		const chip = card.querySelector('.status');
		const c = card.getBoundingClientRect(), s = chip.getBoundingClientRect();
		return String(s.left >= c.left && s.right <= c.right && card.scrollWidth <= card.clientWidth);
	})()`), "the CHARGEBACK_REVERSED badge fits its card")
	// The chart: five step lines, each its own dash, apart where they
	// coincide; a legend with the final values; labels inside the picture.
	assert.Equal(t, "5", count(`#money-chart svg path.series`))
	assert.Equal(t, "5", eval(`String(new Set([...document.querySelectorAll('#money-chart svg path.series')].map(p => p.getAttribute('d'))).size)`),
		"no line hides another (net and captured both end at 6.33)")
	assert.Equal(t, "5", eval(`String(new Set([...document.querySelectorAll('#money-chart svg path.series')].map(p => p.getAttribute('stroke-dasharray') || 'solid')).size)`))
	assert.Equal(t, "INIT,CHARGED,FULFILLED,CHARGEBACK,CHARGEBACK_REVERSED",
		eval(`[...document.querySelectorAll('#money-chart svg .status-step text')].map(t => t.textContent).join()`), "every status named in the band")
	legend := eval(`[...document.querySelectorAll('#money-chart svg .legend-item text')].map(t => t.textContent).join()`)
	assert.Equal(t, "net 6.33,captured 6.33,refunded 0.00,charged back 6.33,reversed 6.33", legend)
	assert.Equal(t, "0", eval(`String((() => {
		const box = document.querySelector('#money-chart svg').getBoundingClientRect();
		return [...document.querySelectorAll('#money-chart svg .x-label')].filter(l => {
			const r = l.getBoundingClientRect();
			return r.left < box.left - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1;
		}).length;
	})())`), "no x-axis label is cut off")
	assert.Equal(t, "false", eval(`String(document.querySelector('#money-chart').textContent.includes('…'))`), "no label is cut short")
	b.shot("order-chargeback-reversal.png")
	b.checkA11y("order")

	// ---- The stream page, and links both ways. ----
	run("open the order's stream",
		chromedp.Click(chromedp.CSS(`#to-stream`)),
		chromedp.WaitVisible(chromedp.CSS(`#stream-events .event[data-revision="4"]`)))
	assert.Equal(t, "/ui/streams/"+domain.StreamName(day.reversed), eval(`location.pathname`))
	assert.Equal(t, "/ui/orders/"+day.reversed, eval(`document.querySelector('#to-order').getAttribute('href')`))
	assert.Equal(t, "0", eval(`String([...document.querySelectorAll('#stream-events pre.json')].filter(p => p.scrollWidth > p.clientWidth + 1).length)`),
		"data and metadata wrap instead of being cut off")
	assert.Contains(t, text(`#stream-events .event .event-metadata`), `"messageId"`)
	assert.Equal(t, "true", eval(`String(document.querySelector('#events-more').offsetParent === null)`), "no more events: no button")
	b.shot("stream-page.png")
	b.checkA11y("stream")
	run("back to the order", chromedp.Click(chromedp.CSS(`#to-order`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="5"]`)))

	// ---- An unknown order: one message. ----
	unknown := domain.NameUUID("browser-order", "never")
	b.expect404(2, func() {
		run("open an unknown order",
			chromedp.Navigate(e.url+"/ui/orders/"+unknown),
			chromedp.WaitVisible(chromedp.CSS(`#order-missing`)))
	})
	assert.Equal(t, "No order "+unknown, text(`#view h1`))
	assert.Equal(t, "1", count(`#view h1`))
	assert.Equal(t, "0", count(`#view .error, #view [role="alert"], #timeline, #order-summary, #money-chart`), "one message, not a box per failed request")
	assert.NotContains(t, text(`#view`), "404")
	b.shot("unknown-order.png")
	b.checkA11y("unknown order")

	// ---- A partial id: the orders it starts. ----
	run("open a partial id",
		chromedp.Navigate(e.url+"/ui/orders/"+prefix),
		chromedp.WaitVisible(chromedp.CSS(`#partial-id #partial-matches tbody tr`)))
	assert.Equal(t, "Orders whose id starts with "+prefix, text(`#view h1`))
	assert.Equal(t, day.reversed, eval(`[...document.querySelectorAll('#partial-matches tbody tr')].map(r => r.dataset.order).join()`))
	assert.NotContains(t, text(`#view`), "404")
	short := day.charged[0][:1]
	var starting []string
	for _, id := range all {
		if strings.HasPrefix(id, short) {
			starting = append(starting, id)
		}
	}
	run("open a one-character id",
		chromedp.Navigate(e.url+"/ui/orders/"+short),
		chromedp.WaitVisible(chromedp.CSS(`#partial-id #partial-matches tbody tr`)))
	assert.Equal(t, strconv.Itoa(len(starting)), count(`#partial-matches tbody tr`))
	b.shot("partial-id.png")
	b.checkA11y("partial id")
	run("open a bad id", chromedp.Navigate(e.url+"/ui/orders/not-an-id"), chromedp.WaitVisible(chromedp.CSS(`#bad-order-id`)))

	// ---- The streams list, on its own page. ----
	run("open the streams", chromedp.Click(chromedp.CSS(`#nav-streams`)),
		chromedp.WaitVisible(chromedp.CSS(`#streams-list tbody tr`)))
	assert.Equal(t, "9", count(`#streams-list tbody tr`))
	assert.Contains(t, text(`#streams-list`), domain.StreamName(fulfilled))

	// A bad search stays on the page and says why.
	run("search for nonsense",
		chromedp.SendKeys(chromedp.CSS(`#search-input`), "<b>not an id</b>"),
		chromedp.Click(chromedp.CSS(`#search-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#search-error`)))
	assert.Equal(t, "0", count(`b`), "input is never rendered as HTML")

	// ---- Search by order id: timeline, chart, events, live updates. ----
	eval(`document.querySelector('#search-input').value = ''`)
	run("search for the order",
		chromedp.SendKeys(chromedp.CSS(`#search-input`), strings.ToUpper(fulfilled)),
		chromedp.Click(chromedp.CSS(`#search-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="3"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#money-chart svg`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-summary[data-status="FULFILLED"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tail-status[data-state="live"]`)))
	assert.Equal(t, "/ui/orders/"+fulfilled, eval(`location.pathname`))
	timeline := text(`#timeline`)
	for _, want := range []string{"INIT", "CHARGED", "FULFILLED", "UserCheckedOut", "BasketDeletedComplete", "applied", "Messages sent"} {
		assert.Contains(t, timeline, want)
	}
	assert.Equal(t, "INIT,CHARGED,FULFILLED",
		eval(`[...document.querySelectorAll('#timeline .timeline-entry')].map(e => e.dataset.statusAfter).join()`))
	assert.NotEqual(t, "0", count(`#timeline .outbound-message`))
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-`, text(`#timeline .message-id`))
	assert.Equal(t, "INIT,CHARGED,FULFILLED",
		eval(`[...document.querySelectorAll('#money-chart svg .status-step')].map(g => g.dataset.status).join()`))
	assert.Equal(t, "3", count(`#order-events .event`))
	assert.Contains(t, eval(`document.querySelector('#order-events .event-metadata').textContent`), `"$correlationId"`)

	// A new fact shows in the live tail, and the page redraws with it.
	refund := e.fact(domain.FactOrderRefundRequested, fulfilled, "", 0, func(f *domain.Fact) { f.Reason = "customer changed their mind" })
	run("see the new fact",
		chromedp.WaitVisible(chromedp.CSS(`#tail li[data-event-id="`+refund+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="4"]`)))
	assert.Contains(t, text(`#tail`), "OrderRefundRequested")
	last := eval(`document.querySelector('#timeline .timeline-entry:last-child').dataset.statusAfter`)
	assert.Contains(t, []string{string(domain.StatusRefunding), string(domain.StatusRefunded)}, last)
	run("see the summary catch up",
		chromedp.WaitVisible(chromedp.CSS(`#order-summary[data-status="`+last+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#money-chart svg .status-step[data-status="`+last+`"]`)))
	other := e.fact(domain.FactBasketDeletedComplete, placing, domain.NameUUID("basket", placing), 1250, named)
	run("see the other order's fact",
		chromedp.WaitVisible(chromedp.CSS(`#tail li[data-event-id="`+other+`"]`)))
	assert.Equal(t, "2", count(`#tail li.tail-event`))
	assert.Equal(t, "4", eval(`document.querySelector('#timeline').dataset.count`))
	b.shot("order-page.png")

	// ---- Parked: a banner on the order, a row on the parked page. ----
	require.NoError(t, e.rm.Park(context.Background(), []projections.Parked{{OrderID: placing, Stream: domain.StreamName(placing),
		Kind: domain.KindAccelByte, FromRevision: 0, Message: "orderCreated", MessageID: domain.NameUUID("held", placing),
		Reason: projections.ReasonUnbuildable, Detail: "total 3000000000 minor units outside the int32 AccelByte price range <b>x</b>",
		ParkedAt: e.clock}}))
	run("open the parked order",
		chromedp.Navigate(e.url+"/ui/orders/"+placing),
		chromedp.WaitVisible(chromedp.CSS(`#parked-banner[data-lanes="1"]`)))
	banner := text(`#parked-banner`)
	for _, want := range []string{"Parked", "AccelByte events", projections.ReasonUnbuildable, "int32", "ledger parked retry " + placing, "#0"} {
		assert.Contains(t, banner, want)
	}
	assert.Contains(t, text(`.parked-detail`), "<b>x</b>")
	assert.Equal(t, "0", count(`.parked-detail b`), "the detail is text, not HTML")
	b.shot("parked-order-page.png")
	run("open an order without a park",
		chromedp.Navigate(e.url+"/ui/orders/"+fulfilled),
		chromedp.WaitVisible(chromedp.CSS(`#view[data-ready="1"]`)))
	assert.Equal(t, "true", eval(`String(document.querySelector('#parked-banner').hidden)`))
	run("open the parked page",
		chromedp.Click(chromedp.CSS(`#nav-parked`)),
		chromedp.WaitVisible(chromedp.CSS(`#parked-list tbody tr[data-order="`+placing+`"]`)))
	assert.Contains(t, text(`#parked-status`), "1 lane(s) of 1 order(s)")
	b.shot("parked.png")
	b.checkA11y("parked")

	// ---- Dead letters: counts by reason, then the messages as text. ----
	run("open the dead letters",
		chromedp.Click(chromedp.CSS(`#nav-deadletters`)),
		chromedp.WaitVisible(chromedp.CSS(`#dl-list tr.dead-letter`)))
	assert.Equal(t, "invalid:2,delivery limit:1",
		eval(`[...document.querySelectorAll('#dl-counts tbody tr')].map(r => r.dataset.reason + ':' + r.cells[1].textContent).join()`))
	assert.Equal(t, "3", count(`#dl-list tr.dead-letter`))
	assert.Contains(t, text(`#dl-list`), "<img src=x onerror=alert(1)>")
	assert.Equal(t, "0", count(`#view img, #view script`), "bodies are never HTML")
	assert.Contains(t, text(`#dl-status`), "3 message(s)")
	run("open one message (by keyboard)", chromedp.Focus(chromedp.CSS(`#dl-list tr.dead-letter summary`)), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#dl-list tr.dead-letter .dl-headers`)))
	assert.Contains(t, text(`#dl-list .dl-headers`), "x-ledger-reason")
	b.shot("deadletters.png")
	b.checkA11y("dead letters")
	run("open the skipped queue",
		chromedp.Click(chromedp.CSS(`.tab[data-queue="skipped"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#view[data-queue="skipped"][data-ready="1"]`)))
	assert.Contains(t, text(`#dl-status`), "skipped queue is empty")

	// ---- The overview again: the park and the refund show. ----
	run("back to the overview",
		chromedp.Click(chromedp.CSS(`#nav-home`)),
		chromedp.WaitVisible(chromedp.CSS(`#parked-count[data-orders="1"]`)))
	assert.Equal(t, "/ui/parked", eval(`document.querySelector('#parked-count a').getAttribute('href')`))
	assert.Equal(t, "0", tile("FULFILLED"))
	assert.Equal(t, "1", eval(`document.querySelector('#status-counts .tile[data-status="`+last+`"] .tile-count').textContent`))
	b.shot("home.png")

	// A new order redraws the overview in place; the keyboard focus stays.
	run("focus a tile", chromedp.Focus(chromedp.CSS(`#status-counts .tile[data-status="CHARGED"]`)))
	late := domain.NameUUID("browser-order", "late")
	e.fact(domain.FactUserCheckedOut, late, domain.NameUUID("basket", late), 700, named)
	run("see it counted", chromedp.WaitVisible(chromedp.CSS(`#overview[data-orders="10"]`)))
	assert.Equal(t, "1", tile("INIT"), "the placing order was charged meanwhile; the new one is placing")
	assert.Equal(t, "CHARGED", eval(`document.activeElement.dataset.status || document.activeElement.localName`), "focus kept across the redraw")

	assert.Empty(t, b.consoleProblems(), "the page logged errors (CSP violations show up here too)")
}

func statusNames() []string {
	var out []string
	for _, s := range domain.Statuses() {
		out = append(out, string(s))
	}
	return out
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
