package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

// DeclareTopology declares, idempotently: the unroutable exchange and
// queue (bounded in length and age); `<queue>_error` and
// `<queue>_skipped`; the ledger queue (quorum with a delivery limit and
// dead-lettering to `<queue>_error`, or classic);
// the inbound exchanges and their bindings to the ledger queue; the
// outbound exchanges with the alternate exchange; the consumer queues.
// After a reconnect the topology is declared again before the connection
// is used. A queue that exists already is kept as it is: the declaration
// finds out its type and arguments (QueueInfo for the ledger queue) and
// logs them. The first success starts the unroutable depth poller.
func (b *Broker) DeclareTopology(ctx context.Context) error {
	s, err := b.acquire(ctx)
	if err != nil {
		return fmt.Errorf("declare topology: %w", err)
	}
	if err := b.declareOn(ctx, s); err != nil {
		return err
	}
	b.mu.Lock()
	b.declared = true
	b.mu.Unlock()
	b.startUnroutableWatch()
	return nil
}

// QueueInfo returns what the last declaration found for the ledger queue
// (false before the first one).
func (b *Broker) QueueInfo() (QueueInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queueInfo
	q.Args = maps.Clone(q.Args)
	q.Differs = slices.Clone(q.Differs)
	return q, q.Name != ""
}

// noteLedgerQueue records the ledger queue as found and logs it, with
// what the ledger does about it, at start and whenever it changes.
func (b *Broker) noteLedgerQueue(info QueueInfo) {
	b.mu.Lock()
	prev := b.queueInfo
	b.queueInfo = info
	b.mu.Unlock()
	if prev.Name != "" && fmt.Sprint(prev.Type, prev.DeliveryLimit, prev.DeadLetter, prev.DeadLetterExchange, prev.DeadLetterRoutingKey) ==
		fmt.Sprint(info.Type, info.DeliveryLimit, info.DeadLetter, info.DeadLetterExchange, info.DeadLetterRoutingKey) {
		return
	}
	limit, dl := "none", "none"
	if info.DeliveryLimit > 0 {
		limit = strconv.Itoa(info.DeliveryLimit)
	}
	if info.DeadLetter {
		dl = fmt.Sprintf("exchange %q, routing key %q", info.DeadLetterExchange, info.DeadLetterRoutingKey)
	}
	errQ := domain.ErrorQueue(info.Name)
	var does string
	level := b.log.Info
	switch {
	case info.Type == "unknown":
		level = b.log.Warn
		does = fmt.Sprintf("the queue's type and delivery limit could not be read: the ledger counts deliveries itself and dead-letters to %s after delivery_limit (%d)", errQ, b.cfg.DeliveryLimit)
	case info.DeliveryLimit == 0:
		does = fmt.Sprintf("the broker keeps no delivery limit: the ledger counts deliveries itself and dead-letters to %s after delivery_limit (%d)", errQ, b.cfg.DeliveryLimit)
	case !info.DeadLetter:
		level = b.log.Warn
		does = fmt.Sprintf("the broker drops a message after %d deliveries (no dead-letter exchange): the ledger counts deliveries itself and dead-letters to %s after delivery_limit (%d) if that comes first", info.DeliveryLimit, errQ, b.cfg.DeliveryLimit)
	default:
		does = fmt.Sprintf("the broker dead-letters after %d deliveries; the ledger counts deliveries too and dead-letters to %s after delivery_limit (%d) if that comes first", info.DeliveryLimit, errQ, b.cfg.DeliveryLimit)
	}
	level("ledger queue", zap.String("queue", info.Name), zap.String("type", info.Type), zap.Bool("existed", info.Existed),
		zap.String("delivery_limit", limit), zap.String("dead_letter", dl), zap.Strings("differs_from_config", info.Differs), zap.String("ledger", does))
}

func (b *Broker) queueArgs(queueType string) amqp.Table {
	if queueType == QueueQuorum {
		return amqp.Table{"x-queue-type": QueueQuorum}
	}
	return nil // classic: as MassTransit declares it
}

// declarer declares on one connection, reopening its channel after a
// channel-level error (a 406 closes it).
type declarer struct {
	ctx  context.Context
	conn *amqp.Connection
	ch   *amqp.Channel
	log  *zap.Logger
}

func (d *declarer) channel() (*amqp.Channel, error) {
	if d.ch != nil && !d.ch.IsClosed() {
		return d.ch, nil
	}
	ch, err := d.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	d.ch = ch
	return ch, nil
}

