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

// Dead-letter tooling: browse `<queue>_error` and `<queue>_skipped`, and
// send chosen messages back where they came from.
//
// AMQP has no non-destructive read of a queue: a browse takes messages
// with basic.get (manual ack) on a private channel and hands them back
// with a requeue. Where a requeued message goes depends on the queue: a
// classic queue puts it back in its place; a quorum queue (RabbitMQ 3.10,
// as the topology declares `_error` and `_skipped`) puts it behind the
// rest, and one requeue of more than 32 messages, or requeues the client
// merges while it waits on the log, come back shuffled. So a browse
// always takes every message the queue held when it began (a limit only
// bounds what it returns), and hands them back in chunks of at most 32,
// each after the broker counted the previous one back as ready: the queue
// keeps its order on either kind. Limits: a message parked while a browse
// runs can end up ahead of the browsed ones on a quorum queue; a browse
// of a large queue takes about a millisecond a message; a connection lost
// in the middle of one returns what it held in whatever order the broker
// chooses. Nothing is ever lost or duplicated by a browse.
//
// Each browse counts as a delivery on a quorum queue (x-delivery-count
// grows). The ledger declares the dead-letter queues without a delivery
// limit; a queue given one by a policy (RabbitMQ 4 gives quorum queues a
// default of 20) would drop a message browsed that many times.

// Which dead-letter queue, for DeadLetters and Redrive: DeadLetterError
// and DeadLetterSkipped name `<queue>_error` and `<queue>_skipped`; any
// other value is taken as a queue name.
const (
	DeadLetterError   = "error"
	DeadLetterSkipped = "skipped"
)

// DefaultDeadLetterLimit is how many messages DeadLetters returns when
// asked for 0 or fewer.
const DefaultDeadLetterLimit = 100

// Who dead-lettered a message (DeadLetterMessage.By).
const (
	ByLedger = "ledger" // parked by a ledger consumer, with fault headers
	ByBroker = "broker" // dead-lettered by the broker (x-death), e.g. at the queue's delivery limit
)

// Errors of one message in a Redrive result.
var (
	ErrDeadLetterNotFound = errors.New("no such message in the dead-letter queue")
	// ErrNoOrigin: the message carries neither the ledger's
	// x-ledger-original-exchange nor the broker's x-death, so where it
	// came from is unknown.
	ErrNoOrigin = errors.New("dead letter names no exchange it came from")
)

// DeadLetterMessage is one message of a dead-letter queue as browsed:
// what the operator needs to judge it, and all of it (properties, headers,
// body) to show or send back. (Not "DeadLetter": that is an Action.)
type DeadLetterMessage struct {
	Queue    string `json:"queue"`    // the dead-letter queue holding it
	Position int    `json:"position"` // 0-based place in that queue when browsed
	// MessageID is the AMQP message id, or when that was empty the
	// envelope's id the ledger recorded (x-ledger-envelope-id).
	MessageID  string    `json:"messageId"`
	EnvelopeID string    `json:"envelopeId,omitempty"` // x-ledger-envelope-id as parked
	Type       string    `json:"type,omitempty"`       // AMQP type property
	Time       time.Time `json:"time"`                 // when it was dead-lettered (MT-Fault-Timestamp or x-death time); zero if unknown
	// Reason: x-ledger-reason, else MT-Reason, else the broker's x-death
	// reason (delivery_limit, rejected, expired, maxlen).
	Reason string `json:"reason"`
	// Detail: MT-Fault-Message (the error), or for a broker dead-letter
	// which queue dead-lettered it after how many deaths.
	Detail string `json:"detail,omitempty"`
	By     string `json:"by,omitempty"` // ByLedger, ByBroker or empty when unknown
	// DeliveryCount: deliveries to the ledger before it parked it
	// (x-ledger-delivery-count). Not the x-delivery-count a quorum
	// dead-letter queue stamps: that counts browses.
	DeliveryCount int64 `json:"deliveryCount,omitempty"`
	// Exchange and RoutingKey it came from, where Redrive sends it:
	// x-ledger-original-*, or the newest x-death entry. HasOrigin is false
	// when the message names neither.
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routingKey"`
	HasOrigin  bool   `json:"hasOrigin"`

	// The message's AMQP properties as they are in the dead-letter queue.
	ContentType     string         `json:"contentType,omitempty"`
	ContentEncoding string         `json:"contentEncoding,omitempty"`
	CorrelationID   string         `json:"correlationId,omitempty"`
	ReplyTo         string         `json:"replyTo,omitempty"`
	Expiration      string         `json:"expiration,omitempty"`
	Timestamp       time.Time      `json:"timestamp,omitzero"`
	AppID           string         `json:"appId,omitempty"`
	UserID          string         `json:"userId,omitempty"`
	DeliveryMode    uint8          `json:"deliveryMode,omitempty"`
	Priority        uint8          `json:"priority,omitempty"`
	Headers         map[string]any `json:"headers,omitempty"` // all of them, fault headers included
	Body            []byte         `json:"body"`
}

