package rabbitmq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

// Action is what happens to a delivery after the handler saw it.
type Action int

// Actions.
const (
	// Ack: processed (or a harmless duplicate).
	Ack Action = iota
	// DeadLetter: cannot ever be processed; parked in `<queue>_error` with
	// the reason and error in headers, then acked.
	DeadLetter
	// Skip: deliberately not processed; parked in `<queue>_skipped`.
	Skip
	// Retry: a failure that may pass (a handler bug, a park that failed);
	// nacked with requeue after RetryDelay, dead-lettered at DeliveryLimit
	// deliveries (see limitDeliveries).
	Retry
	// Wait: the store is unavailable. The delivery is not nacked and its
	// deliveries are not counted: it is held unacked and handed to the
	// handler again, with back-off, until it is stored; consuming pauses
	// meanwhile (see Broker.Paused).
	Wait
)

func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case DeadLetter:
		return "dead-letter"
	case Skip:
		return "skip"
	case Retry:
		return "retry"
	case Wait:
		return "wait"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Verdict is the handler's decision for one message. Reason should be a
// short stable phrase (it labels metrics); Err carries the detail.
type Verdict struct {
	Action Action
	Reason string
	Err    error
}

// BatchHandler handles a batch and returns one Verdict per message, in
// order. It must be idempotent: a message may be delivered again.
type BatchHandler func(ctx context.Context, msgs []Message) []Verdict

// Reasons the adapter itself uses.
const (
	ReasonMalformed     = "malformed"
	ReasonUnknownType   = "unknown type"
	ReasonDeliveryLimit = "delivery limit"
	ReasonHandlerPanic  = "handler panic"
)

// Header names written on parked messages.
const (
	HeaderFaultMessage     = "MT-Fault-Message"
	HeaderFaultException   = "MT-Fault-ExceptionType"
	HeaderFaultTimestamp   = "MT-Fault-Timestamp"
	HeaderFaultInput       = "MT-Fault-InputAddress"
	HeaderReason           = "MT-Reason"
	HeaderHostMachine      = "MT-Host-MachineName"
	HeaderLedgerReason     = "x-ledger-reason"
	HeaderOriginalExchange = "x-ledger-original-exchange"
	HeaderOriginalRouting  = "x-ledger-original-routing-key"
	HeaderOriginalQueue    = "x-ledger-first-death-queue"
	HeaderDeathReason      = "x-ledger-first-death-reason"
	HeaderDeliveryCount    = "x-ledger-delivery-count"
	HeaderEnvelopeID       = "x-ledger-envelope-id" // the envelope id of a parked message whose AMQP message_id was empty
)

type item struct {
	d       amqp.Delivery
	msg     Message
	verdict Verdict
	decoded bool
	count   int // deliveries counted by limitDeliveries (0: not counted)
}

// Consume delivers batches to handler until ctx is done (then it returns
// nil) or the Broker is closed (ErrClosed). Across connection losses it
// waits, reconsumes on the new connection (after the topology is declared
// again) and carries on; unacked deliveries come back from the broker.
func (b *Broker) Consume(ctx context.Context, handler BatchHandler) error {
	if handler == nil {
		return errors.New("consume: nil handler")
	}
	delay := b.cfg.ReconnectMin
	for {
		s, err := b.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", b.cfg.Queue, err)
		}
		got, err := b.consumeOn(ctx, s, handler)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return fmt.Errorf("consume %s: %w", b.cfg.Queue, err)
		}
		if got {
			delay = b.cfg.ReconnectMin
		}
		b.log.Warn("consumer interrupted, resuming", zap.String("queue", b.cfg.Queue), zap.Duration("backoff", delay), zap.Error(err))
		if isCode(err, amqp.NotFound) {
			b.mu.Lock()
			declared := b.declared
			b.mu.Unlock()
			if declared {
				if derr := b.declareOn(ctx, s); derr != nil {
					b.log.Warn("redeclare topology", zap.Error(derr))
				}
			}
		}
		if err := sleep(ctx, b.ctx, delay); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", b.cfg.Queue, err)
		}
		delay = min(2*delay, b.cfg.ReconnectMax)
	}
}

