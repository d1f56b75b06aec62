package projections

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// LifecycleName is the lifecycle publisher's checkpoint name.
const LifecycleName = "lifecycle"

// CheckpointStore keeps a projection's position.
type CheckpointStore interface {
	Checkpoint(ctx context.Context, name string) (*domain.Position, error)
	SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error
}

// LifecycleConfig tunes the lifecycle publisher.
type LifecycleConfig struct {
	Rules     domain.Rules
	Outbound  domain.OutboundConfig
	BatchSize int           // events per publish (default 512)
	BatchWait time.Duration // how long to wait for a fuller batch (default 2ms)
	CacheSize int           // order folds kept in memory (default 20,000)
	// InFlight is how many batches may await the broker's confirms at
	// once (default 8): folding and publishing the next batch overlaps the
	// confirms of the last.
	InFlight int
	// CheckpointEvery bounds how often the checkpoint is written while
	// batches keep coming (default 100ms); it is always written when the
	// publisher goes idle or stops.
	CheckpointEvery time.Duration
	RetryMin        time.Duration // default 100ms
	RetryMax        time.Duration // default 10s
	Observer        Observer
}

// Lifecycle folds every order stream and publishes, for each transition,
// the AccelByte event and the BookWorm command it causes. Batches are
// published in a pipeline, but the checkpoint only ever moves to the end of
// a batch whose messages, and every earlier batch's, the broker confirmed:
// after a crash it publishes again from there, with the same message ids.
//
// Only one Lifecycle may run at a time across instances; Run's caller holds
// the lease.
type Lifecycle struct {
	log    domain.EventLog
	pub    Publisher
	cps    CheckpointStore
	cfg    LifecycleConfig
	states *states

	inflight   chan *flight
	publishing sync.WaitGroup // the publish goroutines of batches in flight
}

// flight is one batch on its way to the broker.
type flight struct {
	pos  domain.Position
	done chan struct{}
	ok   bool
}

// NewLifecycle builds a lifecycle publisher.
func NewLifecycle(log domain.EventLog, pub Publisher, cps CheckpointStore, cfg LifecycleConfig) *Lifecycle {
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 2 * time.Millisecond
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 20_000
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 8
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 100 * time.Millisecond
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	return &Lifecycle{log: log, pub: pub, cps: cps, cfg: cfg, states: newStates(log, cfg.Rules, cfg.CacheSize)}
}

// Run publishes until ctx is done. It returns nil on cancellation and an
// error only when it cannot start.
func (l *Lifecycle) Run(ctx context.Context) error {
	after, err := l.cps.Checkpoint(ctx, LifecycleName)
	if err != nil {
		return fmt.Errorf("load %s checkpoint: %w", LifecycleName, err)
	}
	l.inflight = make(chan *flight, l.cfg.InFlight)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		l.commit(ctx)
	}()
	f := &follower{name: LifecycleName, log: l.log, batchSize: l.cfg.BatchSize, batchWait: l.cfg.BatchWait,
		retryMin: l.cfg.RetryMin, retryMax: l.cfg.RetryMax, obs: l.cfg.Observer}
	err = f.run(ctx, after, l.handle)
	close(l.inflight)
	<-committed
	l.publishing.Wait() // nothing Run started outlives it
	return err
}

// handle folds a batch and starts publishing its messages; the committer
// moves the checkpoint once they are confirmed.
func (l *Lifecycle) handle(ctx context.Context, batch []domain.RecordedEvent) error {
	var out []domain.Outbound
	for _, re := range batch {
		msgs, err := l.react(ctx, re)
		if err != nil {
			l.states.reset() // folds may be ahead of what was handled
			return err
		}
		out = append(out, msgs...)
	}
	fl := &flight{pos: batch[len(batch)-1].Position, done: make(chan struct{})}
	l.publishing.Go(func() {
		defer close(fl.done)
		fl.ok = l.publish(ctx, out)
	})
	select {
	case l.inflight <- fl: // blocks while InFlight batches await confirms
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publish sends msgs until the broker confirms them all, or ctx ends.
func (l *Lifecycle) publish(ctx context.Context, msgs []domain.Outbound) bool {
	if len(msgs) == 0 {
		return true
	}
	wait := l.cfg.RetryMin
	for {
		err := l.pub.Publish(ctx, msgs)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		l.cfg.Observer.Retry(LifecycleName, fmt.Errorf("publish %d messages: %w", len(msgs), err), wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(wait*2, l.cfg.RetryMax)
	}
}

// commit waits for batches in order and writes the checkpoint of the last
// one confirmed: at most every CheckpointEvery while busy, at once when
// idle, and on the way out.
func (l *Lifecycle) commit(ctx context.Context) {
	var confirmed *domain.Position
	var saved time.Time
	dirty := false
	save := func(c context.Context) {
		if !dirty {
			return
		}
		for {
			err := l.cps.SaveCheckpoint(c, LifecycleName, *confirmed)
			if err == nil {
				dirty, saved = false, time.Now()
				return
			}
			if c.Err() != nil {
				return
			}
			l.cfg.Observer.Retry(LifecycleName, fmt.Errorf("save checkpoint %s: %w", confirmed, err), l.cfg.RetryMin)
			select {
			case <-c.Done():
				return
			case <-time.After(l.cfg.RetryMin):
			}
		}
	}
	// The last save must happen even though ctx is done.
	defer func() { save(context.WithoutCancel(ctx)) }()
	for fl := range l.inflight {
		<-fl.done
		if !fl.ok {
			// Cancelled before the broker confirmed: nothing after this
			// batch may be checkpointed.
			for range l.inflight {
			}
			return
		}
		p := fl.pos
		confirmed, dirty = &p, true
		if len(l.inflight) == 0 || time.Since(saved) >= l.cfg.CheckpointEvery {
			save(ctx)
		}
	}
}

// react folds one recorded event and returns the messages its transitions
// cause.
func (l *Lifecycle) react(ctx context.Context, re domain.RecordedEvent) ([]domain.Outbound, error) {
	cf, err := l.states.at(ctx, re.Stream, re.Revision)
	if err != nil {
		return nil, err
	}
	oc, ok, err := cf.apply(re)
	if !ok {
		l.cfg.Observer.Poison(LifecycleName, re, err)
		return nil, nil
	}
	if len(oc.Transitions) == 0 {
		return nil, nil
	}
	return OutboundFor(l.cfg.Outbound, re.Stream, cf.f.State(), oc)
}

// OutboundFor lists the messages an outcome's transitions cause, their
// bodies rendered.
func OutboundFor(cfg domain.OutboundConfig, stream string, s domain.State, oc domain.Outcome) ([]domain.Outbound, error) {
	var out []domain.Outbound
	for _, t := range oc.Transitions {
		msgs, err := domain.Intents(cfg, stream, s, t)
		if err != nil {
			return nil, fmt.Errorf("intents for %s@%d: %w", stream, t.Cause.Revision, err)
		}
		if err := codec.RenderBodies(cfg, msgs); err != nil {
			return nil, fmt.Errorf("bodies for %s@%d: %w", stream, t.Cause.Revision, err)
		}
		out = append(out, msgs...)
	}
	return out, nil
}
