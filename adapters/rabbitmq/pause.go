package rabbitmq

import (
	"context"
	"errors"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// A store outage pauses consuming instead of burning deliveries.
//
// A Wait verdict (the store is unavailable) is never nacked: the delivery
// stays unacked and the consumer hands it to the handler again with
// back-off (RetryDelay doubling up to RetryDelayMax) until it is stored,
// ctx ends or the channel closes. Meanwhile nothing new is processed: what
// the broker sends (bounded by the prefetch) is taken into the held set
// undelivered to the handler. A channel closed meanwhile (connection loss,
// shutdown) returns the held deliveries to the queue as usual.
//
// RabbitMQ closes the channel of a consumer that holds a delivery longer
// than consumer_timeout (30 minutes by default), which returns it and, on
// a quorum queue, counts a delivery. So an outage of any length never
// reaches the delivery limit, held deliveries are re-published before that
// (after Config.HoldMax, default DefaultHoldMax, or as soon as the broker's
// own count of one of them is one short of the limit): the copies go to the
// ledger queue through the default exchange with the original body,
// properties and headers, plus HeaderHeld and the original exchange and
// routing key; once the broker confirmed them the originals are acked. A
// copy starts with a fresh broker delivery count, is judged as its
// original was (fromAMQP restores its exchange, routing key and
// timestamp), and, with the same message id, maps to the same fact. The
// copies queue behind what was waiting in the queue, so facts of one
// order can be stored out of their arrival order; the fold accepts facts
// in any order (one not valid yet is held until its prerequisite).

// DefaultHoldMax is how long deliveries are held unacked while the store
// is unavailable before they are re-published: well under RabbitMQ's
// consumer_timeout (30 minutes by default; 15 on some 3.8 releases).
const DefaultHoldMax = 10 * time.Minute

// Headers of a held copy.
const (
	// HeaderHeld marks a copy re-published by the ledger while the store
	// was unavailable; the value is when (RFC 3339).
	HeaderHeld = "x-ledger-held"
	// HeaderHeldTimestamp is the original's timestamp property (RFC 3339,
	// "" when it had none).
	HeaderHeldTimestamp = "x-ledger-held-timestamp"
)

// reasonHeld labels deliveries taken in while the consumer was paused,
// not handled yet.
const reasonHeld = "held while the store is unavailable"

// republishTimeout bounds one re-publish of held deliveries; on timeout
// they stay held and the next round tries again.
const republishTimeout = 30 * time.Second

// PauseObserver is an optional Observer hook: an Observer that implements
// it is told when consuming pauses (the store is unavailable) and resumes.
type PauseObserver interface {
	OnPaused(paused bool)
}

// pauseState says whether consuming is paused, since when and why.
type pauseState struct {
	mu     sync.Mutex
	paused bool
	reason string
	since  time.Time
}

// Paused says whether consuming is paused because the store is
// unavailable (for /readyz): the reason ("store unavailable: …") and since
// when. It is paused from the first delivery that had to wait until one is
// stored again, or the consumer stops.
func (b *Broker) Paused() (reason string, since time.Time, paused bool) {
	b.pause.mu.Lock()
	defer b.pause.mu.Unlock()
	return b.pause.reason, b.pause.since, b.pause.paused
}

// pauseFor records the pause (logging it once) with the verdict's reason.
func (b *Broker) pauseFor(v Verdict, held int) {
	reason := v.Reason
	if reason == "" {
		reason = "store unavailable"
	}
	if v.Err != nil {
		reason += ": " + v.Err.Error()
	}
	b.pause.mu.Lock()
	was := b.pause.paused
	b.pause.paused, b.pause.reason = true, reason
	if !was {
		b.pause.since = time.Now()
	}
	b.pause.mu.Unlock()
	if was {
		return
	}
	b.log.Warn("ingest paused: holding deliveries until the store is back", zap.String("queue", b.cfg.Queue),
		zap.Int("held", held), zap.String("reason", reason))
	if po, ok := b.obs.(PauseObserver); ok {
		po.OnPaused(true)
	}
}

// resume ends a pause (logging it once).
func (b *Broker) resume() {
	b.pause.mu.Lock()
	was, since := b.pause.paused, b.pause.since
	b.pause.paused, b.pause.reason, b.pause.since = false, "", time.Time{}
	b.pause.mu.Unlock()
	if !was {
		return
	}
	b.log.Info("ingest resumed: the store is back", zap.String("queue", b.cfg.Queue), zap.Duration("paused", time.Since(since)))
	if po, ok := b.obs.(PauseObserver); ok {
		po.OnPaused(false)
	}
}

// unpauseQuietly clears the pause when the consumer stops: whatever it
// held is back in the queue, and the next consumer pauses again if the
// store is still down.
func (b *Broker) unpauseQuietly() {
	b.pause.mu.Lock()
	was := b.pause.paused
	b.pause.paused, b.pause.reason, b.pause.since = false, "", time.Time{}
	b.pause.mu.Unlock()
	if was {
		if po, ok := b.obs.(PauseObserver); ok {
			po.OnPaused(false)
		}
	}
}

func (b *Broker) holdMax() time.Duration {
	if b.cfg.HoldMax > 0 {
		return b.cfg.HoldMax
	}
	return DefaultHoldMax
}

// hold keeps held (the unacked deliveries that must wait, in delivery
// order, the only unsettled ones of ch) until each is settled, re-trying
// them with back-off. since is when the oldest was delivered.
func (b *Broker) hold(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery, closes chan *amqp.Error, held []item, handler BatchHandler, since time.Time) error {
	b.pauseFor(held[0].verdict, len(held))
	delay := b.cfg.RetryDelay
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var open bool
		if held, open = b.takeBuffered(deliveries, held, 0); !open {
			return channelErr(closes)
		}
		if late, due := b.dueForRepublish(held, since); due {
			if late {
				// Take in whatever is still on its way: it was delivered
				// as long ago as the rest.
				if held, open = b.takeBuffered(deliveries, held, 20*time.Millisecond); !open {
					return channelErr(closes)
				}
			}
			rest, err := b.republish(ctx, ch, held)
			if err != nil {
				return err
			}
			if len(rest) == 0 {
				return nil // the copies come back as new deliveries; still paused
			}
			held = rest
		}
		wait := delay
		if d := time.Until(since.Add(b.holdMax())); d > 0 && d < wait {
			wait = d
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.ctx.Done():
			return ErrClosed
		case err, ok := <-closes:
			if ok && err != nil {
				return err
			}
			return errors.New("channel closed while holding deliveries")
		case <-timer.C:
		}
		delay = min(2*delay, b.cfg.RetryDelayMax)
		var err error
		if held, err = b.retryHeld(ctx, ch, handler, held); err != nil {
			return err
		}
		if len(held) == 0 {
			b.resume()
			return nil
		}
		b.pauseFor(held[0].verdict, len(held))
	}
}