// Redriven is the outcome for one message of a Redrive.
type Redriven struct {
	MessageID  string `json:"messageId"`
	Position   int    `json:"position"` // in the dead-letter queue when the redrive began; -1 when not found
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routingKey"`
	// DryRun: it would have been sent; nothing was.
	DryRun bool `json:"dryRun,omitempty"`
	// Err: not sent back; it stays in the dead-letter queue.
	// ErrDeadLetterNotFound, ErrNoOrigin, or the broker's refusal
	// (ErrReturned, ErrNoExchange, ErrNacked) wrapped with detail.
	Err error `json:"-"`
}

// DeadLetterQueue resolves which (DeadLetterError, DeadLetterSkipped or a
// queue name; empty means DeadLetterError) to a queue name.
func (b *Broker) DeadLetterQueue(which string) string {
	switch which {
	case "", DeadLetterError:
		return domain.ErrorQueue(b.cfg.Queue)
	case DeadLetterSkipped:
		return domain.SkippedQueue(b.cfg.Queue)
	}
	return which
}

// DeadLetterDepth returns how many messages the queue holds ready
// (messages held by a browse at that moment are not counted).
func (b *Broker) DeadLetterDepth(ctx context.Context, queue string) (int, error) {
	q := b.DeadLetterQueue(queue)
	s, err := b.acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead letters %s: %w", q, err)
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("dead letters %s: open channel: %w", q, err)
	}
	defer closeChannel(ch)
	info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return 0, queueErr(q, err)
	}
	return info.Messages, nil
}

// DeadLetters returns up to limit messages from the head of the queue
// (DeadLetterError, DeadLetterSkipped or a queue name), oldest first, and
// leaves the queue as it was. It reads the whole queue (see the notes on
// browsing at the top of this file).
func (b *Broker) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetterMessage, error) {
	if limit <= 0 {
		limit = DefaultDeadLetterLimit
	}
	q := b.DeadLetterQueue(queue)
	var out []DeadLetterMessage
	err := b.walkDeadLetters(ctx, q, func(_ *walk, d amqp.Delivery, pos int) error {
		if len(out) < limit {
			out = append(out, toDeadLetter(q, pos, d))
		}
		return nil
	})
	return out, err
}

// FindDeadLetters returns every message of the queue whose message id or
// recorded envelope id is id, in queue order (a message parked twice is
// there twice). It reads the whole queue, leaving it as it was.
func (b *Broker) FindDeadLetters(ctx context.Context, queue, id string) ([]DeadLetterMessage, error) {
	q := b.DeadLetterQueue(queue)
	var out []DeadLetterMessage
	err := b.walkDeadLetters(ctx, q, func(_ *walk, d amqp.Delivery, pos int) error {
		if matches(d, map[string]bool{id: true}) != "" {
			out = append(out, toDeadLetter(q, pos, d))
		}
		return nil
	})
	return out, err
}

