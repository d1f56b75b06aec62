// Package projectionspec is the contract suite of the projections' storage
// ports, [projections.CheckpointStore], [projections.ParkStore] and the
// books of a read model ([BooksStore]). Every
// implementation runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		projectionspec.RunParkStore(t, func(t *testing.T) projections.ParkStore { return mustOpen(t) })
//	}
//
// open must return a new, empty store for each subtest and register its
// cleanup on t.
package projectionspec

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// RunCheckpointStore runs the CheckpointStore suite. It uses the name
// projections.LifecycleName only: a SharedCheckpoint keeps one name, and
// open returns it claimed.
func RunCheckpointStore(t *testing.T, open func(t *testing.T) projections.CheckpointStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, cs projections.CheckpointStore)
	}{
		{"FreshIsNil", testFreshCheckpoint},
		{"SaveThenRead", testSaveThenRead},
		{"LastSaveWins", testLastSaveWins},
		{"ConcurrentSaves", testConcurrentSaves},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

const name = projections.LifecycleName

func testFreshCheckpoint(t *testing.T, cs projections.CheckpointStore) {
	got, err := cs.Checkpoint(ctx(t), name)
	require.NoError(t, err)
	assert.Nil(t, got, "a new store has no checkpoint")
}

func testSaveThenRead(t *testing.T, cs projections.CheckpointStore) {
	c := ctx(t)
	want := domain.Position{Commit: 1 << 40, Prepare: 1<<40 - 7} // both parts kept
	require.NoError(t, cs.SaveCheckpoint(c, name, want))
	got, err := cs.Checkpoint(c, name)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, want, *got)
	got.Commit = 0 // the caller's copy
	again, err := cs.Checkpoint(c, name)
	require.NoError(t, err)
	assert.Equal(t, want, *again)
}

func testLastSaveWins(t *testing.T, cs projections.CheckpointStore) {
	c := ctx(t)
	var last domain.Position
	for i := range 20 {
		last = domain.Position{Commit: uint64(10 * (i + 1)), Prepare: uint64(10*(i+1) - 1)}
		require.NoError(t, cs.SaveCheckpoint(c, name, last))
	}
	// The same position again, e.g. a save on the way out after an idle one.
	require.NoError(t, cs.SaveCheckpoint(c, name, last))
	got, err := cs.Checkpoint(c, name)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, last, *got)
}

