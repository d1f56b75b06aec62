package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
)

// Loader publishes planned orders at a steady rate. An order's steps go out
// StepGap apart, each only after the previous one was confirmed, so an
// order's facts reach the queue in their story's order. Across connection
// losses (a killed connection, a broker restart) it reconnects and
// re-publishes what was not confirmed, with the same message ids.
type Loader struct {
	URL       string
	Orders    []traffic.Order
	Rate      float64            // orders started per second; <= 0: all at once
	StepGap   time.Duration      // between an order's steps (default 300ms)
	Envelopes []traffic.Envelope // rotated per message (default: all three)
	// GiveUp bounds how long the loader keeps trying to reach the broker
	// (default 3 minutes).
	GiveUp time.Duration
	Logf   func(format string, a ...any) // progress; nil: quiet

	mu   sync.Mutex
	sent int // messages confirmed so far
}

// Load is what a Loader got the broker to take.
type Load struct {
	Orders     int
	Messages   int               // distinct inbound messages confirmed by the broker
	Publishes  int               // publishes, re-publishes after a connection loss included
	IDs        map[string]string // inbound message id -> order id
	Scenario   map[string]traffic.Scenario
	Poison     map[string]bool // orders whose AccelByte events cannot be built (traffic.Poison)
	Elapsed    time.Duration   // from the first publish to the last confirm
	Reconnects int
}

// Rate is the inbound messages per second the load held.
func (l Load) Rate() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Messages) / l.Elapsed.Seconds()
}

// Sent reports how many messages are confirmed so far (safe while Run runs).
func (l *Loader) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

type pending struct {
	order int
	step  int
	due   time.Time
}

// Run publishes every step of every order and returns when all are
// confirmed, ctx is done or the broker stayed away longer than GiveUp.
func (l *Loader) Run(ctx context.Context) (Load, error) {
	gap := l.StepGap
	if gap <= 0 {
		gap = 300 * time.Millisecond
	}
	envs := l.Envelopes
	if len(envs) == 0 {
		envs = []traffic.Envelope{traffic.MassTransit, traffic.CloudEvents, traffic.Bare}
	}
	giveUp := l.GiveUp
	if giveUp <= 0 {
		giveUp = 3 * time.Minute
	}
	res := Load{Orders: len(l.Orders), IDs: map[string]string{}, Scenario: map[string]traffic.Scenario{}, Poison: map[string]bool{}}
	for _, o := range l.Orders {
		res.Scenario[o.ID] = o.Scenario
		if o.Minor > math.MaxInt32 {
			res.Poison[o.ID] = true
		}
	}
	p := &publisher{url: l.URL, giveUp: giveUp, logf: l.logf}
	defer p.close()

	start := time.Now()
	var queue []pending // due steps of started orders, by due time
	next := 0           // next order to start
	msgs := 0
	const tick = 20 * time.Millisecond
	for next < len(l.Orders) || len(queue) > 0 {
		now := time.Now()
		// Start the orders whose time has come.
		for next < len(l.Orders) {
			at := start
			if l.Rate > 0 {
				at = start.Add(time.Duration(float64(next) / l.Rate * float64(time.Second)))
			}
			if at.After(now) {
				break
			}
			queue = append(queue, pending{order: next, step: 0, due: at})
			next++
		}
		var batch []traffic.Wire
		var later []pending
		for _, pd := range queue {
			if pd.due.After(now) {
				later = append(later, pd)
				continue
			}
			o := l.Orders[pd.order]
			id := traffic.MessageID(o.ID, pd.step)
			w, err := traffic.Encode(o.Steps[pd.step], envs[(pd.order+pd.step)%len(envs)], id, time.Now())
			if err != nil {
				return res, fmt.Errorf("encode %s step %d: %w", o.ID, pd.step, err)
			}
			batch = append(batch, w)
			res.IDs[id] = o.ID
			if pd.step+1 < len(o.Steps) {
				// The next step is due a gap after this one is confirmed
				// (below), never before.
				later = append(later, pending{order: pd.order, step: pd.step + 1, due: now.Add(gap)})
			}
		}
		queue = later
		if len(batch) > 0 {
			n, err := p.publish(ctx, batch)
			res.Publishes += n
			if err != nil {
				res.Reconnects = p.reconnects
				return res, err
			}
			msgs += len(batch)
			l.mu.Lock()
			l.sent = msgs
			l.mu.Unlock()
			continue // publishing took time: look again at once
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(tick):
		}
	}
	res.Messages = msgs
	res.Elapsed = time.Since(start)
	res.Reconnects = p.reconnects
	return res, nil
}

func (l *Loader) logf(format string, a ...any) {
	if l.Logf != nil {
		l.Logf(format, a...)
	}
}

// publisher is one confirmed channel, re-dialled after a loss.
type publisher struct {
	url        string
	giveUp     time.Duration
	logf       func(string, ...any)
	conn       *amqp.Connection
	ch         *amqp.Channel
	reconnects int
	dialled    bool
}

func (p *publisher) close() {
	if p.conn != nil {
		_ = p.conn.Close()
	}
}

func (p *publisher) connect(ctx context.Context) error {
	if p.conn != nil && !p.conn.IsClosed() && p.ch != nil && !p.ch.IsClosed() {
		return nil
	}
	p.close()
	deadline := time.Now().Add(p.giveUp)
	for {
		conn, err := amqp.Dial(p.url)
		if err == nil {
			ch, cerr := conn.Channel()
			if cerr == nil {
				cerr = ch.Confirm(false)
			}
			if cerr == nil {
				p.conn, p.ch = conn, ch
				if p.dialled {
					p.reconnects++
					p.logf("loader: reconnected")
				}
				p.dialled = true
				return nil
			}
			_ = conn.Close()
			err = cerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("loader: broker unreachable for %s: %w", p.giveUp, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// publish sends the batch and waits for every confirm, re-publishing what
// the broker did not confirm (a nack, or a connection lost on the way).
// It returns the number of publishes made.
func (p *publisher) publish(ctx context.Context, batch []traffic.Wire) (int, error) {
	n := 0
	todo := batch
	for len(todo) > 0 {
		if err := p.connect(ctx); err != nil {
			return n, err
		}
		dcs := make([]*amqp.DeferredConfirmation, 0, len(todo))
		var failed []traffic.Wire
		var perr error
		for i, w := range todo {
			dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, w.Exchange, "", false, false, amqp.Publishing{
				ContentType: w.ContentType, MessageId: w.MessageID, Type: w.Type,
				DeliveryMode: amqp.Persistent, Timestamp: time.Now(), Body: w.Body,
			})
			if err != nil {
				failed = append(failed, todo[i:]...)
				perr = err
				break
			}
			n++
			dcs = append(dcs, dc)
		}
		for i, dc := range dcs {
			ok, err := dc.WaitContext(ctx)
			if err != nil {
				return n, err
			}
			if !ok {
				failed = append(failed, todo[i])
			}
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if len(failed) > 0 {
			p.logf("loader: %d of %d publishes unconfirmed (%v); re-publishing", len(failed), len(todo), errOr(perr, "nacked or connection lost"))
			if perr != nil || p.conn.IsClosed() || p.ch.IsClosed() {
				p.close()
				p.conn, p.ch = nil, nil
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		}
		todo = failed
	}
	return n, nil
}

func errOr(err error, s string) error {
	if err != nil {
		return err
	}
	return errors.New(s)
}
