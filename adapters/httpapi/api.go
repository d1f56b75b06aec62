package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

type readyBody struct {
	Status  string   `json:"status"`
	Checks  []string `json:"checks"`
	Failing []string `json:"failing,omitempty"`
	// Notes are informational lines ("parked: 2 orders", why ingest is
	// paused): they say, they do not decide.
	Notes []string `json:"notes,omitempty"`
}

// readyz runs every check and note at once, each under ReadyTimeout. The
// body names failing checks; their errors go to the log only (they may
// name hosts). Notes are shown as their text.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	errs := make([]error, len(s.deps.Ready))
	notes := make([]string, len(s.deps.Notes))
	noteErrs := make([]error, len(s.deps.Notes))
	var wg sync.WaitGroup
	for i, c := range s.deps.Ready {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
			defer cancel()
			errs[i] = runCheck(ctx, c.Fn)
		})
	}
	for i, n := range s.deps.Notes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
			defer cancel()
			notes[i], noteErrs[i] = runNote(ctx, n.Fn)
		})
	}
	wg.Wait()
	body := readyBody{Status: "ok", Checks: make([]string, 0, len(s.deps.Ready))}
	var fields []zap.Field
	for i, c := range s.deps.Ready {
		body.Checks = append(body.Checks, c.Name)
		if errs[i] != nil {
			body.Failing = append(body.Failing, c.Name)
			fields = append(fields, zap.NamedError(c.Name, errs[i]))
		}
	}
	for i, n := range s.deps.Notes {
		switch {
		case noteErrs[i] != nil:
			// A note that cannot be told is only logged: it decides nothing.
			s.log.Debug("ready note failed", zap.String("note", n.Name), zap.Error(noteErrs[i]))
		case notes[i] != "":
			body.Notes = append(body.Notes, notes[i])
		}
	}
	if len(body.Failing) > 0 {
		body.Status = "unavailable"
		if s.ready.Swap(false) {
			s.log.Warn("not ready", fields...)
		}
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	if !s.ready.Swap(true) {
		s.log.Info("ready again")
	}
	writeJSON(w, http.StatusOK, body)
}

// runCheck returns when fn does or when ctx ends, whichever is first, so a
// check that ignores its context cannot hang the probe.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- errors.New("check panicked")
			}
		}()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runNote is runCheck for a note.
