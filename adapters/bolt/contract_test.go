package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/projections"
	"github.com/bookworm-ledger/ledger/projections/projectionspec"
)

// The projections' storage ports, run against the read model and the
// Swappable that serves it while a replay rebuilds it.

func contractReadModel(t *testing.T) *bolt.ReadModel {
	t.Helper()
	rm, err := bolt.OpenReadModel(filepath.Join(t.TempDir(), "readmodel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { rm.Close() })
	return rm
}

func contractSwappable(t *testing.T) *bolt.Swappable {
	t.Helper()
	cur, err := bolt.OpenReadModel(filepath.Join(t.TempDir(), "readmodel.db"))
	require.NoError(t, err)
	s := bolt.NewSwappable(cur)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContractCheckpointStore(t *testing.T) {
	t.Run("ReadModel", func(t *testing.T) {
		projectionspec.RunCheckpointStore(t, func(t *testing.T) projections.CheckpointStore { return contractReadModel(t) })
	})
	t.Run("Swappable", func(t *testing.T) {
		projectionspec.RunCheckpointStore(t, func(t *testing.T) projections.CheckpointStore { return contractSwappable(t) })
	})
}

func TestContractParkStore(t *testing.T) {
	t.Run("ReadModel", func(t *testing.T) {
		projectionspec.RunParkStore(t, func(t *testing.T) projections.ParkStore { return contractReadModel(t) })
	})
	t.Run("Swappable", func(t *testing.T) {
		projectionspec.RunParkStore(t, func(t *testing.T) projections.ParkStore { return contractSwappable(t) })
	})
}

func TestContractBooksStore(t *testing.T) {
	t.Run("ReadModel", func(t *testing.T) {
		projectionspec.RunBooksStore(t, func(t *testing.T) projectionspec.BooksStore { return contractReadModel(t) })
	})
	t.Run("Swappable", func(t *testing.T) {
		projectionspec.RunBooksStore(t, func(t *testing.T) projectionspec.BooksStore { return contractSwappable(t) })
	})
}
