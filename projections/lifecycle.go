package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
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
	BatchSize int           // events per confirmed publish (default 512)
	BatchWait time.Duration // how long to wait for a fuller batch (default 10ms)
	CacheSize int           // order states kept in memory (default 50,000)
	Observer  Observer
}

// Lifecycle folds every order stream and publishes, for each transition,
// the AccelByte event and the BookWorm command it causes. It publishes a
// batch, waits for the broker's confirms, and only then moves its
// checkpoint: after a crash it publishes again with the same message ids.
//
// Only one Lifecycle may run at a time across instances; Run's caller holds
// the lease.
type Lifecycle struct {
	log    domain.EventLog
	pub    Publisher
	cps    CheckpointStore
	cfg    LifecycleConfig
	states *states
}

// NewLifecycle builds a lifecycle publisher.
func NewLifecycle(log domain.EventLog, pub Publisher, cps CheckpointStore, cfg LifecycleConfig) *Lifecycle {
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
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
	f := &follower{name: LifecycleName, log: l.log, batchSize: l.cfg.BatchSize, batchWait: l.cfg.BatchWait, obs: l.cfg.Observer}
	return f.run(ctx, after, l.handle)
}

func (l *Lifecycle) handle(ctx context.Context, batch []domain.RecordedEvent) error {
	var out []domain.Outbound
	for _, re := range batch {
		msgs, err := l.react(ctx, re)
		if err != nil {
			l.states.reset() // folds may be ahead of the checkpoint now
			return err
		}
		out = append(out, msgs...)
	}
	if len(out) > 0 {
		if err := l.pub.Publish(ctx, out); err != nil {
			l.states.reset()
			return fmt.Errorf("publish %d messages: %w", len(out), err)
		}
	}
	last := batch[len(batch)-1].Position
	if err := l.cps.SaveCheckpoint(ctx, LifecycleName, last); err != nil {
		l.states.reset()
		return fmt.Errorf("save %s checkpoint %s: %w", LifecycleName, last, err)
	}
	return nil
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

// OutboundFor lists the messages an outcome's transitions cause.
func OutboundFor(cfg domain.OutboundConfig, stream string, s domain.State, oc domain.Outcome) ([]domain.Outbound, error) {
	var out []domain.Outbound
	for _, t := range oc.Transitions {
		msgs, err := domain.Intents(cfg, stream, s, t)
		if err != nil {
			return nil, fmt.Errorf("intents for %s@%d: %w", stream, t.Cause.Revision, err)
		}
		out = append(out, msgs...)
	}
	return out, nil
}