// Redrive sends the chosen messages of the queue (every one when all,
// else those whose message id or recorded envelope id is in ids) back to
// the exchange and routing key they came from, with their original
// properties and headers, less the fault headers (MT-Fault-*, MT-Reason,
// MT-Host-*, x-ledger-*, x-death, x-first-death-*, x-last-death-*,
// x-delivery-count). Each is published persistent-as-it-was, mandatory,
// and removed from the dead-letter queue only after the broker confirmed
// it; one the broker refuses stays, with the reason in its result. The
// others stay untouched and in order. dryRun sends nothing and removes
// nothing. The results come in queue order, then one per id not found.
// The error is for the call as a whole (connection, missing queue); the
// results gathered until then are returned with it.
func (b *Broker) Redrive(ctx context.Context, queue string, ids []string, all, dryRun bool) ([]Redriven, error) {
	q := b.DeadLetterQueue(queue)
	want := map[string]bool{}
	for _, id := range ids {
		if id != "" {
			want[id] = true
		}
	}
	if !all && len(want) == 0 {
		return nil, errors.New("redrive: no message ids given (or ask for all)")
	}
	found := map[string]bool{}
	var out []Redriven
	var rp *redrivePublisher
	defer func() {
		if rp != nil {
			rp.close()
		}
	}()
	err := b.walkDeadLetters(ctx, q, func(w *walk, d amqp.Delivery, pos int) error {
		id := messageIDOf(d)
		if !all {
			hit := matches(d, want)
			if hit == "" {
				return nil
			}
			found[hit] = true
		}
		dl := toDeadLetter(q, pos, d)
		r := Redriven{MessageID: id, Position: pos, Exchange: dl.Exchange, RoutingKey: dl.RoutingKey, DryRun: dryRun}
		switch {
		case !dl.HasOrigin:
			r.Err = ErrNoOrigin
		case dryRun:
		default:
			if rp == nil {
				rp = &redrivePublisher{b: b, s: w.s}
			}
			if perr := rp.publish(ctx, dl.Exchange, dl.RoutingKey, redrivePublishing(d)); perr != nil {
				if !isRefusal(perr) {
					return perr // connection trouble: stop; it stays
				}
				r.Err = perr
				break
			}
			if aerr := w.ack(d.DeliveryTag); aerr != nil {
				// Sent and confirmed but still in the dead-letter queue: a
				// redrive of it again is harmless (the ledger de-duplicates).
				return fmt.Errorf("redriven %s but not removed from %s: %w", id, q, aerr)
			}
			b.log.Info("dead letter redriven", zap.String("queue", q), zap.String("message_id", id),
				zap.String("exchange", dl.Exchange), zap.String("routing_key", dl.RoutingKey))
		}
		out = append(out, r)
		return nil
	})
	if !all {
		for _, id := range ids {
			if id != "" && !found[id] {
				out = append(out, Redriven{MessageID: id, Position: -1, Err: fmt.Errorf("%s: %w", id, ErrDeadLetterNotFound)})
				found[id] = true // once per id
			}
		}
	}
	return out, err
}

// walks are serialized in a process: a second browse while one holds the
// messages would see a queue with a gap.
var walkMu sync.Mutex

// walk holds the messages got from one dead-letter queue until finish
// hands back those not acked.
type walk struct {
	s     *session
	ch    *amqp.Channel
	queue string
	held  []uint64 // delivery tags got and not settled, ascending
}

// returnChunk is the most messages one requeue hands back to a quorum
// queue in order (see the notes at the top).
const returnChunk = 32

// walkDeadLetters gets every message q held when the walk began, in order,
// and calls visit for each; visit may ack one (after whatever must come
// first was confirmed). The rest go back, in order.
func (b *Broker) walkDeadLetters(ctx context.Context, q string, visit func(w *walk, d amqp.Delivery, pos int) error) error {
	walkMu.Lock()
	defer walkMu.Unlock()
	s, err := b.acquire(ctx)
	if err != nil {
		return fmt.Errorf("dead letters %s: %w", q, err)
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("dead letters %s: open channel: %w", q, err)
	}
	w := &walk{s: s, ch: ch, queue: q}
	defer func() {
		w.finish(b.log)
		closeChannel(ch)
	}()
	info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return queueErr(q, err)
	}
	// Only what was there at the start: messages parked meanwhile wait
	// for the next walk, and a walk always ends.
	for pos := 0; pos < info.Messages; pos++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(q, false)
		if err != nil {
			return fmt.Errorf("dead letters %s: get: %w", q, err)
		}
		if !ok {
			break // someone else took the rest
		}
		w.held = append(w.held, d.DeliveryTag)
		if err := visit(w, d, pos); err != nil {
			return err
		}
	}
	return nil
}

func (w *walk) ack(tag uint64) error {
	if err := w.ch.Ack(tag, false); err != nil {
		return err
	}
	for i, t := range w.held {
		if t == tag {
			w.held = append(w.held[:i], w.held[i+1:]...)
			break
		}
	}
	return nil
}

