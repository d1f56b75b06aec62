package projections_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The fold and checkpoint stages of the lifecycle publisher, one test per
// failure class they can meet (building and publishing are in
// parking_test.go). The faults are injected in front of the real bbolt
// store and read model.

// stageObs records what the projection reports.
type stageObs struct {
	mu      sync.Mutex
	poison  []string
	retries []string
}

func (o *stageObs) Batch(string, int, domain.Position) {}
func (o *stageObs) Poison(_ string, e domain.RecordedEvent, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.poison = append(o.poison, fmt.Sprintf("%s@%d: %v", e.Stream, e.Revision, err))
}
func (o *stageObs) Retry(_ string, err error, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries = append(o.retries, err.Error())
}
func (o *stageObs) seen() (poison, retries []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.poison...), append([]string(nil), o.retries...)
}

// Fold, permanent for one order: a stored fact that cannot be decoded is
// skipped and reported; the other orders go on and the checkpoint moves.
func TestUndecodableStoredFactIsSkippedAndOthersGoOn(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	_, err := l.Append(context.Background(), domain.StreamName(orderA), domain.Any,
		domain.EventData{ID: "00000000-0000-4000-8000-0000000000aa", Type: string(domain.FactUserCheckedOut), Data: []byte(`{"orderId":`)})
	require.NoError(t, err)
	appendFact(t, l, "b1", checkout(orderB, t0))

	obs := &stageObs{}
	pub := &recorder{}
	stop := running(t, projections.NewLifecycle(l, pub, rm, lifecycleCfg(obs)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	stop()
	assert.Equal(t, []string{"orderCreated", "PlaceOrderCommand"}, pub.names(), "order B is published")
	poison, _ := obs.seen()
	require.Len(t, poison, 1)
	assert.Contains(t, poison[0], domain.StreamName(orderA)+"@0")
}

// flakyReads fails the first n stream reads as an unavailable store would.
type flakyReads struct {
	*bolt.Log
	left atomic.Int32
}

func (f *flakyReads) ReadStream(ctx context.Context, stream string, from uint64, dir domain.Direction, max int) ([]domain.RecordedEvent, error) {
	if f.left.Add(-1) >= 0 {
		return nil, fmt.Errorf("read %s: %w", stream, domain.ErrUnavailable)
	}
	return f.Log.ReadStream(ctx, stream, from, dir, max)
}

// Fold, transient: the stream cannot be read to rebuild a fold (a restart
// met an order in the middle); the batch is retried until it can, and its
// messages go out once.
func TestFoldRetriesAStreamItCannotRead(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "a1", checkout(orderA, t0))
	first := &recorder{}
	stop := running(t, projections.NewLifecycle(l, first, rm, lifecycleCfg(nil)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	stop()

	appendFact(t, l, "a2", basketDeleted(orderA, t0.Add(time.Minute)))
	flaky := &flakyReads{Log: l}
	flaky.left.Store(3)
	obs := &stageObs{}
	pub := &recorder{}
	stop = running(t, projections.NewLifecycle(flaky, pub, rm, lifecycleCfg(obs)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	stop()
	assert.Equal(t, []string{"orderCharged", "DeleteBasketCompleteCommand"}, pub.names(), "published once, after the read succeeded")
	_, retries := obs.seen()
	assert.GreaterOrEqual(t, len(retries), 3)
	assert.Contains(t, retries[0], domain.ErrUnavailable.Error())
}

// flakyCheckpoints fails the first n checkpoint writes.
type flakyCheckpoints struct {
	*bolt.ReadModel
	left atomic.Int32
}

func (f *flakyCheckpoints) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	if f.left.Add(-1) >= 0 {
		return errors.New("read model: disk I/O error")
	}
	return f.ReadModel.SaveCheckpoint(ctx, name, pos)
}

// Checkpointing, transient: a checkpoint that cannot be written is retried
// until it is; nothing is published twice meanwhile.
func TestCheckpointWriteIsRetried(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "a1", checkout(orderA, t0))
	appendFact(t, l, "b1", checkout(orderB, t0))
	flaky := &flakyCheckpoints{ReadModel: rm}
	flaky.left.Store(4)
	obs := &stageObs{}
	pub := &recorder{}
	stop := running(t, projections.NewLifecycle(l, pub, flaky, lifecycleCfg(obs)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	stop()
	assert.Len(t, pub.names(), 4)
	for id, n := range pub.ids() {
		assert.Equal(t, 1, n, "%s published once", id)
	}
	_, retries := obs.seen()
	require.NotEmpty(t, retries)
	assert.Contains(t, retries[0], "save checkpoint")
}