func (d *declarer) close() {
	if d.ch != nil && !d.ch.IsClosed() {
		_ = d.ch.Close()
	}
}

func isCode(err error, code int) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == code
}

// step runs one declaration and says what failed.
func (d *declarer) step(what string, f func(ch *amqp.Channel) error) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	ch, err := d.channel()
	if err != nil {
		return fmt.Errorf("declare %s: %w", what, err)
	}
	if err := f(ch); err != nil {
		if isCode(err, amqp.PreconditionFailed) {
			return fmt.Errorf("declare %s: it exists with other settings (type, durability or arguments): %w", what, err)
		}
		return fmt.Errorf("declare %s: %w", what, err)
	}
	return nil
}

func (d *declarer) exchange(name, kind string, args amqp.Table) error {
	return d.step("exchange "+name, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(name, kind, true, false, false, false, args)
	})
}

// queue declares a durable queue and returns what the broker has.
// Queue arguments cannot change once declared (an older delivery limit,
// a classic queue declared by MassTransit): an existing queue with other
// arguments is kept, with a warning naming the arguments that differ.
func (d *declarer) queue(name string, args amqp.Table) (QueueInfo, error) {
	info, err := d.inspect(name, args)
	if err != nil {
		return info, err
	}
	if info.Existed && len(info.Differs) > 0 {
		d.log.Warn("queue exists with other arguments; keeping it as declared (change them with a policy, or delete the queue when it is empty)",
			zap.String("queue", name), zap.Strings("differs", info.Differs), zap.Any("found", info.Args), zap.Any("wanted", args))
	}
	return info, nil
}

// maxProbes bounds the declarations inspect makes: one per argument that
// differs, and the broker compares about a dozen.
const maxProbes = 16

// inspect finds out an existing queue's type and arguments. AMQP has no
// call that returns them, but a declaration with other arguments fails
// with a PRECONDITION_FAILED text that names the first inequivalent
// argument and its current value: adopting that value and declaring
// again converges on a declaration equivalent to the queue, which then is
// what the queue has (for every argument the broker compares). A queue
// that does not exist is created with args.
func (d *declarer) inspect(name string, args amqp.Table) (QueueInfo, error) {
	info := QueueInfo{Name: name}
	what := "queue " + name
	err := d.step(what, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		return err
	})
	switch {
	case err == nil:
		info.Existed = true
	case isCode(err, amqp.NotFound):
	default:
		return info, err
	}
	found := amqp.Table{}
	for k, v := range args {
		found[k] = v
	}
	dropped := map[string]bool{} // arguments removed without knowing the queue's value
	for probe := 0; ; probe++ {
		err = d.step(what, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, true, false, false, false, found)
			return err
		})
		if err == nil {
			break
		}
		key, cur, known, ok := parseInequivalent(err)
		if ok && !known {
			// The broker's text is cut at 255 bytes, so with long names
			// the current value can be missing. An argument the ledger
			// sent is dropped: if the queue has none, that converges; if
			// it has one, the same argument comes back and the queue's
			// value stays unknown.
			if _, sent := found[key]; sent && !dropped[key] {
				delete(found, key)
				dropped[key] = true
				continue
			}
			ok = false
		}
		if !ok && info.Existed && isCode(err, amqp.PreconditionFailed) {
			// What the queue has cannot be read: keep it, as before.
			d.log.Warn("queue exists with other arguments the ledger could not read; keeping it as declared",
				zap.String("queue", name), zap.Error(err))
			info.Type, info.Differs = "unknown", []string{"unknown"}
			return info, nil
		}
		if !ok || probe == maxProbes {
			return info, err
		}
		if cur == nil {
			delete(found, key)
		} else {
			found[key] = cur
		}
	}
	info.fill(found, args)
	return info, nil
}

// inequivalentRE reads RabbitMQ's text for a declaration that differs
// from the queue, in its forms: "received 'V' but current is 'W'",
// "received the value 'V' of type 'T' but current is none", "received
// none but current is the value 'W' of type 'T'".
var (
	inequivalentKeyRE = regexp.MustCompile(`inequivalent arg '([^']+)'`)
	inequivalentRE    = regexp.MustCompile(`inequivalent arg '([^']+)' for .*: received (?:none|'.*'|the value '.*' of type '\w+') but current is (none|'(.*)'|the value '(.*)' of type '(\w+)')$`)
)

