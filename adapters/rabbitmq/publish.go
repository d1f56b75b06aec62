package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

// Publication is one outbound message. MessageID is required: it is the
// consumers' de-duplication key, so a retry must carry the same one.
type Publication struct {
	Exchange      string
	RoutingKey    string
	MessageID     string
	CorrelationID string
	Type          string // AMQP type property (optional)
	ContentType   string // default application/json
	Body          []byte
	Headers       map[string]any
	Timestamp     time.Time // zero: now
	// Verbatim sends ContentType and MessageID exactly as given, even
	// empty: a dead-lettered copy must not claim a content type or an
	// identity its original did not have.
	Verbatim bool
}

// Sentinels a PublishError matches (errors.Is).
var (
	ErrReturned = errors.New("publication returned as unroutable")
	ErrNacked   = errors.New("publication nacked by the broker")
	// ErrNoExchange: the target exchange does not exist.
	ErrNoExchange = errors.New("exchange not found")
)

// PublishFailure says why one publication was not accepted.
type PublishFailure struct {
	MessageID  string
	Exchange   string
	RoutingKey string
	Err        error // ErrReturned, ErrNacked or ErrNoExchange, wrapped with detail
}

// PublishError lists the publications of a Publish call the broker did not
// accept. The others were confirmed. Retry with the same message ids.
type PublishError struct {
	Failures []PublishFailure
}

func (e *PublishError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d publication(s) not accepted:", len(e.Failures))
	for i, f := range e.Failures {
		if i == 5 {
			fmt.Fprintf(&sb, " and %d more", len(e.Failures)-i)
			break
		}
		fmt.Fprintf(&sb, " %s to %q/%q: %v;", f.MessageID, f.Exchange, f.RoutingKey, f.Err)
	}
	return strings.TrimSuffix(sb.String(), ";")
}

// Unwrap lets errors.Is match the failures' sentinels.
func (e *PublishError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f.Err
	}
	return errs
}

// pubChan is a confirm-mode channel; returns are kept per message until
// the publisher that sent it looks (a return precedes its ack).
type pubChan struct {
	ch      *amqp.Channel
	closed  chan struct{}
	err     *amqp.Error // set before closed is closed; nil on a clean close
	returns chan amqp.Return

	mu       sync.Mutex
	returned map[string]amqp.Return
}

func returnKey(exchange, key, id string) string { return exchange + "\x00" + key + "\x00" + id }

// drain moves buffered returns into the map. The library sends a return
// to our channel before it processes the matching ack, so after an ack a
// drain always sees that message's return.
func (p *pubChan) drain() {
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				return
			}
			if len(p.returned) > 4*cap(p.returns) {
				clear(p.returned) // returns of abandoned publishes
			}
			p.returned[returnKey(r.Exchange, r.RoutingKey, r.MessageId)] = r
		default:
			return
		}
	}
}

func (p *pubChan) takeReturn(pub *Publication) (amqp.Return, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drain()
	k := returnKey(pub.Exchange, pub.RoutingKey, pub.MessageID)
	r, ok := p.returned[k]
	if ok {
		delete(p.returned, k)
	}
	return r, ok
}

func (p *pubChan) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

// publisher returns the session's confirm channel, opening one if needed.
func (b *Broker) publisher(s *session) (*pubChan, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if s.pub != nil && !s.pub.isClosed() {
		return s.pub, nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publisher channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	p := &pubChan{
		ch:       ch,
		closed:   make(chan struct{}),
		returns:  make(chan amqp.Return, 2*b.cfg.ConfirmWindow+64),
		returned: map[string]amqp.Return{},
	}
	ch.NotifyReturn(p.returns)
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		if err, ok := <-closes; ok {
			p.err = err
		}
		close(p.closed)
	}()
	s.pub = p
	return p, nil
}

type outcome int

const (
	outConfirmed outcome = iota
	outFailed            // reported to the caller
	outLost              // channel or connection went away: publish again
)

