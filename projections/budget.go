package projections

import (
	"context"
	"sync"
)

// budget bounds what is in flight (the lifecycle's messages awaiting
// confirms): acquire waits until n units are free, release returns them.
// An acquirer takes all its units at once or none, so two cannot hold
// parts of what each needs.
type budget struct {
	mu    sync.Mutex
	free  int64
	freed chan struct{} // closed and replaced by every release
}

func newBudget(n int64) *budget { return &budget{free: n, freed: make(chan struct{})} }

func (b *budget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-freed:
		}
	}
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.free += n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}
