package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// Leader election defaults (LeaseConfig zero values) and the beats' form.
const (
	DefaultLeaderQueue   = "ledger.leader"
	DefaultLeaseBeat     = time.Second
	DefaultLeaseTTL      = 3 * time.Second
	DefaultLeaseTakeover = time.Second
	// LeaseQueueMaxLength bounds the election queue (x-max-length, dropping
	// the oldest): beats are disposable, only their arrival matters.
	LeaseQueueMaxLength = 16
	// HeaderLeaseInstance names the instance that sent a beat;
	// HeaderLeaseLeading says whether it was leading when it sent it.
	HeaderLeaseInstance = "instance"
	HeaderLeaseLeading  = "leading"
	// LeaseConsumerPrefix prefixes the instance in the consumer tag.
	LeaseConsumerPrefix = "ledger-lease-"
)

// LeaseConfig configures an Elector. Zero values take the defaults.
type LeaseConfig struct {
	// Queue is declared classic, durable, x-single-active-consumer,
	// x-max-length LeaseQueueMaxLength with drop-head and x-message-ttl =
	// Lease. Default DefaultLeaderQueue.
	Queue string
	// Instance is required: the consumer tag is LeaseConsumerPrefix +
	// Instance and beats carry it in HeaderLeaseInstance.
	Instance string
	// Beat: every instance publishes a beat this often (default 1s).
	Beat time.Duration
	// Lease: leading ends when no delivery came for this long (default 3s).
	// It must exceed Beat; the broker also drops beats older than it.
	Lease time.Duration
	// Takeover: after its first delivery an instance waits this long, still
	// active and connected, before it leads, so that a deposed leader has
	// stopped first (default 1s).
	Takeover time.Duration
	// Pause: after giving the role up, the wait before consuming again, so
	// another instance takes it (default 2*Beat).
	Pause time.Duration
}

// WithDefaults fills the zero values with the defaults.
func (c LeaseConfig) WithDefaults() LeaseConfig {
	if c.Queue == "" {
		c.Queue = DefaultLeaderQueue
	}
	if c.Beat == 0 {
		c.Beat = DefaultLeaseBeat
	}
	if c.Lease == 0 {
		c.Lease = max(DefaultLeaseTTL, 2*c.Beat)
	}
	if c.Takeover == 0 {
		c.Takeover = DefaultLeaseTakeover
	}
	if c.Pause == 0 {
		c.Pause = 2 * c.Beat
	}
	return c
}

// Validate reports every problem of a defaulted config at once, naming the
// settings as the service's leader.* keys do.
func (c LeaseConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case len(c.Queue) > 255:
		add("queue: longer than 255 bytes")
	case strings.HasPrefix(c.Queue, "amq."):
		add("queue %q: names starting with amq. are reserved by the broker", c.Queue)
	}
	switch {
	case strings.TrimSpace(c.Instance) == "":
		add("instance: required (it names this instance in the election)")
	case len(LeaseConsumerPrefix+c.Instance) > 255:
		add("instance: longer than %d bytes", 255-len(LeaseConsumerPrefix))
	}
	if c.Beat <= 0 {
		add("beat %s: must be positive", c.Beat)
	}
	switch {
	case c.Lease <= 0:
		add("lease %s: must be positive", c.Lease)
	case c.Lease <= c.Beat:
		add("lease %s: must be longer than beat (%s), or a leader loses the role between two beats", c.Lease, c.Beat)
	case c.Lease.Milliseconds() > math.MaxUint32:
		// x-message-ttl is whole milliseconds, at most 2^32-1 on the broker.
		add("lease %s: must be at most %s", c.Lease, time.Duration(math.MaxUint32)*time.Millisecond)
	case c.Lease%time.Millisecond != 0:
		add("lease %s: must be whole milliseconds (it is the queue's x-message-ttl)", c.Lease)
	}
	if c.Takeover < 0 {
		add("takeover %s: must not be negative", c.Takeover)
	}
	if c.Pause < 0 {
		add("pause %s: must not be negative", c.Pause)
	}
	return errors.Join(errs...)
}