func runNote(ctx context.Context, fn func(context.Context) (string, error)) (string, error) {
	type answer struct {
		text string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- answer{err: errors.New("note panicked")}
			}
		}()
		text, err := fn(ctx)
		done <- answer{text, err}
	}()
	select {
	case a := <-done:
		return a.text, a.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

type infoBody struct {
	Currency    currencyJSON `json:"currency"`
	Replay      bool         `json:"replay"`      // a replay that swaps the read model (admin) is available
	DryRun      bool         `json:"dryRun"`      // a dry-run replay (no token) is available
	Parked      bool         `json:"parked"`      // parked lanes can be listed
	RetryParked bool         `json:"retryParked"` // and retried (admin)
	DeadLetters bool         `json:"deadLetters"` // dead-letter queues can be browsed
	// Index: orders can be filtered, sorted and searched, and the
	// overview and days answer.
	Index bool `json:"index"`
	// Statuses are every order status, in lifecycle order.
	Statuses []domain.Status `json:"statuses"`
	// Instance and Role say which instance answered and whether it runs
	// the publisher (Deps.Role; absent without it).
	Instance string    `json:"instance,omitempty"`
	Role     *roleJSON `json:"role,omitempty"`
}

type roleJSON struct {
	Leading bool      `json:"leading"`
	Since   time.Time `json:"since"`
	Changes int64     `json:"changes"`
	Leader  string    `json:"leader,omitempty"` // best known; may be empty on a follower
}

type currencyJSON struct {
	Code     string `json:"code"`
	Decimals int    `json:"decimals"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	body := infoBody{Currency: currencyJSON{s.cfg.Currency.Code, s.cfg.Currency.Decimals},
		Replay: s.deps.Replay != nil && s.cfg.Token != "", DryRun: s.deps.Replay != nil, Parked: s.deps.Parked != nil,
		RetryParked: s.deps.RetryParked != nil && s.cfg.Token != "", DeadLetters: s.deps.DeadLetters != nil,
		Index: s.deps.Index != nil, Statuses: domain.Statuses()}
	if s.deps.Role != nil {
		st := s.deps.Role()
		body.Instance = st.Instance
		body.Role = &roleJSON{Leading: st.Leading, Since: st.Since.UTC(), Changes: st.Changes, Leader: st.Leader}
	}
	writeJSON(w, http.StatusOK, body)
}

type streamsBody struct {
	Streams []streamJSON `json:"streams"`
	Next    string       `json:"next,omitempty"` // pass as after= for the next page
}

type streamJSON struct {
	Name         string `json:"name"`
	LastRevision uint64 `json:"lastRevision"`
	Count        uint64 `json:"count"`
	OrderID      string `json:"orderId,omitempty"`
}

func (s *Server) listStreams(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	prefix, after := q.Get("prefix"), q.Get("after")
	if !validStreamName(prefix, true) {
		writeError(w, http.StatusBadRequest, "prefix: letters, digits and - _ . : @ $ only, at most 200")
		return
	}
	if !validStreamName(after, true) {
		writeError(w, http.StatusBadRequest, "after: not a stream name")
		return
	}
	limit, err := pageLimit(r, 50, s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// One more than asked tells whether there is a next page.
	infos, err := s.deps.Log.ListStreams(r.Context(), prefix, after, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := streamsBody{Streams: make([]streamJSON, 0, min(limit, len(infos)))}
	for i, in := range infos {
		if i == limit {
			body.Next = infos[limit-1].Name
			break
		}
		sj := streamJSON{Name: in.Name, LastRevision: in.LastRevision, Count: in.Count}
		if id, ok := domain.OrderIDFromStream(in.Name); ok {
			sj.OrderID = id
		}
		body.Streams = append(body.Streams, sj)
	}
	writeJSON(w, http.StatusOK, body)
}

// Event is a recorded event as clients see it (the API, and `ledger
// streams`): data and metadata as JSON values when they are JSON, else as
// text (or base64 for binary).
type Event struct {
	Stream           string          `json:"stream"`
	Revision         uint64          `json:"revision"`
	Position         string          `json:"position"`
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	Data             json.RawMessage `json:"data"`
	DataEncoding     string          `json:"dataEncoding,omitempty"` // text | base64 when not JSON
	Metadata         json.RawMessage `json:"metadata"`
	MetadataEncoding string          `json:"metadataEncoding,omitempty"`
	Created          time.Time       `json:"created,omitzero"`
}

// EventOf is e as clients see it.
func EventOf(e domain.RecordedEvent) Event {
	out := Event{Stream: e.Stream, Revision: e.Revision, Position: e.Position.String(), ID: e.ID, Type: e.Type, Created: e.Created}
	out.Data, out.DataEncoding = jsonValue(e.Data)
	out.Metadata, out.MetadataEncoding = jsonValue(e.Metadata)
	return out
}

func jsonValue(b []byte) (json.RawMessage, string) {
	switch {
	case len(b) == 0:
		return json.RawMessage("null"), ""
	case json.Valid(b):
		return json.RawMessage(b), ""
	case utf8.Valid(b):
		q, _ := json.Marshal(string(b))
		return q, "text"
	default:
		q, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
		return q, "base64"
	}
}

type eventsBody struct {
	Stream    string  `json:"stream"`
	OrderID   string  `json:"orderId,omitempty"`
	Direction string  `json:"direction"`
	Events    []Event `json:"events"`
	Next      *uint64 `json:"next,omitempty"` // pass as from= for the next page
}

func (s *Server) readStream(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !validStreamName(stream, false) {
		writeError(w, http.StatusBadRequest, "stream: letters, digits and - _ . : @ $ only, 1 to 200")
		return
	}
	q := r.URL.Query()
	dir := domain.Forwards
	switch q.Get("dir") {
	case "", "f", "forwards", "forward":
	case "b", "backwards", "backward":
		dir = domain.Backwards
	default:
		writeError(w, http.StatusBadRequest, "dir: want forwards or backwards")
		return
	}
	from := uint64(0)
	if dir == domain.Backwards {
		from = domain.EndOfStream
	}
	if raw := q.Get("from"); raw != "" && raw != "end" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "from: want a revision number or end")
			return
		}
		from = n
	} else if raw == "end" {
		from = domain.EndOfStream
	}
	limit, err := pageLimit(r, 100, s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	evs, err := s.deps.Log.ReadStream(r.Context(), stream, from, dir, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := eventsBody{Stream: stream, Direction: "forwards", Events: make([]Event, 0, min(limit, len(evs)))}
	if dir == domain.Backwards {
		body.Direction = "backwards"
	}
	if id, ok := domain.OrderIDFromStream(stream); ok {
		body.OrderID = id
	}
	for i, e := range evs {
		if i == limit {
			next := e.Revision
			body.Next = &next
			break
		}
		body.Events = append(body.Events, EventOf(e))
	}
	writeJSON(w, http.StatusOK, body)
}

// orderID reads and validates the {orderId} path value.
func orderID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, ok := parseOrderID(r.PathValue("orderId"))
	if !ok {
		writeError(w, http.StatusBadRequest, "order id: want a UUID like 3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10")
	}
	return id, ok
}

func (s *Server) order(w http.ResponseWriter, r *http.Request) {
	id, ok := orderID(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Has("as_of") {
		s.orderAsOf(w, r, id)
		return
	}
	sum, found, err := s.deps.Orders.Summary(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "order not in the read model")
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	id, ok := orderID(w, r)
	if !ok {
		return
	}
	rep, err := s.auditOf(r, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rep.Entries == nil {
		rep.Entries = []projections.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	id, ok := orderID(w, r)
	if !ok {
		return
	}
	rep, err := s.auditOf(r, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "no-store")
	// Opened on its own, the picture may not run anything.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
	_, _ = w.Write(RenderTimeline(rep, s.cfg.Currency))
}

// fail answers an error: client errors with their message, a missing
// stream with 404, the rest with 500 (logged, details withheld).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.Error())
	case errors.Is(err, projections.ErrInvalidQuery):
		// The index's own word on what it cannot answer (a cursor from
		// another listing): about the request, never about the store.
		msg := err.Error()
		if i := strings.Index(msg, projections.ErrInvalidQuery.Error()); i >= 0 {
			msg = msg[i:]
		}
		writeError(w, http.StatusBadRequest, msg)
	case errors.Is(err, domain.ErrStreamNotFound):
		writeError(w, http.StatusNotFound, "stream not found")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
	case errors.Is(err, domain.ErrUnavailable), errors.Is(err, domain.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("http request failed", zap.String("route", r.Pattern), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "store unavailable, try again")
	default:
		s.log.Error("http request failed", zap.String("route", r.Pattern), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}
