package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	// Retry: transient failure (store unavailable); nacked with requeue
	// after RetryDelay, dead-lettered by the broker after DeliveryLimit.
	Retry
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
		retried, err := b.process(ctx, ch, batch, handler, retryDelay)
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

// process decodes, hands the decodable to the handler, parks what must be
// parked, then acks and nacks in delivery-tag order.
func (b *Broker) process(ctx context.Context, ch *amqp.Channel, batch []item, handler BatchHandler, retryDelay time.Duration) (bool, error) {
	var msgs []Message
	var idx []int
	for i := range batch {
		it := &batch[i]
		m, err := b.dec.Decode(fromAMQP(it.d))
		it.msg = m
		switch {
		case errors.Is(err, ErrUnknownType):
			it.verdict = Verdict{Action: Skip, Reason: ReasonUnknownType, Err: err}
		case err != nil:
			it.verdict = Verdict{Action: DeadLetter, Reason: ReasonMalformed, Err: err}
		default:
			it.decoded = true
			msgs = append(msgs, m)
			idx = append(idx, i)
		}
		b.obs.OnConsumed(m.Type)
	}
	if len(msgs) > 0 {
		verdicts := b.callHandler(ctx, handler, msgs)
		for k, i := range idx {
			batch[i].verdict = verdicts[k]
		}
	}
	if b.cfg.QueueType == QueueClassic {
		b.limitClassic(batch)
	}

	// Park first: a message is acked only once its copy is confirmed.
	var pubs []Publication
	var parked []int
	for i := range batch {
		if a := batch[i].verdict.Action; a == DeadLetter || a == Skip {
			pubs = append(pubs, b.parking(&batch[i]))
			parked = append(parked, i)
		}
	}
	if len(pubs) > 0 {
		if err := b.Publish(ctx, pubs); err != nil {
			var perr *PublishError
			if !errors.As(err, &perr) {
				// Connection trouble or shutdown: leave them unacked; they
				// come back and are parked then.
				return false, fmt.Errorf("park %d message(s): %w", len(pubs), err)
			}
			failed := map[string]bool{}
			for _, f := range perr.Failures {
				failed[f.MessageID] = true
			}
			for k, i := range parked {
				if failed[pubs[k].MessageID] {
					b.log.Error("park failed, requeueing", zap.String("queue", pubs[k].RoutingKey), zap.Error(err))
					batch[i].verdict = Verdict{Action: Retry, Reason: "park failed", Err: err}
				}
			}
		}
		for _, i := range parked {
			if v := batch[i].verdict; v.Action != Retry {
				b.obs.OnDeadLettered(v.Reason)
				b.log.Warn("message parked", zap.String("action", v.Action.String()), zap.String("reason", v.Reason),
					zap.String("message_id", batch[i].msg.MessageID), zap.String("type", batch[i].msg.Type),
					zap.String("exchange", batch[i].d.Exchange), zap.Error(v.Err))
			}
		}
	}

	// Everything before this batch is settled, so a multiple ack up to the
	// last tag of an all-ack prefix touches only this batch.
	n := 0
	for n < len(batch) && batch[n].verdict.Action != Retry {
		n++
	}
	if n > 0 {
		if err := ch.Ack(batch[n-1].d.DeliveryTag, n > 1); err != nil {
			return false, fmt.Errorf("ack: %w", err)
		}
	}
	var retries []int
	for i := n; i < len(batch); i++ {
		if batch[i].verdict.Action == Retry {
			retries = append(retries, i)
			continue
		}
		if err := ch.Ack(batch[i].d.DeliveryTag, false); err != nil {
			return false, fmt.Errorf("ack: %w", err)
		}
	}
	if len(retries) == 0 {
		return false, nil
	}
	first := batch[retries[0]]
	b.log.Warn("retrying messages later", zap.Int("messages", len(retries)), zap.Duration("delay", retryDelay),
		zap.String("reason", first.verdict.Reason), zap.Error(first.verdict.Err))
	// Hold them before requeueing: an outage must not burn the delivery
	// limit in a tight loop. On shutdown the channel close requeues them.
	if err := sleep(ctx, b.ctx, retryDelay); err != nil {
		return true, err
	}
	// Only retries are unsettled up to the last one now.
	if err := ch.Nack(batch[retries[len(retries)-1]].d.DeliveryTag, true, true); err != nil {
		return true, fmt.Errorf("nack: %w", err)
	}
	for range retries {
		b.obs.OnRequeued()
	}
	return true, nil
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

// limitClassic bounds Retry on classic queues, which keep no delivery
// count: attempts are counted here (per process) by message id.
func (b *Broker) limitClassic(batch []item) {
	b.attemptsMu.Lock()
	defer b.attemptsMu.Unlock()
	for i := range batch {
		it := &batch[i]
		id := it.msg.MessageID
		if id == "" {
			continue
		}
		if it.verdict.Action != Retry {
			delete(b.attempts, id)
			continue
		}
		b.attempts[id]++
		if b.attempts[id] >= b.cfg.DeliveryLimit {
			delete(b.attempts, id)
			it.verdict = Verdict{Action: DeadLetter, Reason: ReasonDeliveryLimit,
				Err: fmt.Errorf("retried %d times: %w", b.cfg.DeliveryLimit, it.verdict.Err)}
		}
	}
	if len(b.attempts) > 100_000 {
		clear(b.attempts)
	}
}

var hostname, _ = os.Hostname()

// parking builds the copy of a delivery for `<queue>_error` or
// `<queue>_skipped`: original body and properties, MassTransit's fault
// headers and the ledger's own.
func (b *Broker) parking(it *item) Publication {
	d, v := it.d, it.verdict
	target, mtReason, death := domain.ErrorQueue(b.cfg.Queue), "fault", "rejected"
	if v.Action == Skip {
		target, mtReason, death = domain.SkippedQueue(b.cfg.Queue), "skip", "skipped"
	}
	h := map[string]any{}
	for k, val := range d.Headers {
		h[k] = val
	}
	detail := v.Reason
	exType := "OrderLedger.HandlerFault"
	if v.Err != nil {
		detail = v.Err.Error()
	}
	switch {
	case errors.Is(v.Err, ErrUnknownType):
		exType = "OrderLedger.UnknownMessageType"
	case errors.Is(v.Err, ErrMalformed):
		exType = "OrderLedger.MalformedMessage"
	case v.Reason == ReasonDeliveryLimit:
		exType = "OrderLedger.DeliveryLimitExceeded"
	}
	h[HeaderFaultMessage] = detail
	h[HeaderFaultException] = exType
	h[HeaderFaultTimestamp] = time.Now().UTC().Format(time.RFC3339Nano)
	h[HeaderFaultInput] = b.cfg.Queue
	h[HeaderHostMachine] = hostname
	h[HeaderReason] = mtReason
	h[HeaderLedgerReason] = v.Reason
	h[HeaderOriginalExchange] = d.Exchange
	h[HeaderOriginalRouting] = d.RoutingKey
	h[HeaderOriginalQueue] = b.cfg.Queue
	h[HeaderDeathReason] = death
	h[HeaderDeliveryCount] = int64(it.msg.DeliveryCount)
	if d.MessageId == "" && it.msg.MessageID != "" {
		h[HeaderEnvelopeID] = it.msg.MessageID // the envelope's id, for finding it again
	}
	// The copy keeps the original's properties as they were (an empty
	// content type or message id stays empty), so re-driving it from the
	// parking queue is judged exactly as the original was.
	return Publication{
		Exchange: "", RoutingKey: target, MessageID: d.MessageId, CorrelationID: d.CorrelationId,
		Type: d.Type, ContentType: d.ContentType, Body: d.Body, Headers: h, Timestamp: d.Timestamp, Verbatim: true,
	}
}

func fromAMQP(d amqp.Delivery) Delivery {
	return Delivery{
		ContentType: d.ContentType, Type: d.Type, MessageID: d.MessageId, CorrelationID: d.CorrelationId,
		Exchange: d.Exchange, RoutingKey: d.RoutingKey, Headers: fromTable(d.Headers),
		Timestamp: d.Timestamp, Redelivered: d.Redelivered, Body: d.Body,
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
