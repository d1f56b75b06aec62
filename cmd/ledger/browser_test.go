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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	clock time.Time
}

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
		Audit: func(ctx context.Context, id string) (projections.AuditReport, error) {
			return projections.Audit(ctx, store, rules, out, id)
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
	}, logger.Named("http"))
	require.NoError(t, err)
	addr, err := srv.Start(ctx)
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
		clock: time.Date(2025, 11, 20, 9, 30, 0, 0, time.UTC)}
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
	require.Equal(t, http.StatusOK, e.get("/api/orders?limit=2", &list))
	require.Len(t, list.Orders, 2)
	require.NotEmpty(t, list.Next)
	seen, next := []string{list.Orders[0].OrderID, list.Orders[1].OrderID}, list.Next
	list.Next = ""
	require.Equal(t, http.StatusOK, e.get("/api/orders?limit=2&after="+next, &list))
	require.Len(t, list.Orders, 1)
	assert.Empty(t, list.Next)
	assert.ElementsMatch(t, []string{fulfilled, placing, closed}, append(seen, list.Orders[0].OrderID))

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

func TestBrowserOrderPage(t *testing.T) {
	chromium := chromiumPath(t)
	e := startWebEnv(t)
	fulfilled, placing, _ := e.seed()

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
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// Start the browser without a deadline; the steps get one below.
	require.NoError(t, chromedp.Do(browser), "start chromium")

	var consoleMu sync.Mutex
	var problems []string
	msgs := chromedp.Console(browser)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				consoleMu.Lock()
				problems = append(problems, m.String())
				consoleMu.Unlock()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...), what)
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		require.NoError(t, err, expr)
		return v
	}

	// The home page lists the streams.
	run("open the home page",
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#streams-list tbody tr`)),
		chromedp.WaitVisible(chromedp.CSS(`#tail-status[data-state="live"]`)))
	assert.Equal(t, "3", eval(`String(document.querySelectorAll('#streams-list tbody tr').length)`))
	assert.Contains(t, eval(`document.querySelector('#streams-list').textContent`), domain.StreamName(fulfilled))

	// A bad search stays on the page and says why.
	run("search for nonsense",
		chromedp.SendKeys(chromedp.CSS(`#search-input`), "<b>not an id</b>"),
		chromedp.Click(chromedp.CSS(`#search-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#search-error`)))
	assert.Equal(t, "0", eval(`String(document.querySelectorAll('b').length)`), "input is never rendered as HTML")

	// Search by order id opens the order page: timeline, chart, events.
	eval(`document.querySelector('#search-input').value = ''`)
	run("search for the order",
		chromedp.SendKeys(chromedp.CSS(`#search-input`), strings.ToUpper(fulfilled)),
		chromedp.Click(chromedp.CSS(`#search-button`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="3"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#money-chart svg`)),
		chromedp.WaitVisible(chromedp.CSS(`#order-summary[data-status="FULFILLED"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tail-status[data-state="live"]`)))
	assert.Equal(t, "/ui/orders/"+fulfilled, eval(`location.pathname`))
	timeline := eval(`document.querySelector('#timeline').textContent`)
	for _, want := range []string{"INIT", "CHARGED", "FULFILLED", "UserCheckedOut", "BasketDeletedComplete", "applied", "Messages sent"} {
		assert.Contains(t, timeline, want)
	}
	assert.Equal(t, "INIT,CHARGED,FULFILLED",
		eval(`[...document.querySelectorAll('#timeline .timeline-entry')].map(e => e.dataset.statusAfter).join()`))
	assert.NotEqual(t, "0", eval(`String(document.querySelectorAll('#timeline .outbound-message').length)`))
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-`, eval(`document.querySelector('#timeline .message-id').textContent`))
	assert.Equal(t, "4", eval(`String(document.querySelectorAll('#money-chart svg path.series').length)`))
	assert.Equal(t, "INIT,CHARGED,FULFILLED",
		eval(`[...document.querySelectorAll('#money-chart svg .status-step')].map(g => g.dataset.status).join()`))
	assert.Equal(t, "3", eval(`String(document.querySelectorAll('#order-events .event').length)`))
	assert.Contains(t, eval(`document.querySelector('#order-events .event-metadata').textContent`), `"$correlationId"`)

	// A new fact shows in the live tail, and the page redraws with it.
	refund := e.fact(domain.FactOrderRefundRequested, fulfilled, "", 0, func(f *domain.Fact) { f.Reason = "customer changed their mind" })
	run("see the new fact",
		chromedp.WaitVisible(chromedp.CSS(`#tail li[data-event-id="`+refund+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="4"]`)))
	assert.Contains(t, eval(`document.querySelector('#tail').textContent`), "OrderRefundRequested")
	last := eval(`document.querySelector('#timeline .timeline-entry:last-child').dataset.statusAfter`)
	assert.Contains(t, []string{string(domain.StatusRefunding), string(domain.StatusRefunded)}, last)
	// The summary cards follow once the read model has folded the fact.
	run("see the summary catch up",
		chromedp.WaitVisible(chromedp.CSS(`#order-summary[data-status="`+last+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#money-chart svg .status-step[data-status="`+last+`"]`)))
	// A fact on another order shows in the tail but leaves this page alone.
	other := e.fact(domain.FactBasketDeletedComplete, placing, domain.NameUUID("basket", placing), 1250, named)
	run("see the other order's fact",
		chromedp.WaitVisible(chromedp.CSS(`#tail li[data-event-id="`+other+`"]`)))
	assert.Equal(t, "2", eval(`String(document.querySelectorAll('#tail li.tail-event').length)`))
	assert.Equal(t, "4", eval(`document.querySelector('#timeline').dataset.count`))

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.Greater(t, len(png), 10_000)
		path := artifactPath(t, name)
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot: %s", path)
	}
	shot("order-page.png")

	// A parked lane shows as a banner on its order's page, and on the
	// parked page; an order without one has no banner.
	require.NoError(t, e.rm.Park(context.Background(), []projections.Parked{{OrderID: placing, Stream: domain.StreamName(placing),
		Kind: domain.KindAccelByte, FromRevision: 0, Message: "orderCreated", MessageID: domain.NameUUID("held", placing),
		Reason: projections.ReasonUnbuildable, Detail: "total 3000000000 minor units outside the int32 AccelByte price range <b>x</b>",
		ParkedAt: e.clock}}))
	run("open the parked order",
		chromedp.Navigate(e.url+"/ui/orders/"+placing),
		chromedp.WaitVisible(chromedp.CSS(`#parked-banner[data-lanes="1"]`)))
	banner := eval(`document.querySelector('#parked-banner').textContent`)
	for _, want := range []string{"Parked", "AccelByte events", projections.ReasonUnbuildable, "int32", "ledger parked retry " + placing, "#0"} {
		assert.Contains(t, banner, want)
	}
	assert.Contains(t, eval(`document.querySelector('.parked-detail').textContent`), "<b>x</b>")
	assert.Equal(t, "0", eval(`String(document.querySelectorAll('.parked-detail b').length)`), "the detail is text, not HTML")
	shot("parked-order-page.png")
	run("open an order without a park",
		chromedp.Navigate(e.url+"/ui/orders/"+fulfilled),
		chromedp.WaitVisible(chromedp.CSS(`#view[data-ready="1"]`)))
	assert.Equal(t, "true", eval(`String(document.querySelector('#parked-banner').hidden)`))
	run("open the parked page",
		chromedp.Click(chromedp.CSS(`#nav-parked`)),
		chromedp.WaitVisible(chromedp.CSS(`#parked-list tbody tr[data-order="`+placing+`"]`)))
	assert.Contains(t, eval(`document.querySelector('#parked-status').textContent`), "1 lane(s) of 1 order(s)")

	// The dead-letters page: counts by reason, then the messages, bodies
	// as text.
	run("open the dead letters",
		chromedp.Click(chromedp.CSS(`#nav-deadletters`)),
		chromedp.WaitVisible(chromedp.CSS(`#dl-list tr.dead-letter`)))
	assert.Equal(t, "invalid:2,delivery limit:1",
		eval(`[...document.querySelectorAll('#dl-counts tbody tr')].map(r => r.dataset.reason + ':' + r.cells[1].textContent).join()`))
	assert.Equal(t, "3", eval(`String(document.querySelectorAll('#dl-list tr.dead-letter').length)`))
	assert.Contains(t, eval(`document.querySelector('#dl-list').textContent`), "<img src=x onerror=alert(1)>")
	assert.Equal(t, "0", eval(`String(document.querySelectorAll('#view img, #view script').length)`), "bodies are never HTML")
	assert.Contains(t, eval(`document.querySelector('#dl-status').textContent`), "3 message(s)")
	run("open one message", chromedp.Click(chromedp.CSS(`#dl-list tr.dead-letter summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#dl-list tr.dead-letter .dl-headers`)))
	assert.Contains(t, eval(`document.querySelector('#dl-list .dl-headers').textContent`), "x-ledger-reason")
	shot("deadletters-page.png")
	run("open the skipped queue",
		chromedp.Click(chromedp.CSS(`.tab[data-queue="skipped"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#view[data-queue="skipped"][data-ready="1"]`)))
	assert.Contains(t, eval(`document.querySelector('#dl-status').textContent`), "skipped queue is empty")

	// The stream page shows each event's data and metadata as JSON.
	run("back to the order", chromedp.Navigate(e.url+"/ui/orders/"+fulfilled),
		chromedp.WaitVisible(chromedp.CSS(`#timeline[data-count="4"]`)))
	run("open the stream page",
		chromedp.Click(chromedp.CSS(`.links a[href^="/ui/streams/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#stream-events .event[data-revision="3"]`)))
	assert.Equal(t, "/ui/streams/"+domain.StreamName(fulfilled), eval(`location.pathname`))
	data := eval(`document.querySelector('#stream-events .event .event-data').textContent`)
	assert.Contains(t, data, "\n  \"orderId\": \""+fulfilled+"\"", "pretty-printed data")
	assert.Contains(t, eval(`document.querySelector('#stream-events .event .event-metadata').textContent`), `"messageId"`)
	shot("stream-page.png")

	consoleMu.Lock()
	defer consoleMu.Unlock()
	assert.Empty(t, problems, "the page logged errors (CSP violations show up here too)")
}
