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
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

func TestRebuildSwapsInTheNewModelAndKeepsTheLifecycleCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer log.Close()
	orders := []string{"0196a6b0-0000-7000-8000-00000000000a", "0196a6b0-0000-7000-8000-00000000000b"}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, id := range orders {
		f := domain.Fact{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: id, Amount: 100 * int64(i+1), HasAmount: true, At: at}
		p, err := ingest.FactEvent(f, domain.DefaultCurrency(), domain.Metadata{MessageID: "m-" + id})
		require.NoError(t, err)
		_, err = log.Append(ctx, p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
	}
	path := filepath.Join(dir, "readmodel.db")
	cur, err := bolt.OpenReadModel(path)
	require.NoError(t, err)
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	published := domain.Position{Commit: 1, Prepare: 1}
	require.NoError(t, rm.SaveCheckpoint(ctx, projections.LifecycleName, published))

	// A dry run reports both orders as new and leaves the model as it was.
	res, _, err := rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules(), DryRun: true})
	require.NoError(t, err)
	assert.Len(t, res.Changes, 2)
	_, ok, err := rm.Summary(ctx, orders[0])
	require.NoError(t, err)
	assert.False(t, ok, "a dry run swaps nothing in")
	leftovers, _ := filepath.Glob(path + ".replay-*")
	assert.Empty(t, leftovers, "a dry run leaves no half-built file")

	res, restated, err := rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules()})
	require.NoError(t, err)
	assert.Equal(t, int64(2), res.Facts)
	assert.Zero(t, restated)
	s, ok, err := rm.Summary(ctx, orders[1])
	require.NoError(t, err)
	require.True(t, ok, "the rebuilt model is in place")
	assert.Equal(t, domain.StatusInit, s.Status)
	assert.Equal(t, int64(200), s.Total)
	cp, err := rm.Checkpoint(ctx, projections.LifecycleName)
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, published, *cp, "the publisher's checkpoint is carried over: nothing is published again")
	cp, err = rm.Checkpoint(ctx, projections.ReadModelName)
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, *res.Head, *cp, "the projection goes on from where the replay began")

	// Nothing changed since: a second replay finds no change.
	res, _, err = rm.Rebuild(ctx, log, bolt.RebuildOptions{Rules: domain.DefaultRules(), DryRun: true})
	require.NoError(t, err)
	assert.Empty(t, res.Changes)
}

func TestRemoveStaleRebuilds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "readmodel.db")
	for _, name := range []string{path, path + ".replay-1", path + ".replay-2", filepath.Join(dir, "other.db")} {
		require.NoError(t, os.WriteFile(name, []byte("x"), 0o600))
	}
	require.NoError(t, bolt.RemoveStaleRebuilds(path))
	left, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{path, filepath.Join(dir, "other.db")}, left)
}