// finish hands back the messages not acked, at most returnChunk per
// requeue, each chunk once the broker counts the previous one back. It
// runs even when the walk's context ended: closing the channel instead
// would requeue them all at once, shuffled on a quorum queue.
func (w *walk) finish(log *zap.Logger) {
	if len(w.held) == 0 || w.ch.IsClosed() {
		return // a closed channel has returned them already
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(w.held) > 0 {
		k := min(returnChunk, len(w.held))
		before, err := w.ch.QueueDeclarePassive(w.queue, true, false, false, false, nil)
		if err != nil {
			return // the channel is gone: the broker took them back
		}
		// Multiple: every unsettled tag up to this one, which are exactly
		// the first k held.
		if err := w.ch.Nack(w.held[k-1], true, true); err != nil {
			return
		}
		w.held = w.held[k:]
		// Wait for the last chunk too: whoever looks next must find them
		// all back.
		for delay := 200 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
			info, err := w.ch.QueueDeclarePassive(w.queue, true, false, false, false, nil)
			if err != nil {
				return
			}
			if info.Messages >= before.Messages+k {
				break
			}
			if time.Now().After(deadline) {
				// Never hold them for order's sake: carry on; the order of
				// the rest may differ.
				log.Warn("dead-letter queue slow to take messages back; their order may change", zap.String("queue", w.queue))
				deadline = time.Now().Add(time.Hour)
				break
			}
			time.Sleep(delay)
		}
	}
}

