package projections_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
	"github.com/bookworm-ledger/ledger/projections/projectionspec"
)

// The shared state is tested over both event logs a deployment can share:
// the embedded one and the EventStoreDB client against the in-process
// protocol server.

func openESDB(t *testing.T) *eventstoredb.Log {
	t.Helper()
	srv := esdbtest.MustStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: srv.ConnectionString()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

var sharedLogs = []struct {
	name string
	open func(t *testing.T) domain.EventLog
}{
	{"bolt", func(t *testing.T) domain.EventLog { return openLog(t) }},
	{"esdb", func(t *testing.T) domain.EventLog { return openESDB(t) }},
}

func eachLog(t *testing.T, fn func(t *testing.T, open func(t *testing.T) domain.EventLog)) {
	for _, l := range sharedLogs {
		t.Run(l.name, func(t *testing.T) { fn(t, l.open) })
	}
}

func claimed(t *testing.T, log domain.EventLog, owner string) *projections.SharedCheckpoint {
	t.Helper()
	cp := projections.NewSharedCheckpoint(log, projections.LifecycleName, owner)
	_, err := cp.Claim(context.Background(), nil)
	require.NoError(t, err)
	return cp
}

func TestContractSharedCheckpoint(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		projectionspec.RunCheckpointStore(t, func(t *testing.T) projections.CheckpointStore { return claimed(t, open(t), "a") })
	})
}

func TestContractSharedParks(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		projectionspec.RunParkStore(t, func(t *testing.T) projections.ParkStore { return projections.NewSharedParks(open(t)) })
	})
}

func TestSharedCheckpointSeedsAnAbsentStreamOnly(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		w, at, err := projections.NewSharedCheckpoint(open(t), projections.LifecycleName, "x").Writer(context.Background())
		require.NoError(t, err)
		assert.Empty(t, w, "never claimed: no writer")
		assert.True(t, at.IsZero())
		ctx, log := context.Background(), open(t)
		old := domain.Position{Commit: 42, Prepare: 41}
		seeds := 0
		seed := func(context.Context) (*domain.Position, error) { seeds++; return &old, nil }
		a := projections.NewSharedCheckpoint(log, projections.LifecycleName, "a")
		_, err = a.Checkpoint(ctx, projections.LifecycleName)
		require.Error(t, err, "not claimed yet")
		require.Error(t, a.SaveCheckpoint(ctx, projections.LifecycleName, old), "not claimed yet")

		got, err := a.Claim(ctx, seed)
		require.NoError(t, err)
		require.NotNil(t, got)
		assert.Equal(t, old, *got, "the stream was absent: the seed is the start")
		cp, err := a.Checkpoint(ctx, projections.LifecycleName)
		require.NoError(t, err)
		assert.Equal(t, old, *cp)
		_, err = a.Checkpoint(ctx, "orders")
		require.Error(t, err, "one projection's checkpoint")

		// Once the stream exists the seed is not asked.
		b := projections.NewSharedCheckpoint(log, projections.LifecycleName, "b")
		got, err = b.Claim(ctx, seed)
		require.NoError(t, err)
		assert.Equal(t, old, *got)
		assert.Equal(t, 1, seeds)

		// Absent with no seed (or a nil one): from the start.
		c := projections.NewSharedCheckpoint(log, "other", "c")
		got, err = c.Claim(ctx, nil)
		require.NoError(t, err)
		assert.Nil(t, got)

		boom := errors.New("read model unreadable")
		d := projections.NewSharedCheckpoint(log, "third", "d")
		_, err = d.Claim(ctx, func(context.Context) (*domain.Position, error) { return nil, boom })
		assert.ErrorIs(t, err, boom)
	})
}

