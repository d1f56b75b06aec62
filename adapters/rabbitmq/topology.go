package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

// DeclareTopology declares, idempotently: the unroutable exchange and
// queue; `<queue>_error` and `<queue>_skipped`; the ledger queue (quorum
// with a delivery limit and dead-lettering to `<queue>_error`, or classic);
// the inbound exchanges and their bindings to the ledger queue; the
// outbound exchanges with the alternate exchange; the consumer queues.
// After a reconnect the topology is declared again before the connection
// is used.
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
	return nil
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

// queue declares a durable queue. Queue arguments cannot change once
// declared (an older delivery limit, say): an existing queue with other
// arguments is kept, with a warning that says how to change them.
func (d *declarer) queue(name string, args amqp.Table) error {
	err := d.step("queue "+name, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		return err
	})
	if err != nil && isCode(err, amqp.PreconditionFailed) {
		if perr := d.step("queue "+name, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
			return err
		}); perr == nil {
			d.log.Warn("queue exists with other arguments; keeping it as declared (change them with a policy, or delete the queue when it is empty)",
				zap.String("queue", name), zap.Error(err))
			return nil
		}
	}
	return err
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
// `<queue>_skipped`.
func (b *Broker) declareParking(d *declarer) error {
	c := b.cfg
	if err := d.exchange(c.UnroutableExchange, "fanout", nil); err != nil {
		return err
	}
	if err := d.queue(c.UnroutableQueue, b.queueArgs(c.QueueType)); err != nil {
		return err
	}
	if err := d.bind(c.UnroutableQueue, c.UnroutableExchange, ""); err != nil {
		return err
	}
	if err := d.queue(domain.ErrorQueue(c.Queue), b.queueArgs(c.QueueType)); err != nil {
		return err
	}
	return d.queue(domain.SkippedQueue(c.Queue), b.queueArgs(c.QueueType))
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
	if err := d.queue(c.Queue, args); err != nil {
		return err
	}
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
		if err := d.queue(q.Queue, b.queueArgs(q.QueueType)); err != nil {
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
