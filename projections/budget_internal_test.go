package projections

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBudgetWaitsForWholeRequests(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	require.NoError(t, b.acquire(ctx, 7))
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 5) }()
	select {
	case err := <-got:
		t.Fatalf("5 of 3 free granted: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(1) // 4 free: still not enough
	select {
	case err := <-got:
		t.Fatalf("5 of 4 free granted: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(6)
	require.NoError(t, <-got)
	assert.Equal(t, int64(5), b.free)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, b.acquire(cctx, 6), context.Canceled, "a stopped run does not wait")
	assert.Equal(t, int64(5), b.free, "a refused request takes nothing")
}