func TestSharedCheckpointFencesTheInstanceThatLostIt(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		ctx, log := context.Background(), open(t)
		p1, p2, p3 := domain.Position{Commit: 10, Prepare: 10}, domain.Position{Commit: 20, Prepare: 20}, domain.Position{Commit: 30, Prepare: 30}
		a := claimed(t, log, "a")
		require.NoError(t, a.SaveCheckpoint(ctx, projections.LifecycleName, p1))

		b := projections.NewSharedCheckpoint(log, projections.LifecycleName, "b")
		got, err := b.Claim(ctx, nil)
		require.NoError(t, err)
		assert.Equal(t, p1, *got, "B takes over where A saved")

		err = a.SaveCheckpoint(ctx, projections.LifecycleName, p2)
		require.ErrorIs(t, err, projections.ErrFenced)
		assert.ErrorIs(t, err, domain.ErrWrongExpectedVersion, "the cause is kept")
		assert.ErrorIs(t, a.SaveCheckpoint(ctx, projections.LifecycleName, p2), projections.ErrFenced, "and stays fenced")
		require.NoError(t, b.SaveCheckpoint(ctx, projections.LifecycleName, p3))

		evs, err := log.ReadStream(ctx, projections.CheckpointStream(projections.LifecycleName), 0, domain.Forwards, 0)
		require.NoError(t, err)
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		assert.Equal(t, []string{projections.EventCheckpointClaimed, projections.EventCheckpointSaved,
			projections.EventCheckpointClaimed, projections.EventCheckpointSaved}, types, "A's fenced saves wrote nothing")

		w, _, err := a.Writer(ctx)
		require.NoError(t, err)
		assert.Equal(t, "b", w, "anyone reads who writes the checkpoint now")

		// A claims back: B is fenced in turn.
		got, err = a.Claim(ctx, nil)
		require.NoError(t, err)
		assert.Equal(t, p3, *got)
		w, _, err = b.Writer(ctx)
		require.NoError(t, err)
		assert.Equal(t, "a", w)
		assert.ErrorIs(t, b.SaveCheckpoint(ctx, projections.LifecycleName, p3), projections.ErrFenced)
		require.NoError(t, a.SaveCheckpoint(ctx, projections.LifecycleName, p3))
	})
}

// Two instances claiming at once: both claims are stored, one after the
// other, and only the later claimer can save.
func TestSharedCheckpointConcurrentClaimsLeaveOneWriter(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		ctx, log := context.Background(), open(t)
		cps := []*projections.SharedCheckpoint{
			projections.NewSharedCheckpoint(log, projections.LifecycleName, "a"),
			projections.NewSharedCheckpoint(log, projections.LifecycleName, "b"),
		}
		var wg sync.WaitGroup
		for _, cp := range cps {
			wg.Go(func() {
				_, err := cp.Claim(ctx, nil)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		p := domain.Position{Commit: 5, Prepare: 5}
		errA := cps[0].SaveCheckpoint(ctx, projections.LifecycleName, p)
		errB := cps[1].SaveCheckpoint(ctx, projections.LifecycleName, p)
		assert.True(t, (errA == nil) != (errB == nil), "exactly one writer: %v, %v", errA, errB)
		for _, err := range []error{errA, errB} {
			if err != nil {
				assert.ErrorIs(t, err, projections.ErrFenced)
			}
		}
	})
}

// countingLog is the real event log, counting where parked-stream reads
// start, to see SharedParks read only the tail.
type countingLog struct {
	domain.EventLog
	mu    sync.Mutex
	froms []uint64
}

func (c *countingLog) ReadStream(ctx context.Context, stream string, from uint64, dir domain.Direction, max int) ([]domain.RecordedEvent, error) {
	if stream == projections.ParkedStream {
		c.mu.Lock()
		c.froms = append(c.froms, from)
		c.mu.Unlock()
	}
	return c.EventLog.ReadStream(ctx, stream, from, dir, max)
}

func TestSharedParksAreSeenByTheNextLeaderReadingOnlyTheTail(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		ctx, log := context.Background(), open(t)
		old := projections.NewSharedParks(log)
		pa := projections.Parked{OrderID: orderA, Stream: domain.StreamName(orderA), Kind: domain.KindAccelByte, Message: "orderCreated",
			MessageID: "m-a", Reason: projections.ReasonUnbuildable, Detail: "int32", ParkedAt: t0}
		pb := pa
		pb.OrderID, pb.Stream, pb.MessageID = orderB, domain.StreamName(orderB), "m-b"
		require.NoError(t, old.Park(ctx, []projections.Parked{pa}))
		require.NoError(t, old.Park(ctx, []projections.Parked{pb}))
		require.NoError(t, old.Unpark(ctx, orderA, domain.KindAccelByte))

		counted := &countingLog{EventLog: log}
		next := projections.NewSharedParks(counted)
		got, err := next.ListParked(ctx)
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, orderB, got[0].OrderID)
		assert.True(t, t0.Equal(got[0].ParkedAt))

		// The old leader writes once more; the next one catches up, and
		// both write on without conflict.
		require.NoError(t, old.Park(ctx, []projections.Parked{pa}))
		got, err = next.ListParked(ctx)
		require.NoError(t, err)
		assert.Len(t, got, 2)
		require.NoError(t, next.Unpark(ctx, orderB, domain.KindAccelByte))
		require.NoError(t, old.Unpark(ctx, orderA, domain.KindAccelByte))
		for _, ps := range []*projections.SharedParks{old, next} {
			got, err = ps.ListParked(ctx)
			require.NoError(t, err)
			assert.Empty(t, got)
		}
		counted.mu.Lock()
		defer counted.mu.Unlock()
		require.NotEmpty(t, counted.froms)
		assert.Equal(t, uint64(0), counted.froms[0], "the first list reads the stream")
		for _, from := range counted.froms[1:] {
			assert.Greater(t, from, uint64(0), "later ones only the tail")
		}
	})
}

