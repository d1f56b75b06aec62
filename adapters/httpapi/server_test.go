package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// untouchedLog and untouchedModel stand where the store goes in tests of
// endpoints that must answer before reaching it: any call panics, which
// the server turns into a 500 that the assertions reject. They fake no
// behaviour; store-backed tests live in cmd/ledger (browser_test.go).
type untouchedLog struct{ domain.EventLog }

type untouchedModel struct{ projections.ReadModel }

const testToken = "0123456789abcdef-test-token"

func noAudit(context.Context, string, time.Time) (projections.AuditReport, error) {
	panic("audit must not be reached")
}

func newTestServer(t *testing.T, cfg Config, deps Deps) *Server {
	t.Helper()
	if deps.Log == nil {
		deps.Log = untouchedLog{}
	}
	if deps.Orders == nil {
		deps.Orders = untouchedModel{}
	}
	if deps.Audit == nil {
		deps.Audit = noAudit
	}
	s, err := New(cfg, deps, nil)
	require.NoError(t, err)
	return s
}

// do sends one request to the handler as a loopback client would.
func do(t *testing.T, s *Server, method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	req.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	require.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	var e errorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	require.NotEmpty(t, e.Error)
	return e.Error
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, Config{}.Validate())
	assert.Equal(t, "127.0.0.1:8080", Config{}.withDefaults().Addr)
	assert.Equal(t, int64(1<<20), Config{}.withDefaults().MaxBodyBytes)

	err := Config{Addr: "nonsense", Token: "two words", ReadTimeout: -time.Second, MaxBodyBytes: -1,
		Currency: domain.Currency{Code: "usd", Decimals: 40}}.Validate()
	require.Error(t, err)
	for _, want := range []string{"addr", "token", "read timeout", "max body bytes", "currency"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	_, err := New(Config{}, Deps{}, nil)
	require.Error(t, err)
	for _, want := range []string{"event log", "read model", "audit"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = New(Config{}, Deps{Log: untouchedLog{}, Orders: untouchedModel{}, Audit: noAudit, Ready: []Check{{Name: "x"}}}, nil)
	assert.ErrorContains(t, err, "ready check 0")
}

func TestHealthz(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	s := newTestServer(t, Config{}, Deps{Observe: func(route string, code int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %d", route, code))
	}})
	rec := do(t, s, http.MethodGet, "/healthz", nil, nil)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ok\n", rec.Body.String())
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))

	do(t, s, http.MethodGet, "/nowhere", nil, nil)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"GET /healthz 200", "unmatched 404"}, seen)
}

func TestMetricsEndpoint(t *testing.T) {
	s := newTestServer(t, Config{}, Deps{})
	assert.Equal(t, http.StatusNotFound, do(t, s, http.MethodGet, "/metrics", nil, nil).Code)

	s = newTestServer(t, Config{}, Deps{Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ledger_up 1\n")
	})})
	rec := do(t, s, http.MethodGet, "/metrics", nil, nil)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ledger_up 1\n", rec.Body.String())
}

// TestReadyz runs in a synctest bubble: its clock moves only when every
// goroutine of the test is blocked, so the checks that answer at once
// always do so within ReadyTimeout, however busy the machine is.
func TestReadyz(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ok := Check{Name: "store", Fn: func(context.Context) error { return nil }}
		s := newTestServer(t, Config{}, Deps{Ready: []Check{ok}})
		rec := do(t, s, http.MethodGet, "/readyz", nil, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		var body readyBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, readyBody{Status: "ok", Checks: []string{"store"}}, body)

		release := make(chan struct{})
		defer close(release)
		failing := Check{Name: "broker", Fn: func(context.Context) error { return errors.New("dial amqp://guest:secret@host: refused") }}
		// A check that ignores its context must not hang the probe.
		stuck := Check{Name: "projection", Fn: func(context.Context) error { <-release; return nil }}
		s = newTestServer(t, Config{ReadyTimeout: 50 * time.Millisecond}, Deps{Ready: []Check{ok, failing, stuck}})
		rec = do(t, s, http.MethodGet, "/readyz", nil, nil)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body = readyBody{}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, "unavailable", body.Status)
		assert.Equal(t, []string{"broker", "projection"}, body.Failing)
		assert.NotContains(t, rec.Body.String(), "secret", "check errors stay out of the body")
	})
}

