package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// TestReadsSurviveDroppedPages reads with pages dropped after every scan
// and on demand: events handed out before stay intact (they never point
// into the map) and later reads see the same bytes.
func TestReadsSurviveDroppedPages(t *testing.T) {
	ctx := context.Background()
	l, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), bolt.Config{NoSync: true, ScanRelease: 1}, nil)
	require.NoError(t, err)
	defer l.Close()
	want := map[string][]byte{}
	for s := range 50 {
		stream := fmt.Sprintf("order-%d", s)
		for i := range 3 {
			e := domain.EventData{ID: uuid.NewString(), Type: fmt.Sprintf("T%d", i), Data: []byte(fmt.Sprintf(`{"s":%d,"i":%d,"pad":"%0300d"}`, s, i, 0)), Metadata: []byte(`{"m":1}`)}
			_, err := l.Append(ctx, stream, domain.Any, e)
			require.NoError(t, err)
			want[e.ID] = e.Data
		}
	}
	all, err := l.ReadAll(ctx, nil, 0)
	require.NoError(t, err)
	require.Len(t, all, 150)
	one, err := l.ReadStream(ctx, "order-7", 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, one, 3)
	require.NoError(t, l.ReleaseMemory())
	// Overwrite the page cache's view of the tail and drop again.
	_, err = l.Append(ctx, "order-7", domain.Any, domain.EventData{ID: uuid.NewString(), Type: "T9", Data: []byte(`{}`)})
	require.NoError(t, err)
	require.NoError(t, l.ReleaseMemory())
	again, err := l.ReadAll(ctx, nil, 150)
	require.NoError(t, err)
	for i, e := range all {
		assert.Equal(t, want[e.ID], e.Data, "event %d kept its bytes", i)
		assert.Equal(t, len(e.Data), cap(e.Data), "event %d: appending never reaches a neighbour", i)
		assert.Equal(t, again[i], e)
	}
	for i, e := range one {
		assert.Equal(t, "order-7", e.Stream)
		assert.Equal(t, uint64(i), e.Revision)
		assert.Equal(t, want[e.ID], e.Data)
	}
}

// TestReadStreamAllocatesToNeed: reading a short stream allocates about
// what it returns, not a fixed buffer (it used to cost 64 KiB and a map).
func TestReadStreamAllocatesToNeed(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation figures")
	}
	ctx := context.Background()
	l, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	for i := range 3 {
		_, err := l.Append(ctx, "order-1", domain.Any, domain.EventData{ID: uuid.NewString(), Type: "T", Data: bytes.Repeat([]byte("x"), 500), Metadata: []byte(`{"m":1}`)})
		require.NoError(t, err, i)
	}
	read := func() {
		got, err := l.ReadStream(ctx, "order-1", 0, domain.Forwards, 0)
		require.NoError(t, err)
		require.Len(t, got, 3)
	}
	read()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 200
	for range n {
		read()
	}
	runtime.ReadMemStats(&after)
	perRead := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per 3-event ReadStream", perRead)
	assert.Less(t, perRead, uint64(8<<10), "3 events of ~500 bytes")
}

// TestReadModelRebuildNoSync builds a model without fsync, syncs it and
// swaps it in; the reopened model holds every row.
func TestReadModelRebuildNoSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live, next := filepath.Join(dir, "readmodel.db"), filepath.Join(dir, "readmodel.db.next")
	rm, err := bolt.OpenReadModelWith(next, bolt.ReadModelOptions{NoSync: true, ReleaseEvery: 1})
	require.NoError(t, err)
	var rows []projections.Summary
	for i := range 2000 {
		rows = append(rows, projections.Summary{OrderID: uuid.NewString(), Status: domain.StatusCharged, Money: domain.Totals{Captured: int64(i), Net: int64(i)}})
		if len(rows) == 500 {
			require.NoError(t, rm.Put(ctx, rows))
			rows = rows[:0]
		}
	}
	first, err := rm.Summaries(ctx, "", 1)
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.NoError(t, rm.ReleaseMemory())
	require.NoError(t, rm.Sync())
	require.NoError(t, rm.Close())
	require.NoError(t, bolt.ReplaceFile(next, live))

	got := openReadModel(t, live)
	n, err := got.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2000, n)
	s, ok, err := got.Summary(ctx, first[0].OrderID)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, first[0], s)
}