func lastCheckpointEvent(t *testing.T, log domain.EventLog) domain.RecordedEvent {
	t.Helper()
	evs, err := log.ReadStream(context.Background(), projections.CheckpointStream(projections.LifecycleName), domain.EndOfStream, domain.Backwards, 1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return evs[0]
}

// A publisher whose checkpoint another instance claims stops at its next
// save, publishes nothing more, and Run says it was fenced; run again
// after claiming back (its next term), it resumes from the other's
// checkpoint with the same message ids.
func TestLifecycleStopsWhenItsCheckpointIsFenced(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		log := open(t)
		appendFact(t, log, "m1", checkout(orderA, t0))
		a := claimed(t, log, "a")
		pub := &recorder{}
		cfg := lifecycleCfg(nil)
		cfg.Parking = projections.NewSharedParks(log)
		lc := projections.NewLifecycle(log, pub, a, cfg)
		done := make(chan error, 1)
		go func() { done <- lc.Run(context.Background()) }()
		require.Eventually(t, func() bool { return lastCheckpointEvent(t, log).Type == projections.EventCheckpointSaved },
			10*time.Second, 5*time.Millisecond, "A saves its checkpoint")
		require.Len(t, pub.names(), 2)
		afterM1, err := a.Checkpoint(context.Background(), projections.LifecycleName)
		require.NoError(t, err)

		b := claimed(t, log, "b")
		appendFact(t, log, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
		var runErr error
		select {
		case runErr = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a fenced publisher kept running")
		}
		require.ErrorIs(t, runErr, projections.ErrFenced)
		assert.ErrorIs(t, runErr, domain.ErrWrongExpectedVersion)
		published := len(pub.names())
		assert.Equal(t, 4, published, "m2's batch went out before its save was fenced")
		last := lastCheckpointEvent(t, log)
		assert.Equal(t, projections.EventCheckpointClaimed, last.Type, "A never moved B's checkpoint")
		cpB, err := b.Checkpoint(context.Background(), projections.LifecycleName)
		require.NoError(t, err)
		assert.Equal(t, *afterM1, *cpB)

		m3 := appendFact(t, log, "m3", checkout(orderB, t0))
		time.Sleep(50 * time.Millisecond)
		assert.Len(t, pub.names(), published, "nothing published after Run returned")

		// The next term: A claims back and the same Lifecycle runs again,
		// from B's checkpoint: m2's messages again (same ids), then m3's.
		_, err = a.Claim(context.Background(), nil)
		require.NoError(t, err)
		firstIDs := pub.ids()
		pub.mu.Lock()
		pub.got = nil
		pub.mu.Unlock()
		runFor(t, lc.Run, func() bool { return len(pub.names()) == 4 })
		assert.ElementsMatch(t, []string{"orderCharged", "DeleteBasketCompleteCommand", "orderCreated", "PlaceOrderCommand"}, pub.names())
		again := 0
		for id := range pub.ids() {
			again += firstIDs[id]
		}
		assert.Equal(t, 2, again, "m2's messages carry the same ids")
		cp, err := a.Checkpoint(context.Background(), projections.LifecycleName)
		require.NoError(t, err)
		assert.Equal(t, m3.Position, *cp, "saved on the way out")
		assert.Equal(t, projections.EventCheckpointSaved, lastCheckpointEvent(t, log).Type)
	})
}