// Elector grants a leader role to one instance at a time through a
// single-active-consumer queue: the broker delivers to one consumer only,
// so a delivery proves this instance's consumer is the active one. Every
// instance publishes beats to the queue so that the active consumer keeps
// getting deliveries. It implements projections.Elector.
type Elector struct {
	b   *Broker
	cfg LeaseConfig
	tag string
	log *zap.Logger

	running atomic.Bool

	mu      sync.Mutex
	leading bool
	seen    string    // the last other instance whose beat said it led
	seenAt  time.Time // when that beat was delivered
}

// Elector returns an elector over the Broker's connection; it validates cfg
// and does not connect (Campaign does).
func (b *Broker) Elector(cfg LeaseConfig) (*Elector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rabbitmq leader election config: %w", err)
	}
	return &Elector{
		b:   b,
		cfg: cfg,
		tag: LeaseConsumerPrefix + cfg.Instance,
		log: b.log.With(zap.String("queue", cfg.Queue), zap.String("instance", cfg.Instance)),
	}, nil
}

// Config returns the defaulted configuration in use.
func (e *Elector) Config() LeaseConfig { return e.cfg }

// Leader is the best known leader: this instance while it leads, else the
// instance whose beat delivered here within the last Lease said it was
// leading. Followers get no deliveries, so it is often "" for them.
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leading {
		return e.cfg.Instance
	}
	if e.seen != "" && time.Since(e.seenAt) <= e.cfg.Lease {
		return e.seen
	}
	return ""
}

func (e *Elector) setLeading(v bool) {
	e.mu.Lock()
	e.leading = v
	e.mu.Unlock()
}

func (e *Elector) saw(d amqp.Delivery) {
	inst, _ := d.Headers[HeaderLeaseInstance].(string)
	leading, _ := d.Headers[HeaderLeaseLeading].(bool)
	if !leading || inst == "" || inst == e.cfg.Instance {
		return
	}
	e.mu.Lock()
	e.seen, e.seenAt = inst, time.Now()
	e.mu.Unlock()
}

func (e *Elector) isLeading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// permanent marks what campaigning again cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Campaign competes for the role until ctx is done, then returns nil, or
// until the Broker is closed or the queue exists with other arguments
// (an error). Each time the role is won it calls lead with a context
// cancelled, with the reason as its cause, as soon as the role is lost:
// connection or channel closed, no delivery for Lease, ctx done. It waits
// for lead to return before anything else; when lead returns while the role
// is still held it gives the role up, waits Pause and competes again.
// After a connection loss it waits for the Broker's reconnect.
func (e *Elector) Campaign(ctx context.Context, lead func(ctx context.Context) error) error {
	if lead == nil {
		return errors.New("campaign: nil lead")
	}
	if !e.running.CompareAndSwap(false, true) {
		return fmt.Errorf("campaign on %s: this elector is already campaigning", e.cfg.Queue)
	}
	defer e.running.Store(false)
	delay := e.b.cfg.ReconnectMin
	for {
		s, err := e.b.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("campaign on %s: %w", e.cfg.Queue, err)
		}
		started := time.Now()
		err = e.campaignOn(ctx, s, lead)
		if ctx.Err() != nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		if s.isDead() || s.conn.IsClosed() {
			// acquire waits for the supervisor's new connection.
			delay = e.b.cfg.ReconnectMin
			e.log.Info("broker connection lost; campaigning again after the reconnect", zap.Error(err))
			continue
		}
		if time.Since(started) > e.cfg.Lease {
			delay = e.b.cfg.ReconnectMin
		}
		e.log.Warn("election interrupted, campaigning again", zap.Duration("backoff", delay), zap.Error(err))
		if err := sleep(ctx, e.b.ctx, delay); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("campaign on %s: %w", e.cfg.Queue, err)
		}
		delay = min(2*delay, e.b.cfg.ReconnectMax)
	}
}

func (e *Elector) queueArgs() amqp.Table {
	return amqp.Table{
		"x-queue-type":             QueueClassic,
		"x-single-active-consumer": true,
		"x-max-length":             int64(LeaseQueueMaxLength),
		"x-overflow":               "drop-head",
		"x-message-ttl":            e.cfg.Lease.Milliseconds(),
	}
}