// consumeOn runs one consumer channel until it ends; got says whether any
// delivery arrived.
func (b *Broker) consumeOn(ctx context.Context, s *session, handler BatchHandler) (got bool, err error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer func() {
		if !ch.IsClosed() {
			_ = ch.Close() // unacked deliveries return to the queue
		}
		b.unpauseQuietly() // what it held is back in the queue
	}()
	if err := ch.Qos(b.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("qos: %w", err)
	}
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := ch.Consume(b.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume: %w", err)
	}
	b.log.Info("consuming", zap.String("queue", b.cfg.Queue), zap.Int("prefetch", b.cfg.Prefetch))
	retryDelay := b.cfg.RetryDelay
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	batch := make([]item, 0, b.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case d, ok := <-deliveries:
			if !ok {
				return got, channelErr(closes)
			}
			got = true
			batch = append(batch, item{d: d})
		}
		open := true
		timer.Reset(b.cfg.BatchWait)
	gather:
		for len(batch) < b.cfg.BatchSize {
			select {
			case d, ok := <-deliveries:
				if !ok {
					open = false
					break gather
				}
				batch = append(batch, item{d: d})
			case <-timer.C:
				break gather
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !open {
			return got, channelErr(closes) // the broker redelivers the batch
		}
		retried, err := b.process(ctx, ch, deliveries, closes, batch, handler, retryDelay)
		if err != nil {
			return got, err
		}
		if retried {
			retryDelay = min(2*retryDelay, b.cfg.RetryDelayMax)
		} else {
			retryDelay = b.cfg.RetryDelay
		}
	}
}

func channelErr(closes chan *amqp.Error) error {
	select {
	case err, ok := <-closes:
		if ok && err != nil {
			return err
		}
	case <-time.After(100 * time.Millisecond):
	}
	return errors.New("delivery channel closed")
}

// process decodes a batch, hands the decodable to the handler, parks what
// must be parked, acks and nacks; what must wait for the store is held
// (see hold).
func (b *Broker) process(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery, closes chan *amqp.Error, batch []item, handler BatchHandler, retryDelay time.Duration) (bool, error) {
	received := time.Now()
	for i := range batch {
		b.decode(&batch[i])
	}
	b.classify(ctx, handler, batch)
	retried, held, err := b.settle(ctx, ch, batch, retryDelay)
	if err != nil {
		return retried, err
	}
	if len(held) == 0 {
		b.resume()
		return retried, nil
	}
	return retried, b.hold(ctx, ch, deliveries, closes, held, handler, received)
}

// decode decodes a delivery once; what cannot be decoded gets its final
// verdict here.
func (b *Broker) decode(it *item) {
	m, err := b.dec.Decode(fromAMQP(it.d))
	it.msg = m
	switch {
	case errors.Is(err, ErrUnknownType):
		it.verdict = Verdict{Action: Skip, Reason: ReasonUnknownType, Err: err}
	case err != nil:
		it.verdict = Verdict{Action: DeadLetter, Reason: ReasonMalformed, Err: err}
	default:
		it.decoded = true
	}
	b.obs.OnConsumed(m.Type)
}

// classify runs the handler on the decoded items and applies the ledger's
// delivery limit.
func (b *Broker) classify(ctx context.Context, handler BatchHandler, items []item) {
	var msgs []Message
	var idx []int
	for i := range items {
		if items[i].decoded {
			msgs = append(msgs, items[i].msg)
			idx = append(idx, i)
		}
	}
	if len(msgs) > 0 {
		verdicts := b.callHandler(ctx, handler, msgs)
		for k, i := range idx {
			items[i].verdict = verdicts[k]
		}
	}
	b.limitDeliveries(items)
}

// settle parks, acks and nacks every item but those to Wait, which it
// returns (in delivery order, still unacked). When nothing waits, Retry
// items are held for retryDelay before the nack; when something waits the
// hold paces the redelivery instead, since nothing is read meanwhile.
// Every unsettled delivery of the channel is in items, in tag order.
func (b *Broker) settle(ctx context.Context, ch *amqp.Channel, items []item, retryDelay time.Duration) (retried bool, waits []item, err error) {
	// Park first: a message is acked only once its copy is confirmed.
	var pubs []Publication
	var parked []int
	for i := range items {
		if a := items[i].verdict.Action; a == DeadLetter || a == Skip {
			pubs = append(pubs, b.parking(&items[i]))
			parked = append(parked, i)
		}
	}
	if len(pubs) > 0 {
		if err := b.Publish(ctx, pubs); err != nil {
			var perr *PublishError
			if !errors.As(err, &perr) {
				// Connection trouble or shutdown: leave them unacked; they
				// come back and are parked then.
				return false, nil, fmt.Errorf("park %d message(s): %w", len(pubs), err)
			}
			failed := map[string]bool{}
			for _, f := range perr.Failures {
				failed[f.MessageID] = true
			}
			for k, i := range parked {
				if failed[pubs[k].MessageID] {
					b.log.Error("park failed, requeueing", zap.String("queue", pubs[k].RoutingKey), zap.Error(err))
					items[i].verdict = Verdict{Action: Retry, Reason: "park failed", Err: err}
				}
			}
		}
		for _, i := range parked {
			if v := items[i].verdict; v.Action != Retry {
				b.obs.OnDeadLettered(v.Reason)
				b.log.Warn("message parked", zap.String("action", v.Action.String()), zap.String("reason", v.Reason),
					zap.String("message_id", items[i].msg.MessageID), zap.String("type", items[i].msg.Type),
					zap.String("exchange", items[i].msg.Exchange), zap.Error(v.Err))
			}
		}
	}

	// Everything before items is settled, so a multiple ack up to the last
	// tag of an all-ack prefix touches only items.
	unsettled := func(a Action) bool { return a == Retry || a == Wait }
	n := 0
	for n < len(items) && !unsettled(items[n].verdict.Action) {
		n++
	}
	if n > 0 {
		if err := ch.Ack(items[n-1].d.DeliveryTag, n > 1); err != nil {
			return false, nil, fmt.Errorf("ack: %w", err)
		}
	}
	var retries []int
	for i := n; i < len(items); i++ {
		switch items[i].verdict.Action {
		case Retry:
			retries = append(retries, i)
		case Wait:
			waits = append(waits, items[i])
		default:
			if err := ch.Ack(items[i].d.DeliveryTag, false); err != nil {
				return false, nil, fmt.Errorf("ack: %w", err)
			}
		}
	}
	if len(retries) == 0 {
		return false, waits, nil
	}
	first := items[retries[0]]
	if len(waits) == 0 {
		b.log.Warn("retrying messages later", zap.Int("messages", len(retries)), zap.Duration("delay", retryDelay),
			zap.String("reason", first.verdict.Reason), zap.Error(first.verdict.Err))
		// Hold them before requeueing: a failing handler must not burn the
		// delivery limit in a tight loop. On shutdown the channel close
		// requeues them.
		if err := sleep(ctx, b.ctx, retryDelay); err != nil {
			return true, nil, err
		}
	} else {
		b.log.Warn("retrying messages later", zap.Int("messages", len(retries)),
			zap.String("reason", first.verdict.Reason), zap.Error(first.verdict.Err))
	}
	// One by one: held Wait deliveries may sit between them.
	for _, i := range retries {
		if err := ch.Nack(items[i].d.DeliveryTag, false, true); err != nil {
			return true, nil, fmt.Errorf("nack: %w", err)
		}
		b.obs.OnRequeued()
	}
	return true, waits, nil
}

// callHandler runs the handler; a panic or a wrong number of verdicts is a
// bug, retried (bounded by the delivery limit) rather than acked.
func (b *Broker) callHandler(ctx context.Context, handler BatchHandler, msgs []Message) (verdicts []Verdict) {
	retryAll := func(reason string, err error) []Verdict {
		vs := make([]Verdict, len(msgs))
		for i := range vs {
			vs[i] = Verdict{Action: Retry, Reason: reason, Err: err}
		}
		return vs
	}
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("handler panic: %v", r)
			b.log.Error("handler panicked", zap.Error(err), zap.Stack("stack"))
			verdicts = retryAll(ReasonHandlerPanic, err)
		}
	}()
	verdicts = handler(ctx, msgs)
	if len(verdicts) != len(msgs) {
		err := fmt.Errorf("handler returned %d verdicts for %d messages", len(verdicts), len(msgs))
		b.log.Error("handler contract broken", zap.Error(err))
		return retryAll("handler contract", err)
	}
	return verdicts
}

