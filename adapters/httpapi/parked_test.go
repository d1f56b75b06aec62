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
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The Deps funcs below return fixed values: they stand where
// projections.Lifecycle and the broker adapter go, whose own tests run
// against the real store and broker; cmd/ledger's tests run them wired.

const (
	orderA = "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10"
	orderB = "0b5e2d8c-9a10-4c1e-9a7f-3f2c6a8e1d4b"
)

func sampleParked() []projections.Parked {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []projections.Parked{
		{OrderID: orderB, Stream: domain.StreamName(orderB), Kind: domain.KindAccelByte, FromRevision: 0,
			Message: "orderCreated", MessageID: "m-1", Reason: projections.ReasonUnbuildable,
			Detail: "total 3000000000 outside int32", ParkedAt: at},
		{OrderID: orderA, Stream: domain.StreamName(orderA), Kind: domain.KindAccelByte, FromRevision: 2,
			Message: "orderCharged", MessageID: "m-2", Reason: projections.ReasonRefused, ParkedAt: at, Retries: 1},
		{OrderID: orderA, Stream: domain.StreamName(orderA), Kind: domain.KindBookWorm, FromRevision: 2,
			Message: "CompleteOrderCommand", MessageID: "m-3", Reason: projections.ReasonNacked, ParkedAt: at},
	}
}

