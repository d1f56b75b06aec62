package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	CacheSize int           // order folds kept in memory (default DefaultCacheSize)
	// InFlight is how many batches may await the broker's confirms at
	// once (default 64): folding and publishing the next batch overlaps the
	// confirms of the last. Under a light load batches are small, and a
	// confirm waits for the broker's next fsync (tens of ms on a busy
	// machine), so a few batches in flight would hold the publisher back.
	InFlight int
	// InFlightMessages bounds the messages of the batches in flight
	// (default 2048), and with it their memory under a heavy load, when
	// batches are full.
	InFlightMessages int
	// CheckpointEvery bounds how often the checkpoint is written while
	// batches keep coming (default 100ms); it is always written when the
	// publisher stops, and once no batch followed the last confirmed one
	// for 20ms (or CheckpointEvery if shorter).
	CheckpointEvery time.Duration
	RetryMin        time.Duration // default 100ms
	RetryMax        time.Duration // default 10s
	// NackAttempts is how many times a message the broker nacks is
	// published before its lane is parked (default 5).
	NackAttempts int
	// Parking keeps the parked lanes. Required; when nil, the checkpoint
	// store is used if it is a ParkStore (the bolt read model is).
	Parking  ParkStore
	Clock    Clock // ParkedAt; default time.Now
	Observer Observer
}

// Lifecycle folds every order stream and publishes, for each transition,
// the AccelByte event and the BookWorm command it causes. Batches are
// published in a pipeline, but the checkpoint only ever moves to the end of
// a batch whose messages, and every earlier batch's, the broker confirmed
// or set aside in a parked lane: after a crash it publishes again from
// there, with the same message ids.
//
// A message that cannot be built, or that the broker refuses for good,
// parks its lane (the order's AccelByte events, or its BookWorm commands):
// the lane's later messages are held, every other lane goes on, and
// RetryParked publishes the held ones after a fix. See specs/lifecycle.md.
//
// Only one Lifecycle may run at a time across instances; Run's caller holds
// the lease (Leadership). With a SharedCheckpoint, one that lost the lease
// is fenced at its next checkpoint save and stops.
type Lifecycle struct {
	log    domain.EventLog
	pub    Publisher
	cps    CheckpointStore
	cfg    LifecycleConfig
	states *states

	inflight   chan *flight
	budget     *budget        // InFlightMessages, held by flights until they land
	publishing sync.WaitGroup // the publish goroutines of batches in flight

	// mu serializes handle and RetryParked, so a retry sees exactly the
	// facts handle has seen and none of a lane's messages slips between.
	mu      sync.Mutex
	running bool
	handled *domain.Position // last fact handled (or the checkpoint at start)

	// pmu guards parked; a park is stored and set here in one step.
	pmu     sync.Mutex
	parked  map[lane]Parked
	nparked atomic.Int32 // len(parked), read without pmu on the hot path
}

// flight is one batch on its way to the broker.
type flight struct {
	pos  domain.Position
	msgs []domain.Outbound
	srcs []source // aligned with msgs
	done chan struct{}
	ok   bool
}

// source is the fact a message was caused by: a park starts there.
type source struct {
	stream string
	rev    uint64
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
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 64
	}
	if cfg.InFlightMessages <= 0 {
		cfg.InFlightMessages = 2048
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
	if cfg.NackAttempts <= 0 {
		cfg.NackAttempts = 5
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if ps, ok := cps.(ParkStore); ok && cfg.Parking == nil {
		cfg.Parking = ps
	}
	return &Lifecycle{log: log, pub: pub, cps: cps, cfg: cfg, states: newStates(log, cfg.Rules, cfg.CacheSize, true)}
}

// Run publishes until ctx is done. It returns nil on cancellation and an
// error when it cannot start, or (matching ErrFenced) when a checkpoint
// save was fenced: another instance took the role, so it stops at once
// and publishes nothing more. Run may be called again once it returned
// (the next term of a leader), never twice at the same time.
func (l *Lifecycle) Run(ctx context.Context) error {
	l.states.reset() // folds of an earlier run may be ahead of the checkpoint
	after, err := l.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: a shutdown, not a failure
		}
		return err
	}
	defer l.stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l.inflight = make(chan *flight, l.cfg.InFlight)
	l.budget = newBudget(int64(l.cfg.InFlightMessages))
	committed := make(chan struct{})
	var fenced error
	go func() {
		defer close(committed)
		fenced = l.commit(ctx, cancel)
	}()
	f := &follower{name: LifecycleName, log: l.log, batchSize: l.cfg.BatchSize, batchWait: l.cfg.BatchWait,
		retryMin: l.cfg.RetryMin, retryMax: l.cfg.RetryMax, obs: l.cfg.Observer}
	err = f.run(ctx, after, l.handle)
	close(l.inflight)
	<-committed
	l.publishing.Wait() // nothing Run started outlives it
	if fenced != nil {
		return fenced
	}
	return err
}

