package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// swappableReadModel lets a replay put a rebuilt read model in place while
// the projections keep using it: calls wait for the swap, then go to the
// new file.
type swappableReadModel struct {
	mu  sync.RWMutex
	cur *bolt.ReadModel
}

var _ projections.ReadModel = (*swappableReadModel)(nil)

func (s *swappableReadModel) Apply(ctx context.Context, name string, pos domain.Position, rows []projections.Summary) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Apply(ctx, name, pos, rows)
}

func (s *swappableReadModel) Checkpoint(ctx context.Context, name string) (*domain.Position, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Checkpoint(ctx, name)
}

func (s *swappableReadModel) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.SaveCheckpoint(ctx, name, pos)
}

func (s *swappableReadModel) Summary(ctx context.Context, id string) (projections.Summary, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Summary(ctx, id)
}

func (s *swappableReadModel) Summaries(ctx context.Context, after string, limit int) ([]projections.Summary, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Summaries(ctx, after, limit)
}

func (s *swappableReadModel) Due(ctx context.Context, now time.Time, limit int) ([]projections.Due, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Due(ctx, now, limit)
}

func (s *swappableReadModel) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Close()
}

// replayInto rebuilds the read model next to the current one and, unless
// dryRun, swaps it in. The new file only replaces the old one by an atomic
// rename after it is complete, so a crash mid-replay leaves the old model
// intact and usable. The lifecycle publisher's checkpoint is carried over:
// a replay never republishes what was already published.
func replayInto(ctx context.Context, store domain.EventLog, rm *swappableReadModel, rules domain.Rules,
	cur domain.Currency, dryRun, restate bool, progress func(projections.ReplayProgress)) (projections.ReplayResult, int, error) {
	path := rm.cur.Path()
	tmp := fmt.Sprintf("%s.replay-%d", path, time.Now().UnixNano())
	// No fsync per batch: an unfinished rebuild is thrown away, and the
	// finished one is synced once before it is renamed into place.
	next, err := bolt.OpenReadModelWith(tmp, bolt.ReadModelOptions{NoSync: true})
	if err != nil {
		return projections.ReplayResult{}, 0, err
	}
	cleanup := func() { next.Close(); os.Remove(tmp) }

	var sink projections.ReplaySink = next
	res, err := projections.Replay(ctx, store, projections.ReplayOptions{Rules: rules, Current: rm, Sink: sink, Progress: progress})
	if err != nil || dryRun {
		cleanup()
		return res, 0, err
	}
	restated := 0
	if restate {
		if restated, err = projections.Restate(ctx, store, cur, res.Changes); err != nil {
			cleanup()
			return res, 0, err
		}
	}
	if res.Head != nil {
		// The projection goes on from where the replay began; facts after
		// that (restatements included) are folded again, which is harmless.
		if err := next.SaveCheckpoint(ctx, projections.ReadModelName, *res.Head); err != nil {
			cleanup()
			return res, 0, err
		}
	}

	rm.mu.Lock()
	defer rm.mu.Unlock()
	if cp, err := rm.cur.Checkpoint(ctx, projections.LifecycleName); err != nil {
		cleanup()
		return res, 0, err
	} else if cp != nil {
		if err := next.SaveCheckpoint(ctx, projections.LifecycleName, *cp); err != nil {
			cleanup()
			return res, 0, err
		}
	}
	if err := next.Sync(); err != nil {
		cleanup()
		return res, 0, err
	}
	if err := next.Close(); err != nil {
		os.Remove(tmp)
		return res, 0, err
	}
	if err := rm.cur.Close(); err != nil {
		os.Remove(tmp)
		return res, 0, err
	}
	swapErr := bolt.ReplaceFile(tmp, path)
	reopened, err := bolt.OpenReadModel(path)
	if err != nil {
		return res, restated, fmt.Errorf("reopen read model after replay: %w", err)
	}
	rm.cur = reopened
	return res, restated, swapErr
}

// removeStaleReplays deletes half-built read models a crashed replay left.
func removeStaleReplays(path string) {
	matches, _ := filepath.Glob(path + ".replay-*")
	for _, m := range matches {
		os.Remove(m)
	}
}

func (s *service) replay(ctx context.Context, dryRun, restate bool) (projections.ReplayResult, error) {
	if !dryRun {
		// Stop the read-model projection across the swap so that it resumes
		// from the rebuilt model's checkpoint.
		s.orders.Stop()
		defer s.orders.Start()
	}
	res, restated, err := replayInto(ctx, s.store, s.rm, s.cfg.rules(), s.cfg.currency(), dryRun, restate, nil)
	if err == nil {
		s.logger.Info("replay finished", zap.Int64("facts", res.Facts), zap.Int64("orders", res.Orders),
			zap.Int("changes", len(res.Changes)), zap.Int("restated", restated), zap.Bool("dry_run", dryRun))
	}
	return res, err
}