func TestParkedList(t *testing.T) {
	assert.Equal(t, http.StatusNotImplemented, do(t, newTestServer(t, Config{}, Deps{}), http.MethodGet, "/api/parked", nil, nil).Code)

	fail := error(nil)
	s := newTestServer(t, Config{}, Deps{Parked: func(context.Context) ([]projections.Parked, error) {
		if fail != nil {
			return nil, fail
		}
		return sampleParked(), nil
	}})
	var body parkedBody
	rec := do(t, s, http.MethodGet, "/api/parked", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, 2, body.Orders)
	assert.Equal(t, 3, body.Lanes)
	assert.Equal(t, sampleParked(), body.Parked)

	rec = do(t, s, http.MethodGet, "/api/parked?orderId="+strings.ToUpper(orderA), nil, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	body = parkedBody{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, 1, body.Orders)
	require.Len(t, body.Parked, 2)
	for _, p := range body.Parked {
		assert.Equal(t, orderA, p.OrderID)
	}

	rec = do(t, s, http.MethodGet, "/api/parked?orderId=00000000-0000-0000-0000-000000000000", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"orders":0,"lanes":0,"parked":[]}`, rec.Body.String(), "an empty list, not null")

	rec = do(t, s, http.MethodGet, "/api/parked?orderId=%3Cscript%3E", nil, nil)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.NotContains(t, decodeError(t, rec), "<")

	fail = fmt.Errorf("list parked: %w", domain.ErrUnavailable)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, s, http.MethodGet, "/api/parked", nil, nil).Code)
}

func TestRetryParked(t *testing.T) {
	type call struct {
		ids []string
		all bool
	}
	var mu sync.Mutex
	var calls []call
	var fail error
	retry := func(_ context.Context, ids []string, all bool) ([]projections.RetryResult, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{ids, all})
		if fail != nil {
			return nil, fail
		}
		again := sampleParked()[0]
		again.Retries++
		return []projections.RetryResult{
			{OrderID: orderA, Kind: domain.KindAccelByte, Published: 2, Unparked: true},
			{OrderID: orderA, Kind: domain.KindBookWorm, Published: 1, Unparked: true},
			{OrderID: orderB, Kind: domain.KindAccelByte, Parked: &again},
			{OrderID: orderB, Kind: domain.KindBookWorm, Parked: &again, Err: errors.New("publish: broker unavailable")},
			{OrderID: "00000000-0000-0000-0000-000000000000", Err: fmt.Errorf("retry 0000: %w", projections.ErrNotParked)},
		}, nil
	}
	noToken := newTestServer(t, Config{}, Deps{RetryParked: retry})
	s := newTestServer(t, Config{Token: testToken, MaxBodyBytes: 160}, Deps{RetryParked: retry})
	noRetry := newTestServer(t, Config{Token: testToken}, Deps{})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	const url = "/api/admin/parked/retry"

	cases := []struct {
		name string
		s    *Server
		body string
		hdr  map[string]string
		code int
	}{
		{"no token configured", noToken, `{"all":true}`, auth, http.StatusForbidden},
		{"no header", s, `{"all":true}`, nil, http.StatusUnauthorized},
		{"wrong token", s, `{"all":true}`, map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"empty body", s, ``, auth, http.StatusBadRequest},
		{"neither", s, `{"orderIds":[],"all":false}`, auth, http.StatusBadRequest},
		{"both", s, `{"orderIds":["` + orderA + `"],"all":true}`, auth, http.StatusBadRequest},
		{"not an id", s, `{"orderIds":["<b>x</b>"]}`, auth, http.StatusBadRequest},
		{"unknown field", s, `{"everything":true}`, auth, http.StatusBadRequest},
		{"two values", s, `{"all":true}{"all":true}`, auth, http.StatusBadRequest},
		{"too large", s, `{"all":true}` + strings.Repeat(" ", 300), auth, http.StatusRequestEntityTooLarge},
		{"retry missing", noRetry, `{"all":true}`, auth, http.StatusNotImplemented},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(t, c.s, http.MethodPost, url, strings.NewReader(c.body), c.hdr)
			assert.Equal(t, c.code, rec.Code, rec.Body.String())
			assert.NotContains(t, decodeError(t, rec), "<")
		})
	}
	require.Empty(t, calls, "no refused request may reach the retry")

	rec := do(t, s, http.MethodPost, url, strings.NewReader(`{"orderIds":["`+strings.ToUpper(orderA)+`","`+orderB+`","`+orderA+`"]}`), auth)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var body retryBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, 2, body.Unparked)
	assert.Equal(t, 1, body.Parked)
	assert.Equal(t, 1, body.Failed)
	assert.Equal(t, 1, body.NotFound)
	require.Len(t, body.Results, 5)
	require.NotNil(t, body.Results[2].Parked)
	assert.Equal(t, 1, body.Results[2].Parked.Retries)
	assert.Equal(t, "publish: broker unavailable", body.Results[3].Error, "each result says why")
	assert.Contains(t, body.Results[4].Error, "not parked")

	rec = do(t, s, http.MethodPost, url, strings.NewReader(`{"all":true}`), auth)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, []call{{[]string{orderA, orderB}, false}, {[]string{}, true}}, calls, "ids lower-cased and once each")

	fail = fmt.Errorf("retry %s: %w", orderA, projections.ErrNotParked)
	rec = do(t, s, http.MethodPost, url, strings.NewReader(`{"orderIds":["`+orderA+`"]}`), auth)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	decodeError(t, rec)
	fail = fmt.Errorf("retry: %w", projections.ErrNotRunning)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, s, http.MethodPost, url, strings.NewReader(`{"all":true}`), auth).Code)
	fail = errors.New("bolt: /var/lib/ledger/readmodel.db: disk on fire")
	rec = do(t, s, http.MethodPost, url, strings.NewReader(`{"all":true}`), auth)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.NotContains(t, rec.Body.String(), "/var/lib")

	assert.NotEqual(t, http.StatusOK, do(t, s, http.MethodGet, url, nil, auth).Code)
}

func TestRetryParkedTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, Config{Token: testToken, RetryTimeout: time.Second}, Deps{
			RetryParked: func(ctx context.Context, _ []string, _ bool) ([]projections.RetryResult, error) {
				<-ctx.Done() // a broker that never answers
				return nil, fmt.Errorf("publish: %w", ctx.Err())
			}})
		rec := do(t, s, http.MethodPost, "/api/admin/parked/retry", strings.NewReader(`{"all":true}`),
			map[string]string{"Authorization": "Bearer " + testToken})
		assert.Equal(t, http.StatusGatewayTimeout, rec.Code, rec.Body.String())
	})
}

func TestDeadLetters(t *testing.T) {
	assert.Equal(t, http.StatusNotImplemented, do(t, newTestServer(t, Config{}, Deps{}), http.MethodGet, "/api/deadletters", nil, nil).Code)

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stored := []DeadLetter{
		{MessageID: "m-1", Type: "UserCheckedOutIntegrationEvent", Time: at, Reason: "invalid", Detail: "orderId: not a UUID",
			Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent", ContentType: "application/json",
			Headers: map[string]any{"MT-Reason": "fault"}, Body: []byte(`{"orderId":"nope"}`)},
		{MessageID: "m-2", Reason: "delivery limit", Body: []byte("<b>" + strings.Repeat("é", 200))},
		{MessageID: "m-3", Reason: "invalid", Body: []byte{0xff, 0x00}},
	}
	var asked []string
	s := newTestServer(t, Config{}, Deps{DeadLetters: func(_ context.Context, queue string, limit int) ([]DeadLetter, error) {
		asked = append(asked, fmt.Sprintf("%s %d", queue, limit))
		if queue == DeadLetterSkipped {
			return nil, nil
		}
		return stored[:min(limit, len(stored))], nil
	}})
	var body deadLettersBody
	rec := do(t, s, http.MethodGet, "/api/deadletters", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, "error", body.Queue)
	assert.False(t, body.More)
	assert.Equal(t, []reasonCount{{"invalid", 2}, {"delivery limit", 1}}, body.Counts)
	require.Len(t, body.Messages, 3)
	first := body.Messages[0]
	assert.Equal(t, "m-1", first.MessageID)
	assert.Equal(t, at, first.Time)
	assert.JSONEq(t, `{"orderId":"nope"}`, string(first.Body), "JSON bodies stay JSON")
	assert.Equal(t, `{"orderId":"nope"}`, first.Preview)
	assert.Equal(t, "fault", first.Headers["MT-Reason"])
	second := body.Messages[1]
	assert.Equal(t, "text", second.BodyEncoding)
	assert.Equal(t, 403, second.Size)
	assert.LessOrEqual(t, len(second.Preview), previewBytes)
	assert.True(t, strings.HasPrefix(second.Preview, "<b>éé"))
	assert.NotContains(t, second.Preview, "\uFFFD", "cut at a rune boundary")
	assert.Equal(t, "base64", body.Messages[2].BodyEncoding)

	rec = do(t, s, http.MethodGet, "/api/deadletters?queue=error&limit=2", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	body = deadLettersBody{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Len(t, body.Messages, 2)
	assert.True(t, body.More)

	rec = do(t, s, http.MethodGet, "/api/deadletters?queue=skipped", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"queue":"skipped","messages":[],"counts":[],"more":false}`, rec.Body.String())

	for _, bad := range []string{"?queue=ledger", "?queue=%3Cscript%3E", "?limit=0", "?limit=100000"} {
		rec := do(t, s, http.MethodGet, "/api/deadletters"+bad, nil, nil)
		assert.Equal(t, http.StatusBadRequest, rec.Code, bad)
		assert.NotContains(t, decodeError(t, rec), "<")
	}
	assert.Equal(t, []string{"error 101", "error 3", "skipped 101"}, asked, "one more than the page, to tell whether there are more")
}

func TestReadyzNotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ok := Check{Name: "store", Fn: func(context.Context) error { return nil }}
		parked := Note{Name: "parked", Fn: func(context.Context) (string, error) { return "parked: 2 orders", nil }}
		silent := Note{Name: "quiet", Fn: func(context.Context) (string, error) { return "", nil }}
		broken := Note{Name: "broken", Fn: func(context.Context) (string, error) { return "x", errors.New("amqp://guest:secret@host") }}
		release := make(chan struct{})
		defer close(release)
		stuck := Note{Name: "stuck", Fn: func(context.Context) (string, error) { <-release; return "late", nil }}
		s := newTestServer(t, Config{ReadyTimeout: 50 * time.Millisecond}, Deps{Ready: []Check{ok}, Notes: []Note{parked, silent, broken, stuck}})
		rec := do(t, s, http.MethodGet, "/readyz", nil, nil)
		require.Equal(t, http.StatusOK, rec.Code, "notes never make the service unready")
		var body readyBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, []string{"parked: 2 orders"}, body.Notes)
		assert.NotContains(t, rec.Body.String(), "secret")

		// A paused ingest: a failing check, and a note that says why.
		paused := Check{Name: "ingest", Fn: func(context.Context) error { return errors.New("paused") }}
		why := Note{Name: "ingest", Fn: func(context.Context) (string, error) { return "ingest paused: store unavailable", nil }}
		s = newTestServer(t, Config{}, Deps{Ready: []Check{ok, paused}, Notes: []Note{parked, why}})
		rec = do(t, s, http.MethodGet, "/readyz", nil, nil)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body = readyBody{}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, []string{"ingest"}, body.Failing)
		assert.Equal(t, []string{"parked: 2 orders", "ingest paused: store unavailable"}, body.Notes)
	})
	_, err := New(Config{}, Deps{Log: untouchedLog{}, Orders: untouchedModel{}, Audit: noAudit, Notes: []Note{{Name: "x"}}}, nil)
	assert.ErrorContains(t, err, "ready note 0")
}

