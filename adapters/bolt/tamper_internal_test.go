package bolt

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// The forensic helpers change what the log reads back, and nothing else:
// an altered fact is stored compact again, as the log would store it.
func TestTamperHelpersKeepTheFileConsistent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	stream, evs := compatEvents(t)
	l, err := Open(path, Config{NoSync: true}, nil)
	require.NoError(t, err)
	_, err = l.Append(ctx, stream, domain.NoStream, evs...)
	require.NoError(t, err)
	before, err := l.ReadAll(ctx, nil, 0)
	require.NoError(t, err)
	require.NoError(t, l.Close())

	require.NoError(t, RewriteEvent(path, 1, func(e *domain.RecordedEvent) {
		const was, now = `"totalMoney":"315.88","totalMoneyMinor":31588`, `"totalMoney":"3158.80","totalMoneyMinor":315880`
		require.Contains(t, string(e.Data), was)
		e.Data = []byte(strings.Replace(string(e.Data), was, now, 1))
	}))
	require.NoError(t, InsertEvent(path, 2, domain.RecordedEvent{Stream: stream, Revision: 3, ID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655015",
		Type: "Forged", Data: []byte(`{}`), Created: before[1].Created}))
	require.NoError(t, RemoveEvent(path, 4)) // "Other", moved up from 3

	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		_, _, form, data, _, _, err := recordFields(tx.Bucket(bucketAll).Get(u64(1)))
		require.NoError(t, err)
		assert.Equal(t, byte(formFact), form, "stored compact, as the log writes facts")
		f, err := codec.DecodeCompactFact(string(domain.FactUserCheckedOut), data)
		require.NoError(t, err)
		assert.Equal(t, int64(315880), f.Amount)
		return nil
	}))
	require.NoError(t, db.Close())

	l, err = Open(path, Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	after, err := l.ReadAll(ctx, nil, 0)
	require.NoError(t, err)
	require.Len(t, after, 3)
	assert.Contains(t, string(after[0].Data), `"totalMoneyMinor":315880`)
	assert.Equal(t, before[0].ID, after[0].ID)
	assert.Equal(t, before[0].Created, after[0].Created)
	assert.Equal(t, before[0].Metadata, after[0].Metadata)
	assert.Equal(t, "Forged", after[1].Type)
	assert.Equal(t, uint64(2), after[1].Position.Commit)
	assert.Equal(t, before[1].ID, after[2].ID)
	assert.Equal(t, uint64(3), after[2].Position.Commit)
	// The index follows: the stream reads its events at their new places.
	got, err := l.ReadStream(ctx, stream, 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []uint64{1, 3, 2}, []uint64{got[0].Position.Commit, got[1].Position.Commit, got[2].Position.Commit})
	assert.Equal(t, []uint64{0, 1, 3}, []uint64{got[0].Revision, got[1].Revision, got[2].Revision})

	assert.ErrorContains(t, RemoveEvent(path, 9), "locked", "not while the log has the file open")
}