// takeBuffered moves what the broker has sent meanwhile into held, not
// handled yet: nothing new is processed while the store is down. With
// quiet > 0 it waits until nothing arrived for that long.
func (b *Broker) takeBuffered(deliveries <-chan amqp.Delivery, held []item, quiet time.Duration) ([]item, bool) {
	for {
		var d amqp.Delivery
		var ok bool
		if quiet > 0 {
			select {
			case d, ok = <-deliveries:
			case <-time.After(quiet):
				return held, true
			}
		} else {
			select {
			case d, ok = <-deliveries:
			default:
				return held, true
			}
		}
		if !ok {
			return held, false
		}
		it := item{d: d}
		b.decode(&it)
		if it.decoded {
			it.verdict = Verdict{Action: Wait, Reason: reasonHeld}
		}
		held = append(held, it)
	}
}

// retryHeld hands the held deliveries to the handler again, BatchSize at
// a time, in order, and settles them; at the first batch where some must
// still wait it stops and returns those and the untried rest.
func (b *Broker) retryHeld(ctx context.Context, ch *amqp.Channel, handler BatchHandler, held []item) ([]item, error) {
	for start := 0; start < len(held); {
		end := min(start+b.cfg.BatchSize, len(held))
		chunk := held[start:end]
		b.classify(ctx, handler, chunk)
		_, waits, err := b.settle(ctx, ch, chunk, b.cfg.RetryDelay)
		if err != nil {
			return nil, err
		}
		if len(waits) > 0 {
			return append(waits, held[end:]...), nil
		}
		start = end
	}
	return nil, nil
}