// limitDeliveries is the ledger's own delivery limit, on every queue type:
// a Retry verdict at the limit-th delivery becomes a dead letter
// (ReasonDeliveryLimit), parked with MassTransit's fault headers. The limit
// is DeliveryLimit, or the queue's x-delivery-limit when that is lower (a
// queue declared earlier with another one): a quorum queue dead-letters a
// message only once it was returned more than x-delivery-limit times, so
// parking at the limit-th delivery comes one delivery before the broker's
// own limit strikes, whose copies carry none of those headers. A classic
// queue has no limit and would redeliver forever. The count is the
// broker's (x-delivery-count) when it keeps one, the ledger's own (Retry
// verdicts per message id, in this process) otherwise, whichever is
// higher. Wait verdicts never count.
func (b *Broker) limitDeliveries(items []item) {
	limit := b.deliveryLimit()
	b.attemptsMu.Lock()
	defer b.attemptsMu.Unlock()
	for i := range items {
		it := &items[i]
		key := attemptKey(it)
		switch it.verdict.Action {
		case Wait:
			continue
		case Retry:
		default:
			delete(b.attempts, key)
			continue
		}
		b.attempts[key]++
		count := max(b.attempts[key], it.msg.DeliveryCount)
		it.count = count
		if count >= limit {
			delete(b.attempts, key)
			it.verdict = Verdict{Action: DeadLetter, Reason: ReasonDeliveryLimit,
				Err: fmt.Errorf("delivered %d times (limit %d): %w", count, limit, it.verdict.Err)}
		}
	}
	if len(b.attempts) > 100_000 {
		clear(b.attempts) // bounded memory; the broker's own limit still stands
	}
}

