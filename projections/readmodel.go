package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// ReadModelName is the order read model's checkpoint name.
const ReadModelName = "readmodel"

// ReadModelConfig tunes the read-model projection.
type ReadModelConfig struct {
	Rules     domain.Rules
	BatchSize int
	BatchWait time.Duration
	CacheSize int
	Observer  Observer
}

// Orders keeps the order read model up to date: one summary per order,
// written in the same transaction as the checkpoint that covers it.
type Orders struct {
	log    domain.EventLog
	rm     ReadModel
	cfg    ReadModelConfig
	states *states
}

// NewOrders builds the read-model projection.
func NewOrders(log domain.EventLog, rm ReadModel, cfg ReadModelConfig) *Orders {
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	return &Orders{log: log, rm: rm, cfg: cfg, states: newStates(log, cfg.Rules, cfg.CacheSize, false)}
}

// Run folds new facts into the read model until ctx is done.
func (o *Orders) Run(ctx context.Context) error {
	after, err := o.rm.Checkpoint(ctx, ReadModelName)
	if err != nil {
		return fmt.Errorf("load %s checkpoint: %w", ReadModelName, err)
	}
	f := &follower{name: ReadModelName, log: o.log, batchSize: o.cfg.BatchSize, batchWait: o.cfg.BatchWait, obs: o.cfg.Observer}
	return f.run(ctx, after, o.handle)
}

func (o *Orders) handle(ctx context.Context, batch []domain.RecordedEvent) error {
	// One summary per stream and batch, taken after its last event: the
	// state is copied once, not once per event.
	type touched struct {
		rev uint64
		cf  *cachedFold
	}
	latest := make(map[string]touched, len(batch))
	order := make([]string, 0, len(batch))
	for _, re := range batch {
		cf, err := o.states.at(ctx, re.Stream, re.Revision)
		if err != nil {
			o.states.reset()
			return err
		}
		if _, ok, err := cf.apply(re); !ok {
			o.cfg.Observer.Poison(ReadModelName, re, err)
		}
		if _, seen := latest[re.Stream]; !seen {
			order = append(order, re.Stream)
		}
		latest[re.Stream] = touched{rev: re.Revision, cf: cf}
	}
	out := make([]Summary, 0, len(order))
	for _, st := range order {
		t := latest[st]
		out = append(out, SummaryOf(st, t.rev, t.cf.facts, t.cf.f.State()))
	}
	last := batch[len(batch)-1].Position
	if err := o.rm.Apply(ctx, ReadModelName, last, out); err != nil {
		o.states.reset()
		return fmt.Errorf("apply %d summaries at %s: %w", len(out), last, err)
	}
	return nil
}
