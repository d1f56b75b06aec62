package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// ErrorQueue and SkippedQueue name the parking queues of a queue
// (MassTransit's convention).
func ErrorQueue(queue string) string   { return queue + "_error" }
func SkippedQueue(queue string) string { return queue + "_skipped" }

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

// declarer reopens its channel after a channel-level error (a 406 closes it).
type declarer struct {
	conn *amqp.Connection
	ch   *amqp.Channel
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

func (b *Broker) declareOn(ctx context.Context, s *session) error {
	b.declareMu.Lock()
	defer b.declareMu.Unlock()
	d := &declarer{conn: s.conn}
	defer d.close()
	c := b.cfg

	step := func(what string, f func(ch *amqp.Channel) error) error {
		if err := ctx.Err(); err != nil {
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
	exchange := func(name, kind string, args amqp.Table) error {
		return step("exchange "+name, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(name, kind, true, false, false, false, args)
		})
	}
	queue := func(name string, args amqp.Table) error {
		err := step("queue "+name, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, true, false, false, false, args)
			return err
		})
		if err != nil && isCode(err, amqp.PreconditionFailed) {
			// Queue arguments cannot change once declared (an older
			// delivery limit, say): keep the queue and say how to change it.
			if perr := step("queue "+name, func(ch *amqp.Channel) error {
				_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
				return err
			}); perr == nil {
				b.log.Warn("queue exists with other arguments; keeping it as declared (change them with a policy, or delete the queue when it is empty)",
					zap.String("queue", name), zap.Error(err))
				return nil
			}
		}
		return err
	}
	bind := func(q, ex, key string) error {
		return step(fmt.Sprintf("binding %s -> %s", ex, q), func(ch *amqp.Channel) error {
			return ch.QueueBind(q, key, ex, false, nil)
		})
	}

	// The unroutable exchange first: outbound exchanges point at it.
	if err := exchange(c.UnroutableExchange, "fanout", nil); err != nil {
		return err
	}
	if err := queue(c.UnroutableQueue, b.queueArgs(c.QueueType)); err != nil {
		return err
	}
	if err := bind(c.UnroutableQueue, c.UnroutableExchange, ""); err != nil {
		return err
	}
	if err := queue(ErrorQueue(c.Queue), b.queueArgs(c.QueueType)); err != nil {
		return err
	}
	if err := queue(SkippedQueue(c.Queue), b.queueArgs(c.QueueType)); err != nil {
		return err
	}
	args := b.queueArgs(c.QueueType)
	if c.QueueType == QueueQuorum {
		// Dead-letter after the delivery limit so a message that keeps
		// failing is parked, not requeued forever (and not dropped: without
		// a DLX a quorum queue drops it).
		args["x-delivery-limit"] = int64(c.DeliveryLimit)
		args["x-dead-letter-exchange"] = ""
		args["x-dead-letter-routing-key"] = ErrorQueue(c.Queue)
	}
	if err := queue(c.Queue, args); err != nil {
		return err
	}
	for _, in := range c.InboundBindings {
		if err := exchange(in.Exchange, in.Kind, nil); err != nil {
			return err
		}
		if err := bind(c.Queue, in.Exchange, in.RoutingKey); err != nil {
			return err
		}
	}
	outbound := map[string]bool{}
	for _, x := range c.OutboundExchanges {
		outbound[x.Name] = true
		var xargs amqp.Table
		if !c.NoAlternateExchangeArg && !x.NoAlternate {
			xargs = amqp.Table{"alternate-exchange": c.UnroutableExchange}
		}
		err := exchange(x.Name, x.Kind, xargs)
		if err != nil && isCode(err, amqp.PreconditionFailed) {
			// Declared earlier with other arguments (by a MassTransit
			// service, or an older ledger): keep it as it is; mandatory
			// publishing still reports anything it cannot route.
			if perr := step("exchange "+x.Name, func(ch *amqp.Channel) error {
				return ch.ExchangeDeclarePassive(x.Name, x.Kind, true, false, false, false, nil)
			}); perr == nil {
				b.log.Warn("outbound exchange exists with other arguments; keeping it as declared",
					zap.String("exchange", x.Name), zap.Bool("wanted_alternate_exchange", xargs != nil))
				continue
			}
		}
		if err != nil {
			return err
		}
	}
	for _, q := range c.ConsumerQueues {
		if !outbound[q.Exchange] {
			if err := exchange(q.Exchange, "fanout", nil); err != nil {
				return err
			}
		}
		// MassTransit's receive endpoint: queue + same-named fanout
		// exchange, message-type exchange bound to the endpoint exchange.
		if err := queue(q.Queue, b.queueArgs(q.QueueType)); err != nil {
			return err
		}
		if err := exchange(q.Queue, "fanout", nil); err != nil {
			return err
		}
		if err := bind(q.Queue, q.Queue, ""); err != nil {
			return err
		}
		if err := step(fmt.Sprintf("binding %s -> %s", q.Exchange, q.Queue), func(ch *amqp.Channel) error {
			return ch.ExchangeBind(q.Queue, q.RoutingKey, q.Exchange, false, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}
