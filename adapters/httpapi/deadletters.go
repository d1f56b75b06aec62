package httpapi

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"
)

// DeadLetter is one message of a dead-letter queue as the API shows it;
// cmd/ledger fills it from the broker adapter's browse.
type DeadLetter struct {
	MessageID   string
	Type        string
	Time        time.Time // when it was dead-lettered
	Reason      string    // short and stable: what the counts group by
	Detail      string    // the error, for a person
	Exchange    string    // where it came from
	RoutingKey  string
	ContentType string
	Headers     map[string]any // JSON-encodable values
	Body        []byte
}

// Dead-letter queues the API browses: the inbound queue's error queue
// (invalid input, delivery limit) and its skipped queue (no handler).
const (
	DeadLetterError   = "error"
	DeadLetterSkipped = "skipped"
)

// previewBytes is how much of a body the list shows in front.
const previewBytes = 160

type deadLetterJSON struct {
	MessageID    string          `json:"messageId"`
	Type         string          `json:"type,omitempty"`
	Time         time.Time       `json:"time,omitzero"`
	Reason       string          `json:"reason"`
	Detail       string          `json:"detail,omitempty"`
	Exchange     string          `json:"exchange,omitempty"`
	RoutingKey   string          `json:"routingKey,omitempty"`
	ContentType  string          `json:"contentType,omitempty"`
	Headers      map[string]any  `json:"headers,omitempty"`
	Size         int             `json:"size"`
	Preview      string          `json:"preview"` // the first bytes, as text
	Body         json.RawMessage `json:"body"`
	BodyEncoding string          `json:"bodyEncoding,omitempty"` // text | base64 when not JSON
}

type reasonCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

type deadLettersBody struct {
	Queue    string           `json:"queue"`
	Messages []deadLetterJSON `json:"messages"`
	// Counts group the messages listed by reason, largest first.
	Counts []reasonCount `json:"counts"`
	// More is true when the queue holds more than were listed.
	More bool `json:"more"`
}

// listDeadLetters browses a dead-letter queue without taking anything
// out of it (?queue=error|skipped, ?limit=).
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	queue := r.URL.Query().Get("queue")
	switch queue {
	case "":
		queue = DeadLetterError
	case DeadLetterError, DeadLetterSkipped:
	default:
		writeError(w, http.StatusBadRequest, "queue: want error or skipped")
		return
	}
	limit, err := pageLimit(r, 100, s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.deps.DeadLetters == nil {
		writeError(w, http.StatusNotImplemented, "dead letters are not available in this process")
		return
	}
	// One more than asked tells whether there are more.
	msgs, err := s.deps.DeadLetters(r.Context(), queue, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := deadLettersBody{Queue: queue, Messages: make([]deadLetterJSON, 0, min(limit, len(msgs))), Counts: []reasonCount{}}
	if len(msgs) > limit {
		msgs, body.More = msgs[:limit], true
	}
	counts := map[string]int{}
	for _, m := range msgs {
		out := deadLetterJSON{MessageID: m.MessageID, Type: m.Type, Time: m.Time, Reason: m.Reason, Detail: m.Detail,
			Exchange: m.Exchange, RoutingKey: m.RoutingKey, ContentType: m.ContentType, Headers: m.Headers,
			Size: len(m.Body), Preview: preview(m.Body)}
		out.Body, out.BodyEncoding = jsonValue(m.Body)
		body.Messages = append(body.Messages, out)
		counts[m.Reason]++
	}
	for reason, n := range counts {
		body.Counts = append(body.Counts, reasonCount{Reason: reason, Count: n})
	}
	slices.SortFunc(body.Counts, func(a, b reasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
	})
	writeJSON(w, http.StatusOK, body)
}

// preview is the first bytes of a body as text, cut at a rune boundary;
// bytes that are not text show as U+FFFD.
func preview(b []byte) string {
	if len(b) > previewBytes {
		b = b[:previewBytes]
		for len(b) > 0 && !utf8.Valid(b) && len(b) > previewBytes-utf8.UTFMax {
			b = b[:len(b)-1]
		}
	}
	return string([]rune(string(b)))
}