// parseInequivalent returns the argument a 406 names and, when known,
// the queue's current value (nil: the queue has none), typed as the
// broker said. known is false when the text was cut before the value.
func parseInequivalent(err error) (key string, cur any, known, ok bool) {
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
		return "", nil, false, false
	}
	m := inequivalentRE.FindStringSubmatch(aerr.Reason)
	if m == nil {
		if k := inequivalentKeyRE.FindStringSubmatch(aerr.Reason); k != nil {
			return k[1], nil, false, true
		}
		return "", nil, false, false
	}
	key = m[1]
	switch {
	case m[2] == "none":
		return key, nil, true, true
	case m[5] != "":
		v, ok := typedValue(m[4], m[5])
		return key, v, ok, true
	default:
		// Same type as sent; the arguments the ledger sends are strings
		// or integers.
		if n, err := strconv.ParseInt(m[3], 10, 64); err == nil {
			return key, n, true, true
		}
		return key, m[3], true, true
	}
}

func typedValue(v, typ string) (any, bool) {
	switch typ {
	case "longstr", "shortstr":
		return v, true
	case "long", "signedint", "short", "byte", "unsignedbyte", "unsignedshort", "unsignedint":
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	case "bool":
		return v == "true", true
	}
	return nil, false
}

// QueueInfo is what the broker has for a queue the topology declared.
type QueueInfo struct {
	Name string
	// Type is x-queue-type: "quorum", "classic" (also when the queue has
	// no x-queue-type, as MassTransit declares it) or "stream".
	Type string
	// Existed: the queue was there before this declaration (declared by
	// MassTransit, an operator or an earlier ledger).
	Existed bool
	// DeliveryLimit is the broker's x-delivery-limit; 0 when it has none
	// (classic queues keep no delivery count, so never one there).
	DeliveryLimit int
	// DeadLetter: the queue has an x-dead-letter-exchange (possibly "",
	// the default exchange) with DeadLetterRoutingKey.
	DeadLetter           bool
	DeadLetterExchange   string
	DeadLetterRoutingKey string
	// Args are the queue's arguments among those the broker compares.
	Args amqp.Table
	// Differs lists, sorted, the arguments whose value is not what the
	// ledger asked for.
	Differs []string
}

func (q *QueueInfo) fill(found, wanted amqp.Table) {
	q.Type = QueueClassic
	if t, ok := found["x-queue-type"].(string); ok && t != "" {
		q.Type = t
	}
	if q.Type != QueueQuorum {
		// Only quorum queues compare (and honour) a delivery limit: a
		// classic queue accepts the argument and ignores it.
		delete(found, "x-delivery-limit")
	}
	q.Args = found
	if n, ok := found["x-delivery-limit"].(int64); ok {
		q.DeliveryLimit = int(n)
	}
	if x, ok := found["x-dead-letter-exchange"].(string); ok {
		q.DeadLetter, q.DeadLetterExchange = true, x
		q.DeadLetterRoutingKey, _ = found["x-dead-letter-routing-key"].(string)
	}
	for k, w := range wanted {
		if f, ok := found[k]; !ok || fmt.Sprint(f) != fmt.Sprint(w) {
			q.Differs = append(q.Differs, k)
		}
	}
	for k := range found {
		if _, ok := wanted[k]; !ok {
			q.Differs = append(q.Differs, k)
		}
	}
	sort.Strings(q.Differs)
}

func (d *declarer) bind(q, ex, key string) error {
	return d.step(fmt.Sprintf("binding %s -> %s", ex, q), func(ch *amqp.Channel) error {
		return ch.QueueBind(q, key, ex, false, nil)
	})
}

func (b *Broker) declareOn(ctx context.Context, s *session) error {
	b.declareMu.Lock()
	defer b.declareMu.Unlock()
	d := &declarer{ctx: ctx, conn: s.conn, log: b.log}
	defer d.close()
	// The unroutable exchange first: outbound exchanges point at it.
	if err := b.declareParking(d); err != nil {
		return err
	}
	if err := b.declareLedgerQueue(d); err != nil {
		return err
	}
	outbound, err := b.declareOutbound(d)
	if err != nil {
		return err
	}
	return b.declareConsumerQueues(d, outbound)
}