// Publish sends every publication persistent and mandatory, pipelining up
// to ConfirmWindow unconfirmed messages, and returns when all are
// confirmed. Publications lost with a connection are published again on
// the next one (waiting through an outage until ctx is done). Nacked,
// returned and exchange-less publications come back in a *PublishError;
// the rest of the call was confirmed.
func (b *Broker) Publish(ctx context.Context, pubs []Publication) error {
	if len(pubs) == 0 {
		return nil
	}
	msgs := make([]amqp.Publishing, len(pubs))
	for i := range pubs {
		p := &pubs[i]
		if p.MessageID == "" && !p.Verbatim {
			return fmt.Errorf("publish to %q: publication %d has no message id", p.Exchange, i)
		}
		headers, err := toTable(p.Headers)
		if err != nil {
			return fmt.Errorf("publish %s: headers: %w", p.MessageID, err)
		}
		ct := p.ContentType
		if ct == "" && !p.Verbatim {
			ct = domain.ContentTypeJSON
		}
		ts := p.Timestamp
		if ts.IsZero() {
			ts = time.Now()
		}
		msgs[i] = amqp.Publishing{
			Headers: headers, ContentType: ct, DeliveryMode: amqp.Persistent,
			CorrelationId: p.CorrelationID, MessageId: p.MessageID, Timestamp: ts.UTC(),
			Type: p.Type, AppId: "ledger", Body: p.Body,
		}
	}

	pending := make([]int, len(pubs))
	for i := range pending {
		pending[i] = i
	}
	var failures []PublishFailure
	delay := b.cfg.ReconnectMin
	for len(pending) > 0 {
		s, err := b.acquire(ctx)
		if err != nil {
			return fmt.Errorf("publish %d message(s): %w", len(pending), err)
		}
		pc, err := b.publisher(s)
		if err != nil {
			b.log.Warn("publisher channel unavailable, retrying", zap.Error(err))
			if err := sleep(ctx, b.ctx, delay); err != nil {
				return fmt.Errorf("publish %d message(s): %w", len(pending), err)
			}
			delay = min(2*delay, b.cfg.ReconnectMax)
			continue
		}
		outs, why, err := b.publishOn(ctx, pc, pubs, msgs, pending)
		if err != nil {
			return fmt.Errorf("publish %d message(s): %w", len(pending), err)
		}
		var lost []int
		for k, idx := range pending {
			switch outs[k] {
			case outLost:
				lost = append(lost, idx)
			case outFailed:
				failures = append(failures, PublishFailure{
					MessageID: pubs[idx].MessageID, Exchange: pubs[idx].Exchange, RoutingKey: pubs[idx].RoutingKey, Err: why[k],
				})
			}
		}
		if len(lost) == 0 {
			break
		}
		// Something was lost with the channel: wait until its close reason
		// is known (or the connection is gone).
		select {
		case <-pc.closed:
		case <-s.dead:
		case <-ctx.Done():
			return fmt.Errorf("publish %d message(s): %w", len(lost), ctx.Err())
		}
		if pc.isClosed() && pc.err != nil && pc.err.Code == amqp.NotFound {
			// "no such exchange" closed the channel, losing whatever was in
			// flight with it: report the publications aimed at a missing
			// exchange, publish the others again.
			missing := b.missingExchanges(s, pubs, lost)
			var again []int
			for _, idx := range lost {
				if missing[pubs[idx].Exchange] {
					failures = append(failures, PublishFailure{
						MessageID: pubs[idx].MessageID, Exchange: pubs[idx].Exchange, RoutingKey: pubs[idx].RoutingKey,
						Err: fmt.Errorf("%w: %q", ErrNoExchange, pubs[idx].Exchange),
					})
					continue
				}
				again = append(again, idx)
			}
			lost = again
		}
		if len(lost) > 0 {
			b.log.Info("publishing again after channel loss", zap.Int("messages", len(lost)))
		}
		pending = lost
	}
	if len(failures) > 0 {
		return &PublishError{Failures: failures}
	}
	return nil
}

func (b *Broker) missingExchanges(s *session, pubs []Publication, idxs []int) map[string]bool {
	missing := map[string]bool{}
	seen := map[string]bool{}
	for _, idx := range idxs {
		ex := pubs[idx].Exchange
		if ex == "" || seen[ex] {
			continue
		}
		seen[ex] = true
		ch, err := s.conn.Channel()
		if err != nil {
			return missing // connection trouble: publish again
		}
		err = ch.ExchangeDeclarePassive(ex, "fanout", true, false, false, false, nil)
		if isCode(err, amqp.NotFound) {
			missing[ex] = true
		}
		if !ch.IsClosed() {
			_ = ch.Close()
		}
	}
	return missing
}

type inflight struct {
	k     int
	dc    *amqp.DeferredConfirmation
	start time.Time
}

// publishOn publishes pending on one channel and classifies each; the
// confirm waiter runs alongside so the window keeps moving.
func (b *Broker) publishOn(ctx context.Context, pc *pubChan, pubs []Publication, msgs []amqp.Publishing, pending []int) ([]outcome, []error, error) {
	outs := make([]outcome, len(pending))
	why := make([]error, len(pending))
	for k := range outs {
		outs[k] = outLost
	}
	queue := make(chan inflight, len(pending))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range queue {
			var acked bool
			select {
			case <-f.dc.Done():
				acked = f.dc.Acked()
			case <-ctx.Done():
				<-b.window
				continue // the caller returns ctx.Err()
			}
			<-b.window
			p := &pubs[pending[f.k]]
			switch {
			case acked:
				if r, ok := pc.takeReturn(p); ok {
					outs[f.k] = outFailed
					why[f.k] = fmt.Errorf("%w: %d %s", ErrReturned, r.ReplyCode, r.ReplyText)
					b.obs.OnReturned(p.Exchange)
					continue
				}
				outs[f.k] = outConfirmed
				b.obs.OnPublished(p.Exchange)
				b.obs.OnConfirmLatency(time.Since(f.start))
			case pc.ch.IsClosed():
				outs[f.k] = outLost // nacked by the channel closing
			default:
				outs[f.k] = outFailed
				why[f.k] = ErrNacked
			}
		}
	}()

	var perr error
loop:
	for k, idx := range pending {
		select {
		case b.window <- struct{}{}:
		case <-ctx.Done():
			perr = ctx.Err()
			break loop
		case <-b.ctx.Done():
			perr = ErrClosed
			break loop
		}
		p := &pubs[idx]
		dc, err := pc.ch.PublishWithDeferredConfirm(p.Exchange, p.RoutingKey, true, false, msgs[idx])
		if err != nil || dc == nil {
			<-b.window
			break loop // channel gone: the rest are lost, published again
		}
		queue <- inflight{k: k, dc: dc, start: time.Now()}
	}
	close(queue)
	<-done
	if perr == nil {
		perr = ctx.Err()
	}
	return outs, why, perr
}

// toTable converts headers into AMQP field values (maps become tables).
func toTable(h map[string]any) (amqp.Table, error) {
	if len(h) == 0 {
		return nil, nil
	}
	t := make(amqp.Table, len(h))
	for k, v := range h {
		t[k] = toField(v)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func toField(v any) any {
	switch x := v.(type) {
	case map[string]any:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = toField(e)
		}
		return t
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toField(e)
		}
		return out
	case uint:
		return int64(x)
	case uint64:
		return int64(x)
	case time.Duration:
		return int64(x / time.Millisecond)
	}
	return v
}
