package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

func openReadModel(t *testing.T, path string) *bolt.ReadModel {
	t.Helper()
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	t.Cleanup(func() { rm.Close() })
	return rm
}

func TestReadModelAppliesRowsAndCheckpointTogether(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm := openReadModel(t, path)

	cp, err := rm.Checkpoint(ctx, "readmodel")
	require.NoError(t, err)
	assert.Nil(t, cp, "no checkpoint before the first batch")

	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	rows := []projections.Summary{
		{OrderID: "a", Status: domain.StatusInit, PlacementAttempts: 1, PlacementDeadline: t0.Add(30 * time.Minute)},
		{OrderID: "b", Status: domain.StatusInit, PlacementAttempts: 2, PlacementDeadline: t0.Add(10 * time.Minute)},
		{OrderID: "c", Status: domain.StatusCharged, Money: domain.Totals{Captured: 100, Net: 100}},
	}
	require.NoError(t, rm.Apply(ctx, "readmodel", domain.Position{Commit: 7, Prepare: 7}, rows))

	cp, err = rm.Checkpoint(ctx, "readmodel")
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, domain.Position{Commit: 7, Prepare: 7}, *cp)

	s, ok, err := rm.Summary(ctx, "c")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(100), s.Money.Captured)
	_, ok, err = rm.Summary(ctx, "zz")
	require.NoError(t, err)
	assert.False(t, ok)

	page, err := rm.Summaries(ctx, "a", 10)
	require.NoError(t, err)
	require.Len(t, page, 2, "paging starts after the cursor")
	assert.Equal(t, "b", page[0].OrderID)

	// Due lists INIT orders by deadline, and only those due.
	due, err := rm.Due(ctx, t0.Add(20*time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, projections.Due{OrderID: "b", Deadline: t0.Add(10 * time.Minute), Attempt: 2}, due[0])
	due, err = rm.Due(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	assert.Len(t, due, 2)

	// An order that leaves INIT leaves the deadline index.
	require.NoError(t, rm.Apply(ctx, "readmodel", domain.Position{Commit: 9, Prepare: 9},
		[]projections.Summary{{OrderID: "b", Status: domain.StatusCharged}}))
	due, err = rm.Due(ctx, t0.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, "a", due[0].OrderID)

	n, err := rm.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

func TestReadModelSurvivesReopenAndIsLockedWhileOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	require.NoError(t, rm.SaveCheckpoint(ctx, "lifecycle", domain.Position{Commit: 3, Prepare: 3}))
	require.NoError(t, rm.Close())

	again := openReadModel(t, path)
	_, err = bolt.OpenReadModel(path)
	assert.ErrorIs(t, err, bolt.ErrLocked, "one process owns the file")
	cp, err := again.Checkpoint(ctx, "lifecycle")
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, uint64(3), cp.Commit)
}

func TestReplaceFileSwapsAtomically(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cur, next := filepath.Join(dir, "readmodel.db"), filepath.Join(dir, "readmodel.db.replay-1")
	old, err := bolt.OpenReadModel(cur)
	require.NoError(t, err)
	require.NoError(t, old.Put(ctx, []projections.Summary{{OrderID: "old", Status: domain.StatusInit}}))
	require.NoError(t, old.Close())
	nw, err := bolt.OpenReadModel(next)
	require.NoError(t, err)
	require.NoError(t, nw.Put(ctx, []projections.Summary{{OrderID: "new", Status: domain.StatusCharged}}))
	require.NoError(t, nw.Close())

	require.NoError(t, bolt.ReplaceFile(next, cur))
	_, err = os.Stat(next)
	assert.True(t, os.IsNotExist(err))
	rm := openReadModel(t, cur)
	_, ok, err := rm.Summary(ctx, "new")
	require.NoError(t, err)
	assert.True(t, ok)
	_, ok, err = rm.Summary(ctx, "old")
	require.NoError(t, err)
	assert.False(t, ok)
}