// start loads the checkpoint and the parked lanes.
func (l *Lifecycle) start(ctx context.Context) (*domain.Position, error) {
	if l.cfg.Parking == nil {
		return nil, fmt.Errorf("%s: no ParkStore configured", LifecycleName)
	}
	after, err := l.cps.Checkpoint(ctx, LifecycleName)
	if err != nil {
		return nil, fmt.Errorf("load %s checkpoint: %w", LifecycleName, err)
	}
	lanes, err := l.cfg.Parking.ListParked(ctx)
	if err != nil {
		return nil, fmt.Errorf("load parked lanes: %w", err)
	}
	l.pmu.Lock()
	l.parked = make(map[lane]Parked, len(lanes))
	for _, p := range lanes {
		l.parked[p.lane()] = p
	}
	l.nparked.Store(int32(len(l.parked)))
	l.pmu.Unlock()
	l.mu.Lock()
	l.running, l.handled = true, after
	l.mu.Unlock()
	return after, nil
}

func (l *Lifecycle) stop() {
	l.mu.Lock()
	l.running = false
	l.mu.Unlock()
}

// handle folds a batch and starts publishing its messages; the committer
// moves the checkpoint once they are confirmed (or parked).
func (l *Lifecycle) handle(ctx context.Context, batch []domain.RecordedEvent) error {
	fl, err := l.prepare(ctx, batch)
	if err != nil {
		return err
	}
	// A batch larger than the whole budget waits for every other flight.
	n := int64(min(len(fl.msgs), l.cfg.InFlightMessages))
	if err := l.budget.acquire(ctx, n); err != nil {
		return err
	}
	l.publishing.Go(func() {
		defer close(fl.done)
		defer l.budget.release(n)
		fl.ok = l.fly(ctx, fl)
	})
	select {
	case l.inflight <- fl: // blocks while InFlight batches await confirms
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare folds a batch into a flight: the messages to publish, without
// those of parked lanes. A message that cannot be built parks its lane
// here, stored before the batch goes on.
func (l *Lifecycle) prepare(ctx context.Context, batch []domain.RecordedEvent) (*flight, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fl := &flight{pos: batch[len(batch)-1].Position, done: make(chan struct{}),
		msgs: make([]domain.Outbound, 0, len(batch)), srcs: make([]source, 0, len(batch))}
	for _, re := range batch {
		msgs, ub, err := l.react(ctx, re)
		if err == nil {
			err = l.parkUnbuildable(ctx, re, ub)
		}
		if err != nil {
			l.states.reset() // folds may be ahead of what was handled
			return nil, err
		}
		for _, m := range msgs {
			fl.msgs = append(fl.msgs, m)
			fl.srcs = append(fl.srcs, source{re.Stream, re.Revision})
		}
	}
	if l.nparked.Load() > 0 {
		fl.msgs, fl.srcs = l.unheld(fl.msgs, fl.srcs)
	}
	l.handled = &fl.pos
	return fl, nil
}

// fly publishes a flight's messages until each is confirmed or its lane
// is parked, or ctx ends (false). Only the messages not yet confirmed are
// sent again: a refusal tells which; any other error is transient and
// the rest of the flight is sent again, without end.
func (l *Lifecycle) fly(ctx context.Context, fl *flight) bool {
	msgs, srcs := fl.msgs, fl.srcs
	var nacks map[string]int // by message id; made on the first refusal
	wait := l.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return false // stopped (or fenced) while the batch waited
		}
		if attempt > 1 && l.nparked.Load() > 0 {
			msgs, srcs = l.unheld(msgs, srcs) // a lane parked meanwhile
		}
		if len(msgs) == 0 {
			return true
		}
		err := l.pub.Publish(ctx, msgs)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var refused *domain.RefusedError
		if errors.As(err, &refused) {
			if nacks == nil {
				nacks = map[string]int{}
			}
			var perr error
			if msgs, srcs, perr = l.refused(ctx, msgs, srcs, refused, nacks); perr != nil {
				return false // ctx ended before a park was stored
			}
			if len(msgs) == 0 {
				return true
			}
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

// idleCheckpoint is how long the committer waits for the next batch
// before it writes the checkpoint of the last: under a light, steady load
// batches come every few milliseconds, and a save after each one would
// cost the read model an fsync per batch.
const idleCheckpoint = 20 * time.Millisecond

// commit waits for batches in order and writes the checkpoint of the last
// one confirmed: at most every CheckpointEvery while busy, once no batch
// came for idleCheckpoint, and on the way out. A fenced save stops the Run
// (stop) at once, with no retry and no last save; commit returns that
// error.
func (l *Lifecycle) commit(ctx context.Context, stop context.CancelCauseFunc) (fenced error) {
	c := &committer{l: l}
	// The last save must happen even though ctx is done.
	defer func() {
		c.save(context.WithoutCancel(ctx))
		fenced = c.fenced
	}()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		fl, ok := c.next(ctx, idle)
		if !ok {
			if c.fenced != nil {
				stop(c.fenced)
				for range l.inflight {
				}
			}
			return nil
		}
		<-fl.done
		if !fl.ok {
			// Cancelled before the broker confirmed: nothing after this
			// batch may be checkpointed.
			for range l.inflight {
			}
			return nil
		}
		p := fl.pos
		c.confirmed, c.dirty = &p, true
		if time.Since(c.saved) >= l.cfg.CheckpointEvery {
			c.save(ctx)
		}
		if c.fenced != nil {
			stop(c.fenced)
			for range l.inflight {
			}
			return nil
		}
	}
}

// next returns the next batch in flight (false once there are no more,
// or when a save was fenced). While none is queued and the confirmed
// position is not saved, it saves it after idleCheckpoint without a batch.
func (c *committer) next(ctx context.Context, idle *time.Timer) (*flight, bool) {
	l := c.l
	for {
		if c.fenced != nil {
			return nil, false
		}
		if !c.dirty {
			fl, ok := <-l.inflight
			return fl, ok
		}
		idle.Reset(min(idleCheckpoint, l.cfg.CheckpointEvery))
		select {
		case fl, ok := <-l.inflight:
			idle.Stop()
			return fl, ok
		case <-idle.C:
			c.save(ctx)
		}
	}
}

// committer is the checkpoint state of one Run's commit.
type committer struct {
	l         *Lifecycle
	confirmed *domain.Position
	saved     time.Time
	dirty     bool
	fenced    error // a save matched ErrFenced: never save again
}

// save writes the confirmed position if it moved, retrying until it is
// stored, ctx ends, or the save is fenced.
func (c *committer) save(ctx context.Context) {
	l := c.l
	for c.dirty && c.fenced == nil {
		err := l.cps.SaveCheckpoint(ctx, LifecycleName, *c.confirmed)
		if err == nil {
			c.dirty, c.saved = false, time.Now()
			return
		}
		if errors.Is(err, ErrFenced) {
			c.fenced = fmt.Errorf("%s: %w", LifecycleName, err)
			return
		}
		if ctx.Err() != nil {
			return
		}
		l.cfg.Observer.Retry(LifecycleName, fmt.Errorf("save checkpoint %s: %w", c.confirmed, err), l.cfg.RetryMin)
		if sleepCtx(ctx, l.cfg.RetryMin) != nil {
			return
		}
	}
}

// react folds one recorded event and returns the messages its transitions
// cause, and those that cannot be built.
func (l *Lifecycle) react(ctx context.Context, re domain.RecordedEvent) ([]domain.Outbound, []*domain.UnbuildableError, error) {
	cf, err := l.states.at(ctx, re.Stream, re.Revision)
	if err != nil {
		return nil, nil, err
	}
	oc, ok, err := cf.apply(re)
	if !ok {
		l.cfg.Observer.Poison(LifecycleName, re, err)
		return nil, nil, nil
	}
	if len(oc.Transitions) == 0 {
		return nil, nil, nil
	}
	return OutboundFor(l.cfg.Outbound, re.Stream, cf.f.State(), oc)
}

// OutboundFor lists the messages an outcome's transitions cause, their
// bodies rendered, and apart those that cannot be built (see
// domain.Intents). The error is for the whole outcome (a bad cfg).
func OutboundFor(cfg domain.OutboundConfig, stream string, s domain.State, oc domain.Outcome) ([]domain.Outbound, []*domain.UnbuildableError, error) {
	var out []domain.Outbound
	var bad []*domain.UnbuildableError
	for _, t := range oc.Transitions {
		msgs, err := domain.Intents(cfg, stream, s, t)
		ub, err := splitUnbuildable(err)
		if err != nil {
			return nil, nil, fmt.Errorf("intents for %s@%d: %w", stream, t.Cause.Revision, err)
		}
		bad = append(bad, ub...)
		for _, m := range msgs {
			body, err := codec.Body(cfg, m)
			if err != nil {
				bad = append(bad, &domain.UnbuildableError{OrderID: m.OrderID, Kind: m.Kind, Name: m.Name, MessageID: m.MessageID,
					Err: fmt.Errorf("body for %s@%d: %w", stream, t.Cause.Revision, err)})
				continue
			}
			m.Body = body
			out = append(out, m)
		}
	}
	return out, bad, nil
}

// splitUnbuildable separates Intents' per-message errors from an error
// that fails the whole transition.
func splitUnbuildable(err error) ([]*domain.UnbuildableError, error) {
	if err == nil {
		return nil, nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]*domain.UnbuildableError, 0, len(errs))
	for _, e := range errs {
		u, ok := e.(*domain.UnbuildableError)
		if !ok {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
