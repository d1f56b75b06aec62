package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// confirmPublisher publishes persistent, mandatory messages on one channel
// in confirm mode with up to window publications awaiting their confirm
// (pipelined, as the ledger's own publisher does).
type confirmPublisher struct {
	conn   *amqp.Connection
	ch     *amqp.Channel
	window chan struct{}

	confirmed, nacked, returned atomic.Int64
	done                        chan struct{}
	closeOnce                   sync.Once
}

func newConfirmPublisher(url string, window int) (*confirmPublisher, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "ledger-bench publisher"}})
	if err != nil {
		return nil, fmt.Errorf("dial publisher: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("publisher channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	p := &confirmPublisher{conn: conn, ch: ch, window: make(chan struct{}, window), done: make(chan struct{})}
	// The library hands confirms over in publishing order; the buffer must
	// hold a whole window or it would block its reader.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	go func() {
		defer close(p.done)
		for c := range confirms {
			if c.Ack {
				p.confirmed.Add(1)
			} else {
				p.nacked.Add(1)
			}
			<-p.window
		}
	}()
	go func() {
		for range returns {
			p.returned.Add(1)
		}
	}()
	return p, nil
}

// publish waits for room in the window, then publishes.
func (p *confirmPublisher) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	msg.DeliveryMode = amqp.Persistent
	if err := p.ch.PublishWithContext(ctx, exchange, key, true, false, msg); err != nil {
		<-p.window
		return fmt.Errorf("publish to %s: %w", exchange, err)
	}
	return nil
}

// unconfirmed is how many publications still await their confirm.
func (p *confirmPublisher) unconfirmed() int { return len(p.window) }

func (p *confirmPublisher) close() {
	p.closeOnce.Do(func() { p.conn.Close() })
}

// batchConsumer consumes a queue with manual acks and prefetch, acking
// what is already at hand with one multiple ack (as the ledger does per
// batch), and calls handle for every delivery before its ack.
func batchConsume(conn *amqp.Connection, queue string, prefetch int, handle func(*amqp.Delivery)) (stop func() error, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("consumer channel for %s: %w", queue, err)
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("qos on %s: %w", queue, err)
	}
	tag := "ledger-bench-" + queue
	deliveries, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	done := make(chan error, 1)
	go func() {
		var ackErr error
		for d := range deliveries {
			handle(&d)
			last := d.DeliveryTag
			n := 1
		more:
			for n < 128 {
				select {
				case d2, ok := <-deliveries:
					if !ok {
						break more
					}
					handle(&d2)
					last = d2.DeliveryTag
					n++
				default:
					break more
				}
			}
			if err := ch.Ack(last, true); err != nil && ackErr == nil && !errors.Is(err, amqp.ErrClosed) {
				ackErr = fmt.Errorf("ack on %s: %w", queue, err)
			}
		}
		done <- ackErr
	}()
	return func() error {
		// Cancel first and let the loop ack what it holds: closing the
		// channel under an ack in flight is a channel error.
		cancelErr := ch.Cancel(tag, false)
		err := <-done
		cerr := errors.Join(cancelErr, ch.Close())
		if errors.Is(cerr, amqp.ErrClosed) {
			cerr = nil
		}
		return errors.Join(err, cerr)
	}, nil
}