// declare declares the queue on ch; an existing queue with other
// arguments is a permanent error naming the argument.
func (e *Elector) declare(ch *amqp.Channel) error {
	args := e.queueArgs()
	_, err := ch.QueueDeclare(e.cfg.Queue, true, false, false, false, args)
	if err == nil {
		return nil
	}
	if !isCode(err, amqp.PreconditionFailed) {
		return fmt.Errorf("declare leader queue %s: %w", e.cfg.Queue, err)
	}
	what := "other settings"
	if key, cur, known, ok := parseInequivalent(err); ok {
		there := "unknown"
		switch {
		case known && cur == nil:
			there = "none"
		case known:
			there = fmt.Sprint(cur)
		}
		want := "none"
		if v, sent := args[key]; sent {
			want = fmt.Sprint(v)
		} else if key == "durable" {
			want = "true"
		}
		what = fmt.Sprintf("%s is %s there, the election declares %s", key, there, want)
	}
	return permanent{fmt.Errorf("leader queue %q in vhost %q exists with other arguments (%s): every instance must use the same leader.queue and leader.lease; the queue holds only disposable beats, so delete it (rabbitmqctl delete_queue -p %s %s) or name another queue: %w",
		e.cfg.Queue, e.b.vhost, what, shellQuote(e.b.vhost), shellQuote(e.cfg.Queue), err)}
}

// campaignOn campaigns on one connection until it is lost or ctx is done.
func (e *Elector) campaignOn(ctx context.Context, s *session, lead func(context.Context) error) error {
	pub, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := e.declare(pub); err != nil {
		closeChannel(pub)
		return err
	}
	// The connection's own close error says why it went (the session only
	// says that it did); registering on a closed connection closes at once.
	connCloses := s.conn.NotifyClose(make(chan *amqp.Error, 1))

	bctx, stopBeats := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.beat(bctx, s, pub)
	}()
	defer func() {
		stopBeats()
		wg.Wait()
	}()
	for {
		again, err := e.round(ctx, s, connCloses, lead)
		if !again {
			return err
		}
		e.log.Info("gave the leader role up; competing again after a pause", zap.Duration("pause", e.cfg.Pause), zap.Error(err))
		t := time.NewTimer(e.cfg.Pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.dead:
			t.Stop()
			return errConnLost(connCloses)
		case <-t.C:
		}
	}
}