func TestReplayAuthorization(t *testing.T) {
	type call struct{ dryRun, restate bool }
	var calls []call
	replay := func(_ context.Context, dryRun, restate bool) (projections.ReplayResult, error) {
		calls = append(calls, call{dryRun, restate})
		return projections.ReplayResult{Facts: 7, Orders: 2}, nil
	}
	noToken := newTestServer(t, Config{}, Deps{Replay: replay})
	withToken := newTestServer(t, Config{Token: testToken, MaxBodyBytes: 64}, Deps{Replay: replay})
	noReplay := newTestServer(t, Config{Token: testToken}, Deps{})
	auth := map[string]string{"Authorization": "Bearer " + testToken}

	cases := []struct {
		name string
		s    *Server
		url  string
		body string
		hdr  map[string]string
		code int
	}{
		{"no token configured", noToken, "/api/admin/replay", "", auth, http.StatusForbidden},
		{"no header", withToken, "/api/admin/replay", "", nil, http.StatusUnauthorized},
		{"wrong token", withToken, "/api/admin/replay", "", map[string]string{"Authorization": "Bearer " + testToken + "x"}, http.StatusUnauthorized},
		{"token prefix", withToken, "/api/admin/replay", "", map[string]string{"Authorization": "Bearer " + testToken[:10]}, http.StatusUnauthorized},
		{"basic scheme", withToken, "/api/admin/replay", "", map[string]string{"Authorization": "Basic " + testToken}, http.StatusUnauthorized},
		{"empty bearer", withToken, "/api/admin/replay", "", map[string]string{"Authorization": "Bearer "}, http.StatusUnauthorized},
		{"replay missing", noReplay, "/api/admin/replay", "", auth, http.StatusNotImplemented},
		{"bad flag", withToken, "/api/admin/replay?dry_run=maybe", "", auth, http.StatusBadRequest},
		{"unknown body field", withToken, "/api/admin/replay", `{"everything":true}`, auth, http.StatusBadRequest},
		{"body too large", withToken, "/api/admin/replay", `{"dry_run":true}` + strings.Repeat(" ", 100), auth, http.StatusRequestEntityTooLarge},
		{"big body without token", withToken, "/api/admin/replay", strings.Repeat("x", 1000), nil, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(t, c.s, http.MethodPost, c.url, strings.NewReader(c.body), c.hdr)
			assert.Equal(t, c.code, rec.Code, rec.Body.String())
			decodeError(t, rec)
			if c.code == http.StatusUnauthorized {
				assert.Equal(t, `Bearer realm="ledger"`, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	require.Empty(t, calls, "no refused request may reach the replay")

	rec := do(t, withToken, http.MethodPost, "/api/admin/replay", nil, auth)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var res projections.ReplayResult
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
	assert.Equal(t, int64(7), res.Facts)
	assert.NotNil(t, res.Changes)

	rec = do(t, withToken, http.MethodPost, "/api/admin/replay?dry_run=0&restate=1", nil, map[string]string{"Authorization": "bearer " + testToken})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = do(t, withToken, http.MethodPost, "/api/admin/replay?restate=true", strings.NewReader(`{"dry_run":false,"restate":false}`), auth)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = do(t, withToken, http.MethodPost, "/api/admin/replay", strings.NewReader(`{"dry_run":true}`), auth)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, []call{{false, false}, {false, true}, {false, true}, {true, false}}, calls, "defaults, query, body with query winning, body")

	assert.NotEqual(t, http.StatusOK, do(t, withToken, http.MethodGet, "/api/admin/replay", nil, auth).Code)
}

func TestReplayOneAtATime(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := newTestServer(t, Config{Token: testToken}, Deps{Replay: func(ctx context.Context, _, _ bool) (projections.ReplayResult, error) {
		close(started)
		<-release
		return projections.ReplayResult{}, nil
	}})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	first := make(chan int)
	go func() { first <- do(t, s, http.MethodPost, "/api/admin/replay", nil, auth).Code }()
	<-started
	assert.Equal(t, http.StatusConflict, do(t, s, http.MethodPost, "/api/admin/replay", nil, auth).Code)
	close(release)
	assert.Equal(t, http.StatusOK, <-first)
}

func TestInputValidation(t *testing.T) {
	s := newTestServer(t, Config{MaxPageSize: 500}, Deps{})
	long := strings.Repeat("a", maxStreamName+1)
	cases := []struct {
		target string
		hdr    map[string]string
	}{
		{"/api/orders/not-a-uuid", nil},
		{"/api/orders/3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a1", nil},
		{"/api/orders/3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10x/audit", nil},
		{"/api/orders/3f2c6a8e_1d4b_4c1e_9a7f_0b5e2d8c9a10/timeline.svg", nil},
		{"/api/orders/%3Cscript%3Ealert(1)%3C%2Fscript%3E", nil},
		{"/api/orders?after=nope", nil},
		{"/api/orders?limit=0", nil},
		{"/api/streams/bad%20name", nil},
		{"/api/streams/order-%3Cb%3E", nil},
		{"/api/streams/" + long, nil},
		{"/api/streams/order-1?dir=sideways", nil},
		{"/api/streams/order-1?from=-1", nil},
		{"/api/streams/order-1?limit=501", nil},
		{"/api/streams?prefix=%3Cscript%3E", nil},
		{"/api/streams?after=a%2Fb", nil},
		{"/api/streams?limit=abc", nil},
		{"/api/streams?limit=-5", nil},
		{"/api/tail?prefix=order%20", nil},
		{"/api/tail", map[string]string{"Last-Event-ID": "yesterday"}},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			rec := do(t, s, http.MethodGet, c.target, nil, c.hdr)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			msg := decodeError(t, rec)
			assert.NotContains(t, msg, "<")
			assert.NotContains(t, rec.Body.String(), "script")
		})
	}
	rec := do(t, s, http.MethodGet, "/api/nothing-here", nil, nil)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	decodeError(t, rec)
}

func TestParseOrderID(t *testing.T) {
	id, ok := parseOrderID("3F2C6A8E-1D4B-4C1E-9A7F-0B5E2D8C9A10")
	assert.True(t, ok)
	assert.Equal(t, "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10", id)
	for _, bad := range []string{"", "3f2c6a8e1d4b4c1e9a7f0b5e2d8c9a10", "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a1g", "{3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a1}"} {
		_, ok := parseOrderID(bad)
		assert.False(t, ok, bad)
	}
	assert.True(t, validStreamName("$ce-order", false))
	assert.True(t, validStreamName("", true))
	assert.False(t, validStreamName("", false))
	assert.False(t, validStreamName("order/1", false))
}

func TestAuditErrors(t *testing.T) {
	id := "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10"
	var asked []string
	s := newTestServer(t, Config{}, Deps{Audit: func(_ context.Context, orderID string, _ time.Time) (projections.AuditReport, error) {
		asked = append(asked, orderID)
		if orderID == id {
			return projections.AuditReport{}, fmt.Errorf("audit order-%s: %w", orderID, domain.ErrStreamNotFound)
		}
		return projections.AuditReport{}, errors.New("disk on fire at /var/lib/ledger")
	}})
	rec := do(t, s, http.MethodGet, "/api/orders/"+strings.ToUpper(id)+"/audit", nil, nil)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	decodeError(t, rec)
	assert.Equal(t, []string{id}, asked, "ids are lower-cased before use")

	rec = do(t, s, http.MethodGet, "/api/orders/00000000-0000-0000-0000-000000000001/timeline.svg", nil, nil)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Equal(t, "internal error", decodeError(t, rec))
	assert.NotContains(t, rec.Body.String(), "/var/lib")
}

func TestTimelineEndpoint(t *testing.T) {
	rep := sampleReport()
	s := newTestServer(t, Config{Currency: domain.Currency{Code: "EUR", Decimals: 2}}, Deps{Audit: func(_ context.Context, orderID string, _ time.Time) (projections.AuditReport, error) {
		r := rep
		r.OrderID = orderID
		return r, nil
	}})
	rec := do(t, s, http.MethodGet, "/api/orders/"+rep.OrderID+"/timeline.svg", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "image/svg+xml", rec.Header().Get("Content-Type"))
	assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'")
	assert.Contains(t, rec.Body.String(), ">EUR<")
	assert.Contains(t, rec.Body.String(), `class="series series-net"`)

	rec = do(t, s, http.MethodGet, "/api/orders/"+rep.OrderID+"/audit", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var got projections.AuditReport
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Len(t, got.Entries, len(rep.Entries))
	assert.Equal(t, domain.StatusRefunded, got.Entries[len(got.Entries)-1].StatusAfter)
}

func TestHostCheck(t *testing.T) {
	hostReq := func(s *Server, host string) int {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	loop := newTestServer(t, Config{}, Deps{})
	for _, h := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"} {
		assert.Equal(t, http.StatusOK, hostReq(loop, h), h)
	}
	for _, h := range []string{"evil.example", "evil.example:8080", "127.0.0.1.evil.example"} {
		assert.Equal(t, http.StatusMisdirectedRequest, hostReq(loop, h), h)
	}
	named := newTestServer(t, Config{AllowedHosts: []string{"ledger.internal"}}, Deps{})
	assert.Equal(t, http.StatusOK, hostReq(named, "ledger.internal:8080"))
	assert.Equal(t, http.StatusMisdirectedRequest, hostReq(named, "localhost"))
	open := newTestServer(t, Config{Addr: "0.0.0.0:8080"}, Deps{})
	assert.Equal(t, http.StatusOK, hostReq(open, "ledger.internal"))
}

func TestPageAndAssets(t *testing.T) {
	s := newTestServer(t, Config{}, Deps{})
	for _, p := range []string{"/", "/ui/", "/ui/orders/3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10", "/ui/orders/3f2c", "/ui/orders?status=CHARGED&sort=activity",
		"/ui/streams", "/ui/streams/order-x", "/ui/parked", "/ui/deadletters?queue=skipped"} {
		rec := do(t, s, http.MethodGet, p, nil, nil)
		require.Equal(t, http.StatusOK, rec.Code, p)
		assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
		csp := rec.Header().Get("Content-Security-Policy")
		assert.Contains(t, csp, "script-src 'self'")
		assert.NotContains(t, csp, "unsafe-inline")
		assert.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
	}
	page := do(t, s, http.MethodGet, "/", nil, nil).Body.String()
	for _, id := range []string{`id="search-input"`, `id="search-button"`, `id="tail"`, `id="view"`, `src="/ui/static/app.js"`, `href="/ui/static/app.css"`,
		`class="skip-link" href="#view"`, `<nav class="nav" aria-label="Main">`, `<main id="view" tabindex="-1">`, `<html lang="en">`} {
		assert.Contains(t, page, id)
	}
	js := do(t, s, http.MethodGet, "/ui/static/app.js", nil, nil)
	require.Equal(t, http.StatusOK, js.Code)
	assert.Equal(t, "text/javascript; charset=utf-8", js.Header().Get("Content-Type"))
	for _, id := range []string{"timeline", "money-chart", "streams-list", "/api/tail", "/api/overview", "orders-next", "order-missing", "partial-id"} {
		assert.Contains(t, js.Body.String(), id)
	}
	for _, unsafe := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		assert.NotContains(t, js.Body.String(), unsafe, "text goes in through textContent only")
	}
	css := do(t, s, http.MethodGet, "/ui/static/app.css", nil, nil)
	require.Equal(t, http.StatusOK, css.Code)
	// Offline: nothing refers to another origin.
	for name, body := range map[string]string{"index": page, "js": js.Body.String(), "css": css.Body.String()} {
		assert.NotContains(t, body, "http://", name)
		assert.NotContains(t, body, "https://", name)
		assert.NotContains(t, body, "@import", name)
	}
	etag := js.Header().Get("ETag")
	require.NotEmpty(t, etag)
	assert.Equal(t, http.StatusNotModified, do(t, s, http.MethodGet, "/ui/static/app.js", nil, map[string]string{"If-None-Match": etag}).Code)
	assert.Equal(t, http.StatusNotFound, do(t, s, http.MethodGet, "/ui/static/secret.txt", nil, nil).Code)
}

func TestStartShutdown(t *testing.T) {
	s := newTestServer(t, Config{Addr: "127.0.0.1:0"}, Deps{})
	// What runs before serving is in place before any request is
	// answered: a request made meanwhile waits (here: past its deadline).
	var hooked string
	addr, err := s.Start(t.Context(), func(addr string) {
		hooked = addr
		_, err := (&http.Client{Timeout: 300 * time.Millisecond}).Get("http://" + addr + "/healthz")
		assert.Error(t, err, "answered before beforeServe returned")
	})
	require.NoError(t, err)
	require.NotEqual(t, "127.0.0.1:0", addr)
	assert.Equal(t, addr, hooked)
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "ok\n", string(b))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	_, err = (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/healthz")
	assert.Error(t, err, "nothing listens after Shutdown")

	again := newTestServer(t, Config{Addr: addr}, Deps{})
	_, err = again.Start(t.Context(), nil)
	require.NoError(t, err, "the port was released")
	require.NoError(t, again.Shutdown(ctx))
}

func TestSSEEventFraming(t *testing.T) {
	e := domain.RecordedEvent{
		Stream: "order-1", Revision: 3, Position: domain.Position{Commit: 42, Prepare: 42}, ID: "e1", Type: "T",
		Data: []byte("{\n  \"a\": 1\n}"), Metadata: []byte("not json\nat all"),
	}
	out := string(sseEvent(e))
	lines := strings.Split(strings.TrimSuffix(out, "\n\n"), "\n")
	require.Len(t, lines, 2, out)
	assert.Equal(t, "id: 42/42", lines[0])
	require.True(t, strings.HasPrefix(lines[1], "data: "))
	var got Event
	require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &got))
	assert.JSONEq(t, `{"a":1}`, string(got.Data))
	assert.Equal(t, "text", got.MetadataEncoding)
	assert.JSONEq(t, `"not json\nat all"`, string(got.Metadata))

	p, ok := parsePosition("42/41")
	assert.True(t, ok)
	assert.Equal(t, domain.Position{Commit: 42, Prepare: 41}, p)
	for _, bad := range []string{"", "42", "a/b", "-1/2", "1/2/3"} {
		_, ok := parsePosition(bad)
		assert.False(t, ok, bad)
	}
}

func TestJSONValue(t *testing.T) {
	v, enc := jsonValue(nil)
	assert.Equal(t, "null", string(v))
	assert.Empty(t, enc)
	v, enc = jsonValue([]byte{0xff, 0x00, 0x01})
	assert.Equal(t, "base64", enc)
	assert.Equal(t, `"/wAB"`, string(v))
}