// declareParking: the unroutable exchange and queue, `<queue>_error` and
// `<queue>_skipped`, each with a durable fanout exchange of its name bound
// to it, as MassTransit's RabbitMQ transport declares its error and
// skipped queues (RabbitMqErrorSettings): parked copies go through that
// exchange with their original routing key. Queues of older ledgers,
// which had no such exchange, get it added; the declarations are
// idempotent.
func (b *Broker) declareParking(d *declarer) error {
	c := b.cfg
	if err := d.exchange(c.UnroutableExchange, "fanout", nil); err != nil {
		return err
	}
	info, err := d.queue(c.UnroutableQueue, b.unroutableArgs())
	if err != nil {
		return err
	}
	b.noteUnroutable(info)
	if err := d.bind(c.UnroutableQueue, c.UnroutableExchange, ""); err != nil {
		return err
	}
	for _, q := range []string{domain.ErrorQueue(c.Queue), domain.SkippedQueue(c.Queue)} {
		if _, err := d.queue(q, b.queueArgs(c.QueueType)); err != nil {
			return err
		}
		if err := d.exchange(q, "fanout", nil); err != nil {
			if !isCode(err, amqp.PreconditionFailed) {
				return err
			}
			// Declared by someone else with other settings: keep it; a
			// copy it does not route to the queue is returned, and
			// requeued rather than lost.
			b.log.Warn("parking exchange exists with other settings; keeping it as declared",
				zap.String("exchange", q), zap.Error(err))
		}
		if err := d.bind(q, q, ""); err != nil {
			return err
		}
	}
	return nil
}

// declareLedgerQueue: the ledger queue and the inbound exchanges bound to it.
func (b *Broker) declareLedgerQueue(d *declarer) error {
	c := b.cfg
	args := b.queueArgs(c.QueueType)
	if c.QueueType == QueueQuorum {
		// Dead-letter after the delivery limit so a message that keeps
		// failing is parked, not requeued forever (and not dropped: without
		// a DLX a quorum queue drops it).
		args["x-delivery-limit"] = int64(c.DeliveryLimit)
		args["x-dead-letter-exchange"] = ""
		args["x-dead-letter-routing-key"] = domain.ErrorQueue(c.Queue)
	}
	info, err := d.queue(c.Queue, args)
	if err != nil {
		return err
	}
	b.noteLedgerQueue(info)
	for _, in := range c.InboundBindings {
		if err := d.exchange(in.Exchange, in.Kind, nil); err != nil {
			return err
		}
		if err := d.bind(c.Queue, in.Exchange, in.RoutingKey); err != nil {
			return err
		}
	}
	return nil
}

// declareOutbound declares the outbound exchanges, with the unroutable
// exchange as their alternate unless told otherwise, and returns their names.
func (b *Broker) declareOutbound(d *declarer) (map[string]bool, error) {
	c := b.cfg
	outbound := map[string]bool{}
	for _, x := range c.OutboundExchanges {
		outbound[x.Name] = true
		var xargs amqp.Table
		if !c.NoAlternateExchangeArg && !x.NoAlternate {
			xargs = amqp.Table{"alternate-exchange": c.UnroutableExchange}
		}
		err := d.exchange(x.Name, x.Kind, xargs)
		if err != nil && isCode(err, amqp.PreconditionFailed) {
			// Declared earlier with other arguments (by a MassTransit
			// service, or an older ledger): keep it as it is; mandatory
			// publishing still reports anything it cannot route.
			if perr := d.step("exchange "+x.Name, func(ch *amqp.Channel) error {
				return ch.ExchangeDeclarePassive(x.Name, x.Kind, true, false, false, false, nil)
			}); perr == nil {
				b.log.Warn("outbound exchange exists with other arguments; keeping it as declared",
					zap.String("exchange", x.Name), zap.Bool("wanted_alternate_exchange", xargs != nil))
				continue
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return outbound, nil
}

// declareConsumerQueues declares each downstream receive endpoint the way
// MassTransit does: the queue, a same-named fanout exchange bound to it,
// and the message-type exchange bound to that exchange.
func (b *Broker) declareConsumerQueues(d *declarer, outbound map[string]bool) error {
	for _, q := range b.cfg.ConsumerQueues {
		if !outbound[q.Exchange] {
			if err := d.exchange(q.Exchange, "fanout", nil); err != nil {
				return err
			}
		}
		if _, err := d.queue(q.Queue, b.queueArgs(q.QueueType)); err != nil {
			return err
		}
		if err := d.exchange(q.Queue, "fanout", nil); err != nil {
			return err
		}
		if err := d.bind(q.Queue, q.Queue, ""); err != nil {
			return err
		}
		if err := d.step(fmt.Sprintf("binding %s -> %s", q.Exchange, q.Queue), func(ch *amqp.Channel) error {
			return ch.ExchangeBind(q.Queue, q.RoutingKey, q.Exchange, false, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}