// deliveryLimit is the delivery at which the ledger parks a message that
// keeps failing: DeliveryLimit, or the ledger queue's own x-delivery-limit
// as the last declaration found it, whichever is lower.
func (b *Broker) deliveryLimit() int {
	b.mu.Lock()
	q := b.queueInfo.DeliveryLimit
	b.mu.Unlock()
	if q > 0 && q < b.cfg.DeliveryLimit {
		return q
	}
	return b.cfg.DeliveryLimit
}

// attemptKey identifies a message across deliveries: its id, else a hash
// of what it carries.
func attemptKey(it *item) string {
	if it.msg.MessageID != "" {
		return it.msg.MessageID
	}
	if it.d.MessageId != "" {
		return it.d.MessageId
	}
	h := sha256.New()
	h.Write([]byte(it.d.Exchange))
	h.Write([]byte{0})
	h.Write([]byte(it.d.Type))
	h.Write([]byte{0})
	h.Write(it.d.Body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// parking builds the copy of a delivery for `<queue>_error` or
// `<queue>_skipped` as MassTransit's RabbitMQ transport moves one: to the
// exchange named like the queue (declareParking binds it), with the
// original routing key, body and properties, MassTransit's host headers,
// for `_error` its fault headers (faultHeaders), and the ledger's own.
func (b *Broker) parking(it *item) Publication {
	d, v := it.d, it.verdict
	target, death := domain.ErrorQueue(b.cfg.Queue), "rejected"
	if v.Action == Skip {
		target, death = domain.SkippedQueue(b.cfg.Queue), "skipped"
	}
	h := map[string]any{}
	for k, val := range d.Headers {
		h[k] = val
	}
	deliveries := max(it.count, it.msg.DeliveryCount, 1)
	now := time.Now()
	faultHeaders(h, it, inputAddress(b.cfg.URL, b.cfg.Queue), deliveries, now)
	h[HeaderLedgerReason] = v.Reason
	h[HeaderLedgerParkedAt] = now.UTC().Format(time.RFC3339Nano)
	exchange, key := origin(d)
	h[HeaderOriginalExchange] = exchange
	h[HeaderOriginalRouting] = key
	h[HeaderOriginalQueue] = b.cfg.Queue
	h[HeaderDeathReason] = death
	h[HeaderDeliveryCount] = int64(deliveries)
	delete(h, HeaderHeld) // a parked copy is no held copy: its own exchange headers say where it came from
	delete(h, HeaderHeldTimestamp)
	if d.MessageId == "" && it.msg.MessageID != "" {
		h[HeaderEnvelopeID] = it.msg.MessageID // the envelope's id, for finding it again
	}
	// The copy keeps the original's properties as they were (an empty
	// content type or message id stays empty), so re-driving it from the
	// parking queue is judged exactly as the original was.
	return Publication{
		Exchange: target, RoutingKey: key, MessageID: d.MessageId, CorrelationID: d.CorrelationId,
		Type: d.Type, ContentType: d.ContentType, Body: d.Body, Headers: h, Timestamp: d.Timestamp, Verbatim: true,
	}
}

func fromAMQP(d amqp.Delivery) Delivery {
	exchange, key := origin(d)
	ts := d.Timestamp
	if isHeldCopy(d) {
		// A copy the ledger re-published while the store was down (see
		// hold) is judged as its original was.
		ts = heldTimestamp(d)
	}
	return Delivery{
		ContentType: d.ContentType, Type: d.Type, MessageID: d.MessageId, CorrelationID: d.CorrelationId,
		Exchange: exchange, RoutingKey: key, Headers: fromTable(d.Headers),
		Timestamp: ts, Redelivered: d.Redelivered, Body: d.Body,
	}
}

func fromTable(t amqp.Table) map[string]any {
	if t == nil {
		return nil
	}
	m := make(map[string]any, len(t))
	for k, v := range t {
		m[k] = fromField(v)
	}
	return m
}

func fromField(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		return fromTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromField(e)
		}
		return out
	}
	return v
}
