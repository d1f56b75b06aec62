package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Swappable is a read model that a replay can rebuild and put in place
// while the projections keep using it: calls wait for the swap, then go to
// the new file.
type Swappable struct {
	mu  sync.RWMutex
	cur *ReadModel
}

var _ projections.ReadModel = (*Swappable)(nil)

// NewSwappable wraps an open read model; Close closes it.
func NewSwappable(cur *ReadModel) *Swappable { return &Swappable{cur: cur} }

// Apply implements projections.ReadModel.
func (s *Swappable) Apply(ctx context.Context, name string, pos domain.Position, rows []projections.Summary) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Apply(ctx, name, pos, rows)
}

// Checkpoint implements projections.ReadModel.
func (s *Swappable) Checkpoint(ctx context.Context, name string) (*domain.Position, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Checkpoint(ctx, name)
}

// SaveCheckpoint implements projections.ReadModel.
func (s *Swappable) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.SaveCheckpoint(ctx, name, pos)
}

// Summary implements projections.ReadModel.
func (s *Swappable) Summary(ctx context.Context, id string) (projections.Summary, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Summary(ctx, id)
}

// Summaries implements projections.ReadModel.
func (s *Swappable) Summaries(ctx context.Context, after string, limit int) ([]projections.Summary, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Summaries(ctx, after, limit)
}

// Due implements projections.ReadModel.
func (s *Swappable) Due(ctx context.Context, now time.Time, limit int) ([]projections.Due, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Due(ctx, now, limit)
}

var _ projections.OrderIndex = (*Swappable)(nil)

// Orders implements projections.OrderIndex: the current file's indexes
// (after a swap, those the rebuild wrote).
func (s *Swappable) Orders(ctx context.Context, q projections.OrderQuery) (projections.OrderPage, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Orders(ctx, q)
}

// Overview implements projections.OrderIndex.
func (s *Swappable) Overview(ctx context.Context) (projections.Overview, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Overview(ctx)
}

// Days implements projections.OrderIndex.
func (s *Swappable) Days(ctx context.Context, from, to string) ([]projections.DayTotals, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Days(ctx, from, to)
}

// ReleaseMemory drops the file's mapped pages (see ReadModel.ReleaseMemory).
func (s *Swappable) ReleaseMemory() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.ReleaseMemory()
}

// Close closes the current file.
func (s *Swappable) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Close()
}

// RebuildOptions say how to rebuild.
type RebuildOptions struct {
	Rules    domain.Rules
	DryRun   bool // compare only; the current model stays
	Restate  bool // append an OrderRestated fact to each changed order
	Progress func(projections.ReplayProgress)
}

// Rebuild folds every order stream of log into a new read model next to
// the current one and, unless DryRun, swaps it in. The new file replaces
// the old one only by an atomic rename once it is complete, so a crash
// mid-replay leaves the old model intact (RemoveStaleRebuilds clears the
// leftover). The lifecycle publisher's checkpoint and parked lanes are
// carried over: a replay never republishes what was already published,
// nor releases a parked lane. It returns the
// replay's result and how many orders were restated.
func (s *Swappable) Rebuild(ctx context.Context, log domain.EventLog, opts RebuildOptions) (projections.ReplayResult, int, error) {
	s.mu.RLock()
	path := s.cur.Path()
	s.mu.RUnlock()
	tmp := fmt.Sprintf("%s.replay-%d", path, time.Now().UnixNano())
	// No fsync per batch: an unfinished rebuild is thrown away, and the
	// finished one is synced once before it is renamed into place. Its
	// order indexes are built once the rows are in.
	next, err := OpenReadModelWith(tmp, ReadModelOptions{NoSync: true, DeferIndexes: true})
	if err != nil {
		return projections.ReplayResult{}, 0, err
	}
	res, err := projections.Replay(ctx, log, projections.ReplayOptions{Rules: opts.Rules, Current: s, Sink: next, Progress: opts.Progress})
	if err != nil || opts.DryRun {
		return res, 0, errors.Join(err, discard(next, tmp))
	}
	if err := next.BuildIndexes(ctx); err != nil {
		return res, 0, errors.Join(err, discard(next, tmp))
	}
	restated := 0
	if opts.Restate {
		if restated, err = projections.Restate(ctx, log, opts.Rules.Currency, res.Changes); err != nil {
			return res, 0, errors.Join(err, discard(next, tmp))
		}
	}
	if res.Head != nil {
		// The projection goes on from where the replay began; facts after
		// that (restatements included) are folded again, which is harmless.
		if err := next.SaveCheckpoint(ctx, projections.ReadModelName, *res.Head); err != nil {
			return res, 0, errors.Join(err, discard(next, tmp))
		}
	}
	res.Restated = restated
	return res, restated, s.swap(ctx, next, tmp)
}

// swap carries the lifecycle checkpoint and parked lanes over to next and
// renames it into place of the current file, which it then reopens. Both
// belong to the publisher, not to the fold a replay rebuilds: a lane parked
// before the replay stays parked after it.
func (s *Swappable) swap(ctx context.Context, next *ReadModel, tmp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.cur.Path()
	err := carryLifecycle(ctx, s.cur, next)
	if err == nil {
		err = next.Sync()
	}
	if err != nil {
		return errors.Join(err, discard(next, tmp))
	}
	if err := next.Close(); err != nil {
		return errors.Join(fmt.Errorf("close rebuilt read model: %w", err), os.Remove(tmp))
	}
	if err := s.cur.Close(); err != nil {
		return errors.Join(fmt.Errorf("close read model: %w", err), os.Remove(tmp))
	}
	swapErr := ReplaceFile(tmp, path)
	reopened, err := OpenReadModel(path)
	if err != nil {
		return errors.Join(swapErr, fmt.Errorf("reopen read model after replay: %w", err))
	}
	s.cur = reopened
	return swapErr
}

// carryLifecycle copies the lifecycle publisher's checkpoint and parked
// lanes from cur to next.
func carryLifecycle(ctx context.Context, cur, next *ReadModel) error {
	cp, err := cur.Checkpoint(ctx, projections.LifecycleName)
	if err == nil && cp != nil {
		err = next.SaveCheckpoint(ctx, projections.LifecycleName, *cp)
	}
	if err != nil {
		return err
	}
	parked, err := cur.ListParked(ctx)
	if err == nil && len(parked) > 0 {
		err = next.Park(ctx, parked)
	}
	return err
}

func discard(rm *ReadModel, path string) error {
	err := rm.Close()
	if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

// RemoveStaleRebuilds deletes half-built read models a crashed replay of
// the read model at path left behind.
func RemoveStaleRebuilds(path string) error {
	matches, err := filepath.Glob(path + ".replay-*")
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range matches {
		errs = append(errs, os.Remove(m))
	}
	return errors.Join(errs...)
}