// redrivePublisher publishes on its own confirm channel, one message at a
// time, so a return or a missing exchange is known to be that message's.
type redrivePublisher struct {
	b       *Broker
	s       *session
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

func (p *redrivePublisher) open() error {
	if p.ch != nil && !p.ch.IsClosed() {
		return nil
	}
	ch, err := p.s.conn.Channel()
	if err != nil {
		return fmt.Errorf("open publisher channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		closeChannel(ch)
		return fmt.Errorf("confirm mode: %w", err)
	}
	p.ch = ch
	// The library blocks its connection's reader on a full notify
	// channel. One publish at a time, each draining what an earlier one
	// given up on left, never fills this one.
	p.returns = ch.NotifyReturn(make(chan amqp.Return, 16))
	p.closes = ch.NotifyClose(make(chan *amqp.Error, 1))
	return nil
}

func (p *redrivePublisher) close() {
	if p.ch != nil {
		closeChannel(p.ch)
	}
}

// publish sends one message and waits for the broker's confirm. A
// refusal comes back wrapping ErrReturned, ErrNacked or ErrNoExchange;
// anything else is connection trouble.
func (p *redrivePublisher) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	if err := p.open(); err != nil {
		return err
	}
	for len(p.returns) > 0 {
		<-p.returns // of an earlier publish given up on
	}
	dc, err := p.ch.PublishWithDeferredConfirm(exchange, key, true, false, msg)
	if err != nil {
		return fmt.Errorf("publish to %q/%q: %w", exchange, key, err)
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	// The library hands a return over before it processes the ack that
	// follows it.
	select {
	case r, ok := <-p.returns:
		if !ok {
			break // closed with the channel
		}
		return fmt.Errorf("%w: %d %s (exchange %q, routing key %q)", ErrReturned, r.ReplyCode, r.ReplyText, exchange, key)
	default:
	}
	if dc.Acked() {
		return nil
	}
	if !p.ch.IsClosed() {
		return fmt.Errorf("%w (exchange %q)", ErrNacked, exchange)
	}
	// The channel closed under the publish: a missing exchange closes it
	// with 404; anything else is connection trouble.
	var cerr *amqp.Error
	select {
	case cerr = <-p.closes:
	case <-time.After(time.Second):
	}
	if cerr != nil && cerr.Code == amqp.NotFound {
		return fmt.Errorf("%w: %q: %s", ErrNoExchange, exchange, cerr.Reason)
	}
	if cerr != nil {
		return fmt.Errorf("publish to %q: channel closed: %w", exchange, cerr)
	}
	return fmt.Errorf("publish to %q: channel closed", exchange)
}

func isRefusal(err error) bool {
	return errors.Is(err, ErrReturned) || errors.Is(err, ErrNacked) || errors.Is(err, ErrNoExchange)
}

// redrivePublishing is the message as it was first published: every
// property, the headers less the fault ones.
func redrivePublishing(d amqp.Delivery) amqp.Publishing {
	var h amqp.Table
	for k, v := range d.Headers {
		if isFaultHeader(k) {
			continue
		}
		if h == nil {
			h = amqp.Table{}
		}
		h[k] = v
	}
	return amqp.Publishing{
		Headers: h, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, UserId: d.UserId, AppId: d.AppId, Body: d.Body,
	}
}

// isFaultHeader: written by whoever dead-lettered the message (MassTransit,
// the ledger, the broker), not by its sender.
func isFaultHeader(k string) bool {
	l := strings.ToLower(k)
	for _, p := range []string{"mt-fault-", "mt-host-", "x-ledger-", "x-first-death-", "x-last-death-"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return l == "mt-reason" || l == "x-death" || l == "x-delivery-count"
}

// messageIDOf is the id the tools show and match: the AMQP message id, or
// the envelope id the ledger recorded when that was empty.
func messageIDOf(d amqp.Delivery) string {
	if d.MessageId != "" {
		return d.MessageId
	}
	s, _ := d.Headers[HeaderEnvelopeID].(string)
	return s
}

// matches returns the id of want that names d (its message id or its
// recorded envelope id), or "".
func matches(d amqp.Delivery, want map[string]bool) string {
	if d.MessageId != "" && want[d.MessageId] {
		return d.MessageId
	}
	if s, _ := d.Headers[HeaderEnvelopeID].(string); s != "" && want[s] {
		return s
	}
	return ""
}

func toDeadLetter(q string, pos int, d amqp.Delivery) DeadLetterMessage {
	env, _ := d.Headers[HeaderEnvelopeID].(string)
	dl := DeadLetterMessage{
		Queue: q, Position: pos, MessageID: messageIDOf(d), EnvelopeID: env, Type: d.Type,
		ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, CorrelationID: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, Timestamp: d.Timestamp, AppID: d.AppId, UserID: d.UserId,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, Headers: fromTable(d.Headers), Body: d.Body,
	}
	str := func(k string) string { s, _ := d.Headers[k].(string); return s }
	// Where it came from: the ledger records it on what it parks (and on
	// what it holds back in the queue); the broker in x-death.
	if ex, ok := d.Headers[HeaderOriginalExchange].(string); ok {
		dl.Exchange, dl.RoutingKey, dl.HasOrigin = ex, str(HeaderOriginalRouting), true
	}
	dl.Reason = str(HeaderLedgerReason)
	if dl.Reason == "" {
		dl.Reason = str(HeaderReason)
	}
	dl.Detail = str(HeaderFaultMessage)
	if dl.Detail == "" {
		dl.Detail = str(HeaderLedgerDetail) // `_skipped` copies carry no fault headers
	}
	if dl.Reason != "" || dl.Detail != "" {
		dl.By = ByLedger
	}
	ts := str(HeaderFaultTimestamp)
	if ts == "" {
		ts = str(HeaderLedgerParkedAt)
	}
	if ts != "" {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			dl.Time = t
		}
	}
	if n, ok := asInt64(d.Headers[HeaderDeliveryCount]); ok {
		dl.DeliveryCount = n
	}
	if death, ok := newestDeath(d.Headers); ok && dl.By == "" {
		dl.By = ByBroker
		if ex, ok := death["exchange"].(string); ok && !dl.HasOrigin {
			dl.Exchange, dl.HasOrigin = ex, true
			if keys, ok := death["routing-keys"].([]any); ok && len(keys) > 0 {
				dl.RoutingKey, _ = keys[0].(string)
			}
		}
		reason, _ := death["reason"].(string)
		queue, _ := death["queue"].(string)
		count, _ := asInt64(death["count"])
		dl.Reason = reason
		dl.Detail = fmt.Sprintf("dead-lettered by the broker from %s: %s (%d time(s))", queue, reason, count)
		if t, ok := death["time"].(time.Time); ok {
			dl.Time = t
		}
	}
	if dl.Time.IsZero() {
		dl.Time = d.Timestamp
	}
	return dl
}

// newestDeath is the first x-death entry: the broker puts the latest
// dead-lettering first.
func newestDeath(h amqp.Table) (amqp.Table, bool) {
	deaths, ok := h["x-death"].([]any)
	if !ok || len(deaths) == 0 {
		return nil, false
	}
	t, ok := deaths[0].(amqp.Table)
	return t, ok
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

func queueErr(q string, err error) error {
	if isCode(err, amqp.NotFound) {
		return fmt.Errorf("dead letters %s: the queue does not exist (has a ledger declared its topology on this vhost?): %w", q, err)
	}
	return fmt.Errorf("dead letters %s: %w", q, err)
}

func closeChannel(ch *amqp.Channel) {
	if !ch.IsClosed() {
		_ = ch.Close()
	}
}