func TestInfoSaysWhatIsWired(t *testing.T) {
	s := newTestServer(t, Config{Token: testToken}, Deps{
		Parked:      func(context.Context) ([]projections.Parked, error) { return nil, nil },
		DeadLetters: func(context.Context, string, int) ([]DeadLetter, error) { return nil, nil },
	})
	var info infoBody
	rec := do(t, s, http.MethodGet, "/api/info", nil, nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &info))
	assert.True(t, info.Parked)
	assert.False(t, info.RetryParked)
	assert.True(t, info.DeadLetters)
	assert.False(t, info.DryRun, "no replay wired")

	// Without a token a replay that swaps is off, but a dry run is not.
	replay := func(context.Context, bool, bool) (projections.ReplayResult, error) {
		return projections.ReplayResult{}, nil
	}
	s = newTestServer(t, Config{}, Deps{Replay: replay})
	rec = do(t, s, http.MethodGet, "/api/info", nil, nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &info))
	assert.False(t, info.Replay)
	assert.True(t, info.DryRun)
	s = newTestServer(t, Config{Token: testToken}, Deps{Replay: replay})
	rec = do(t, s, http.MethodGet, "/api/info", nil, nil)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &info))
	assert.True(t, info.Replay)
}

// On a follower a retry says which instance to ask; /api/info says who
// answered and whether it leads.
func TestRoleInInfoAndRetryOnAFollower(t *testing.T) {
	since := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	role := projections.LeaderStatus{Instance: "i2", Since: since, Changes: 3, Leader: "i1"}
	retry := func(context.Context, []string, bool) ([]projections.RetryResult, error) {
		return nil, fmt.Errorf("retry: %w", projections.ErrNotRunning)
	}
	s := newTestServer(t, Config{Token: testToken}, Deps{RetryParked: retry, Role: func() projections.LeaderStatus { return role }})
	rec := do(t, s, http.MethodPost, "/api/admin/parked/retry", strings.NewReader(`{"all":true}`),
		map[string]string{"Authorization": "Bearer " + testToken})
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, decodeError(t, rec), "instance i2 does not lead; retry on i1")

	var info infoBody
	require.NoError(t, json.Unmarshal(do(t, s, http.MethodGet, "/api/info", nil, nil).Body.Bytes(), &info))
	assert.Equal(t, "i2", info.Instance)
	require.NotNil(t, info.Role)
	assert.Equal(t, roleJSON{Leading: false, Since: since, Changes: 3, Leader: "i1"}, *info.Role)

	role.Leader = ""
	rec = do(t, s, http.MethodPost, "/api/admin/parked/retry", strings.NewReader(`{"all":true}`),
		map[string]string{"Authorization": "Bearer " + testToken})
	assert.Contains(t, decodeError(t, rec), "whose /readyz says leader")

	s = newTestServer(t, Config{}, Deps{})
	info = infoBody{}
	require.NoError(t, json.Unmarshal(do(t, s, http.MethodGet, "/api/info", nil, nil).Body.Bytes(), &info))
	assert.Nil(t, info.Role, "no role wired: none shown")
}