func testConcurrentSaves(t *testing.T, cs projections.CheckpointStore) {
	c := ctx(t)
	const writers, each = 4, 5
	saved := map[domain.Position]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		for i := range each {
			saved[domain.Position{Commit: uint64(w*100 + i), Prepare: uint64(w*100 + i)}] = true
		}
		wg.Go(func() {
			for i := range each {
				p := domain.Position{Commit: uint64(w*100 + i), Prepare: uint64(w*100 + i)}
				errs <- cs.SaveCheckpoint(c, name, p)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "one instance's concurrent saves never conflict")
	}
	got, err := cs.Checkpoint(c, name)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.True(t, saved[*got], "the checkpoint is one of the saved positions, got %s", got)
}

// RunParkStore runs the ParkStore suite.
func RunParkStore(t *testing.T, open func(t *testing.T) projections.ParkStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, ps projections.ParkStore)
	}{
		{"FreshIsEmpty", testFreshParks},
		{"ParkListsByOrderThenKind", testParkLists},
		{"ParkReplacesTheLane", testParkReplaces},
		{"Unpark", testUnpark},
		{"ParkAgainAfterUnpark", testParkAgain},
		{"ConcurrentParks", testConcurrentParks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func order(i int) string { return fmt.Sprintf("0196a6b0-0000-7000-8000-%012x", i) }

func park(i int, kind domain.OutboundKind, rev uint64) projections.Parked {
	return projections.Parked{OrderID: order(i), Stream: domain.StreamName(order(i)), Kind: kind, FromRevision: rev,
		Message: "orderCreated", MessageID: domain.NameUUID("spec", order(i), string(kind), fmt.Sprint(rev)),
		Reason: projections.ReasonRefused, Detail: "exchange missing", ParkedAt: t0.Add(time.Duration(i) * time.Second), Retries: int(rev)}
}

// list returns the stored lanes with times in UTC, so they compare.
func list(t *testing.T, ps projections.ParkStore) []projections.Parked {
	t.Helper()
	got, err := ps.ListParked(ctx(t))
	require.NoError(t, err)
	for i := range got {
		got[i].ParkedAt = got[i].ParkedAt.UTC()
	}
	return got
}

func testFreshParks(t *testing.T, ps projections.ParkStore) {
	assert.Empty(t, list(t, ps))
	require.NoError(t, ps.Park(ctx(t), nil), "parking nothing")
	assert.Empty(t, list(t, ps))
}

func testParkLists(t *testing.T, ps projections.ParkStore) {
	c := ctx(t)
	require.NoError(t, ps.Park(c, []projections.Parked{park(2, domain.KindBookWorm, 3), park(1, domain.KindBookWorm, 1)}))
	require.NoError(t, ps.Park(c, []projections.Parked{park(2, domain.KindAccelByte, 0)}))
	want := []projections.Parked{park(1, domain.KindBookWorm, 1), park(2, domain.KindAccelByte, 0), park(2, domain.KindBookWorm, 3)}
	assert.Equal(t, want, list(t, ps), "every field kept, by order id then kind")
}

func testParkReplaces(t *testing.T, ps projections.ParkStore) {
	c := ctx(t)
	require.NoError(t, ps.Park(c, []projections.Parked{park(1, domain.KindAccelByte, 5)}))
	next := park(1, domain.KindAccelByte, 2)
	next.Reason, next.Detail = projections.ReasonNacked, "nacked"
	require.NoError(t, ps.Park(c, []projections.Parked{next}))
	assert.Equal(t, []projections.Parked{next}, list(t, ps), "one lane per order and kind")
}

func testUnpark(t *testing.T, ps projections.ParkStore) {
	c := ctx(t)
	require.NoError(t, ps.Park(c, []projections.Parked{park(1, domain.KindAccelByte, 0), park(1, domain.KindBookWorm, 0)}))
	require.NoError(t, ps.Unpark(c, order(1), domain.KindAccelByte))
	assert.Equal(t, []projections.Parked{park(1, domain.KindBookWorm, 0)}, list(t, ps), "the order's other lane stays")
	require.NoError(t, ps.Unpark(c, order(1), domain.KindAccelByte), "an absent lane is not an error")
	require.NoError(t, ps.Unpark(c, order(9), domain.KindBookWorm), "an absent lane is not an error")
	require.NoError(t, ps.Unpark(c, order(1), domain.KindBookWorm))
	assert.Empty(t, list(t, ps))
}

// A lane parked, released and parked again with the very same content is
// stored again: a store that deduplicates writes must not drop it.
func testParkAgain(t *testing.T, ps projections.ParkStore) {
	c := ctx(t)
	p := park(3, domain.KindBookWorm, 4)
	for range 3 {
		require.NoError(t, ps.Park(c, []projections.Parked{p}))
		assert.Equal(t, []projections.Parked{p}, list(t, ps))
		require.NoError(t, ps.Unpark(c, p.OrderID, p.Kind))
		assert.Empty(t, list(t, ps))
	}
	require.NoError(t, ps.Park(c, []projections.Parked{p}))
	assert.Equal(t, []projections.Parked{p}, list(t, ps))
}

func testConcurrentParks(t *testing.T, ps projections.ParkStore) {
	c := ctx(t)
	const writers = 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := range writers {
		wg.Go(func() {
			errs <- ps.Park(c, []projections.Parked{park(w, domain.KindAccelByte, uint64(w))})
			errs <- ps.Park(c, []projections.Parked{park(w, domain.KindBookWorm, uint64(w))})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := list(t, ps)
	require.Len(t, got, 2*writers)
	for i, p := range got {
		assert.Equal(t, park(i/2, []domain.OutboundKind{domain.KindAccelByte, domain.KindBookWorm}[i%2], uint64(i/2)), p)
	}
}