// dueForRepublish: held too long for the broker's consumer_timeout
// (late), or a delivery the broker counts is one return short of its
// delivery limit.
func (b *Broker) dueForRepublish(held []item, since time.Time) (late, due bool) {
	if time.Since(since) >= b.holdMax() {
		return true, true
	}
	for i := range held {
		if _, counted := held[i].d.Headers["x-delivery-count"]; counted && held[i].msg.DeliveryCount >= b.deliveryLimit()-1 {
			return false, true
		}
	}
	return false, false
}

// republish puts copies of held deliveries back on the ledger queue and
// acks the originals the broker confirmed; it returns those still held.
func (b *Broker) republish(ctx context.Context, ch *amqp.Channel, held []item) ([]item, error) {
	pubs := make([]Publication, len(held))
	for i := range held {
		pubs[i] = b.heldCopy(&held[i])
	}
	pctx, cancel := context.WithTimeout(ctx, republishTimeout)
	err := b.Publish(pctx, pubs)
	cancel()
	failed := map[string]bool{}
	if err != nil {
		var perr *PublishError
		if !errors.As(err, &perr) {
			// Not known to be confirmed: keep holding them (a copy that did
			// get through maps to the same fact).
			b.log.Warn("re-publishing held deliveries failed; holding them", zap.Int("held", len(held)), zap.Error(err))
			return held, ctx.Err()
		}
		for _, f := range perr.Failures {
			failed[f.MessageID] = true
		}
		b.log.Warn("some held deliveries not re-published; holding them", zap.Int("failed", len(perr.Failures)), zap.Error(err))
	}
	var rest []item
	for i := range held {
		if failed[pubs[i].MessageID] {
			rest = append(rest, held[i])
			continue
		}
		if err := ch.Ack(held[i].d.DeliveryTag, false); err != nil {
			return nil, err
		}
	}
	b.log.Info("held deliveries re-published to reset their broker delivery count", zap.String("queue", b.cfg.Queue),
		zap.Int("messages", len(held)-len(rest)))
	return rest, nil
}

// heldCopy is the copy of a held delivery re-published to the ledger
// queue (see the comment at the top of this file).
func (b *Broker) heldCopy(it *item) Publication {
	d := it.d
	h := map[string]any{}
	for k, v := range d.Headers {
		h[k] = v
	}
	delete(h, "x-delivery-count") // the broker's, for the original
	exchange, key := origin(d)
	h[HeaderOriginalExchange] = exchange
	h[HeaderOriginalRouting] = key
	h[HeaderHeld] = time.Now().UTC().Format(time.RFC3339Nano)
	ts := ""
	if t := heldTimestamp(d); !t.IsZero() {
		ts = t.UTC().Format(time.RFC3339Nano)
	}
	h[HeaderHeldTimestamp] = ts
	return Publication{
		Exchange: "", RoutingKey: b.cfg.Queue, MessageID: d.MessageId, CorrelationID: d.CorrelationId,
		Type: d.Type, ContentType: d.ContentType, Body: d.Body, Headers: h, Timestamp: d.Timestamp, Verbatim: true,
	}
}

func isHeldCopy(d amqp.Delivery) bool {
	_, ok := d.Headers[HeaderHeld]
	return ok && d.Exchange == ""
}

// origin is the exchange and routing key a delivery came through: a held
// copy's are its original's.
func origin(d amqp.Delivery) (exchange, key string) {
	if isHeldCopy(d) {
		ex, _ := d.Headers[HeaderOriginalExchange].(string)
		rk, _ := d.Headers[HeaderOriginalRouting].(string)
		return ex, rk
	}
	return d.Exchange, d.RoutingKey
}

// heldTimestamp is the timestamp property of a delivery's original.
func heldTimestamp(d amqp.Delivery) time.Time {
	if !isHeldCopy(d) {
		return d.Timestamp
	}
	s, _ := d.Headers[HeaderHeldTimestamp].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
