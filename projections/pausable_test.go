package projections_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/projections"
)

func TestPausableStopsAndStartsTheProjection(t *testing.T) {
	var running, starts atomic.Int32
	started := make(chan struct{}, 4)
	p := projections.NewPausable(func(ctx context.Context) error {
		running.Add(1)
		starts.Add(1)
		started <- struct{}{}
		<-ctx.Done()
		running.Add(-1)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-started

	resume, err := p.Pause(ctx)
	require.NoError(t, err)
	assert.Equal(t, int32(0), running.Load(), "Pause returns once the projection has stopped")
	assert.Equal(t, int32(1), starts.Load())
	resume()
	<-started
	assert.Equal(t, int32(2), starts.Load(), "resume starts it again")

	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, int32(0), running.Load(), "nothing it started outlives Run")
	_, err = p.Pause(context.Background())
	assert.ErrorIs(t, err, projections.ErrNotRunning)
}

func TestPausableReturnsTheProjectionsFailure(t *testing.T) {
	boom := errors.New("boom")
	p := projections.NewPausable(func(ctx context.Context) error { return boom })
	assert.ErrorIs(t, p.Run(context.Background()), boom)
}

func TestPauseGivesUpWithItsContext(t *testing.T) {
	p := projections.NewPausable(func(ctx context.Context) error { <-ctx.Done(); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Pause(ctx) // Run never started: nobody takes the request
	assert.ErrorIs(t, err, context.Canceled)
}
