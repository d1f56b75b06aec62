package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

// tail streams new events as Server-Sent Events: one "data:" line of JSON
// per event, its position as the event id. It starts at the log's head, or
// after Last-Event-ID when the browser reconnects, and ends when the
// client goes or the server shuts down.
func (s *Server) tail(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	if !validStreamName(prefix, true) {
		writeError(w, http.StatusBadRequest, "prefix: letters, digits and - _ . : @ $ only, at most 200")
		return
	}
	var after *domain.Position
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		p, ok := parsePosition(last)
		if !ok {
			writeError(w, http.StatusBadRequest, "Last-Event-ID: want a position like 12/12")
			return
		}
		after = &p
	}
	select {
	case s.tails <- struct{}{}:
		defer func() { <-s.tails }()
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "too many live tails")
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	if after == nil {
		head, ok, err := s.deps.Log.Head(ctx)
		if err != nil {
			s.fail(w, r, fmt.Errorf("tail: read head: %w", err))
			return
		}
		if ok {
			after = &head
		}
	}
	sub, err := s.deps.Log.Subscribe(ctx, domain.SubscribeOptions{After: after, StreamPrefix: prefix})
	if err != nil {
		s.fail(w, r, fmt.Errorf("tail: subscribe: %w", err))
		return
	}
	defer sub.Close()

	type item struct {
		e   domain.RecordedEvent
		err error
	}
	items := make(chan item)
	go func() {
		for {
			e, err := sub.Next(ctx)
			select {
			case items <- item{e, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	start := "retry: 3000\n: tail from start\n\n"
	if after != nil {
		start = "retry: 3000\n: tail after " + after.String() + "\n\n"
	}
	if !send([]byte(start)) {
		return
	}
	beat := time.NewTicker(s.cfg.TailHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		case it := <-items:
			if it.err != nil {
				if ctx.Err() == nil {
					s.log.Warn("live tail ended", zap.Error(it.err))
					send([]byte("event: error\ndata: {\"error\":\"subscription ended\"}\n\n"))
				}
				return
			}
			if !send(sseEvent(it.e)) {
				return
			}
		}
	}
}

func sseEvent(e domain.RecordedEvent) []byte {
	payload, err := json.Marshal(EventOf(e))
	if err != nil {
		payload = []byte(`{"error":"cannot encode event"}`)
	}
	var b bytes.Buffer
	b.WriteString("id: ")
	b.WriteString(e.Position.String())
	b.WriteByte('\n')
	// encoding/json output has no raw newlines; split anyway so a data
	// line can never end the event early.
	for line := range strings.SplitSeq(string(payload), "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// parsePosition reads a position in its "C/P" form.
func parsePosition(s string) (domain.Position, bool) {
	c, p, ok := strings.Cut(s, "/")
	if !ok {
		return domain.Position{}, false
	}
	commit, err1 := strconv.ParseUint(c, 10, 64)
	prepare, err2 := strconv.ParseUint(p, 10, 64)
	if err1 != nil || err2 != nil {
		return domain.Position{}, false
	}
	return domain.Position{Commit: commit, Prepare: prepare}, true
}