// beat publishes a beat every Beat until ctx is done or the connection is
// gone, reopening its channel after a channel error.
func (e *Elector) beat(ctx context.Context, s *session, ch *amqp.Channel) {
	defer func() {
		if ch != nil {
			closeChannel(ch)
		}
	}()
	t := time.NewTicker(e.cfg.Beat)
	defer t.Stop()
	exp := strconv.FormatInt(e.cfg.Lease.Milliseconds(), 10)
	for {
		if ch == nil || ch.IsClosed() {
			var err error
			if ch, err = s.conn.Channel(); err != nil {
				ch = nil
				if !s.isDead() {
					e.log.Warn("beat channel", zap.Error(err))
				}
			}
		}
		if ch != nil {
			err := ch.PublishWithContext(ctx, "", e.cfg.Queue, false, false, amqp.Publishing{
				Headers:      amqp.Table{HeaderLeaseInstance: e.cfg.Instance, HeaderLeaseLeading: e.isLeading()},
				DeliveryMode: amqp.Transient,
				Expiration:   exp,
				Timestamp:    time.Now(),
				Type:         "ledger.leader.beat",
			})
			if err != nil && ctx.Err() == nil && !s.isDead() {
				e.log.Warn("publish beat", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.dead:
			return
		case <-t.C:
		}
	}
}

var errCancelled = errors.New("consumer cancelled by the broker (the queue was deleted?)")

// channelLost is the reason a channel closed with err: the connection's
// loss when it went with it.
func (e *Elector) channelLost(s *session, connCloses chan *amqp.Error, err *amqp.Error) error {
	if s.conn.IsClosed() {
		return errConnLost(connCloses)
	}
	return fmt.Errorf("consumer channel closed: %w", err)
}

func errConnLost(closes chan *amqp.Error) error {
	select {
	case err, ok := <-closes:
		if ok && err != nil {
			return fmt.Errorf("broker connection lost: %w", err)
		}
	default:
	}
	return errors.New("broker connection lost")
}

// round is one consumer: it waits to be the active one, takes over, leads,
// and closes the consumer's channel (so the broker activates another
// consumer) once lead returned. again says the connection is still up and
// the role was given up or lost: consume again after Pause.
func (e *Elector) round(ctx context.Context, s *session, connCloses chan *amqp.Error, lead func(context.Context) error) (again bool, err error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open consumer channel: %w", err)
	}
	defer closeChannel(ch)
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancels := ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(e.cfg.Queue, e.tag, true, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", e.cfg.Queue, err)
	}
	// ended says why the consumer stopped getting deliveries. A closed
	// connection closes both notification channels without a value.
	ended := func() error {
		timeout := time.NewTimer(100 * time.Millisecond)
		defer timeout.Stop()
		for closes != nil || cancels != nil {
			select {
			case err, ok := <-closes:
				if ok && err != nil {
					return e.channelLost(s, connCloses, err)
				}
				closes = nil
			case _, ok := <-cancels:
				if ok && !s.conn.IsClosed() {
					return errCancelled
				}
				cancels = nil
			case <-s.dead:
				return errConnLost(connCloses)
			case <-timeout.C:
				closes, cancels = nil, nil
			}
		}
		if s.conn.IsClosed() {
			return errConnLost(connCloses)
		}
		return errors.New("consumer ended")
	}

	// A follower: wait to become the active consumer.
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-s.dead:
		return false, errConnLost(connCloses)
	case d, ok := <-deliveries:
		if !ok {
			err := ended()
			return !s.conn.IsClosed(), err
		}
		e.saw(d)
	}

	// Active: take over once Takeover passed, still active and connected.
	lease := time.NewTimer(e.cfg.Lease)
	defer lease.Stop()
	takeover := time.NewTimer(e.cfg.Takeover)
	defer takeover.Stop()
	e.log.Debug("active consumer; taking over", zap.Duration("takeover", e.cfg.Takeover))
wait:
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-s.dead:
			return false, errConnLost(connCloses)
		case d, ok := <-deliveries:
			if !ok {
				err := ended()
				return !s.conn.IsClosed(), err
			}
			e.saw(d)
			lease.Reset(e.cfg.Lease)
		case <-lease.C:
			return true, fmt.Errorf("no beat for %s while taking over", e.cfg.Lease)
		case <-takeover.C:
			break wait
		}
	}
	return e.term(ctx, s, connCloses, deliveries, ended, lease, lead)
}

// term runs lead until it returns; the role is lost (its context cancelled
// with the reason) at once when ctx ends, the connection or the channel
// closes, or no delivery came for Lease.
func (e *Elector) term(ctx context.Context, s *session, connCloses chan *amqp.Error, deliveries <-chan amqp.Delivery,
	ended func() error, lease *time.Timer, lead func(context.Context) error) (bool, error) {
	// Only the elector ends a term, with its own cause; values carry over.
	termCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	e.setLeading(true)
	done := make(chan error, 1)
	go func() { done <- lead(termCtx) }()

	var reason error
	again := true
	end := func(r error, connected bool) {
		if reason == nil {
			reason = r
			again = connected
			e.setLeading(false)
			cancel(r)
		}
	}
	ctxDone, dead := ctx.Done(), s.dead
	for {
		select {
		case err := <-done:
			if err != nil {
				end(fmt.Errorf("lead returned: %w", err), true)
			} else {
				end(errors.New("lead returned"), true)
			}
			return again && !s.conn.IsClosed(), reason
		case <-ctxDone:
			ctxDone = nil
			end(fmt.Errorf("stopped: %w", context.Cause(ctx)), false)
		case <-dead:
			dead = nil
			end(errConnLost(connCloses), false)
		case d, ok := <-deliveries:
			if !ok {
				// The channel closed, the broker cancelled the consumer
				// or the connection went: the role is gone.
				deliveries = nil
				end(ended(), !s.conn.IsClosed())
				continue
			}
			e.saw(d)
			if reason == nil {
				lease.Reset(e.cfg.Lease)
			}
		case <-lease.C:
			end(fmt.Errorf("no beat for %s", e.cfg.Lease), true)
		}
	}
}
