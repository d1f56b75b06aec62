package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
)

func mustReq(t *testing.T, stream string, exp domain.ExpectedRevision, events ...domain.EventData) *appendReq {
	t.Helper()
	r, err := newAppendReq(stream, exp, events)
	require.NoError(t, err)
	return r
}

func ev(n int) domain.EventData {
	return domain.EventData{ID: uuid.NewString(), Type: "T", Data: []byte(fmt.Sprintf(`{"n":%d}`, n))}
}

// One batch, one transaction: each append sees the earlier ones of the
// batch, and rule failures do not affect the others.
func TestBatchSemantics(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "e.db"), Config{}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	e1, e2, e3, e4, e5 := ev(1), ev(2), ev(3), ev(4), ev(5)
	a := mustReq(t, "s", domain.NoStream, e1)
	b := mustReq(t, "s", domain.Exact(0), e2)
	c := mustReq(t, "s", domain.NoStream, e3)
	d := mustReq(t, "s", domain.Any, e1)
	e := mustReq(t, "s", domain.Any, e1, e4)
	f := mustReq(t, "t", domain.NoStream, e5)
	// The committer is idle: no Append is running, so committing here is
	// the only writer.
	l.commit([]*appendReq{a, b, c, d, e, f})

	require.NoError(t, a.err)
	assert.Equal(t, domain.AppendResult{NextRevision: 0, Position: domain.Position{Commit: 1, Prepare: 1}}, a.res)
	require.NoError(t, b.err)
	assert.Equal(t, uint64(1), b.res.NextRevision)
	var wev *domain.WrongExpectedVersionError
	require.ErrorAs(t, c.err, &wev)
	assert.True(t, wev.ActualExists)
	assert.Equal(t, uint64(1), wev.Actual)
	require.NoError(t, d.err)
	assert.True(t, d.res.Duplicate)
	assert.Equal(t, a.res.Position, d.res.Position)
	require.ErrorIs(t, e.err, domain.ErrPartialDuplicate)
	require.NoError(t, f.err)
	assert.Equal(t, domain.Position{Commit: 3, Prepare: 3}, f.res.Position)
	st := l.Stats()
	assert.Equal(t, Stats{Commits: 1, Appends: 6, Events: 3}, Stats{Commits: st.Commits, Appends: st.Appends, Events: st.Events})
	assert.Positive(t, st.CommitTime)

	got, err := l.ReadAll(context.Background(), nil, 0)
	require.NoError(t, err)
	var ids []string
	for _, g := range got {
		ids = append(ids, g.ID)
	}
	assert.Equal(t, []string{e1.ID, e2.ID, e5.ID}, ids)
}

// An append whose write fails is answered with the error; the batch is
// redone without it.
func TestBatchWriteFailure(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "e.db"), Config{}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	ok1 := mustReq(t, "s", domain.NoStream, ev(1))
	// Built around validation: a name beyond bbolt's key size limit
	// fails inside the transaction, after its record was written.
	huge := strings.Repeat("x", 40000)
	bad := &appendReq{stream: huge, nameKey: append([]byte(huge), 0), done: make(chan struct{})}
	id := [16]byte{1}
	bad.recs = [][]byte{encodeRecord(huge, 0, 0, id, ev(2))}
	bad.idKeys = [][]byte{streamKey(huge, tagID, id[:])}
	ok2 := mustReq(t, "s", domain.Exact(0), ev(3))
	l.commit([]*appendReq{ok1, bad, ok2})

	for _, r := range []*appendReq{ok1, bad, ok2} {
		select {
		case <-r.done:
		default:
			t.Fatalf("append %.10s not answered", r.stream)
		}
	}
	require.Error(t, bad.err)
	assert.False(t, errors.Is(bad.err, domain.ErrWrongExpectedVersion))
	require.NoError(t, ok1.err)
	require.NoError(t, ok2.err)
	assert.Equal(t, domain.Position{Commit: 2, Prepare: 2}, ok2.res.Position, "the failed append left no position behind")
	got, err := l.ReadAll(context.Background(), nil, 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "s", got[1].Stream)
}

func TestCodec(t *testing.T) {
	id := uuid.NewString()
	raw, ok := parseUUID(id)
	require.True(t, ok)
	var buf [36]byte
	formatUUID(&buf, raw)
	assert.Equal(t, id, string(buf[:]))
	for _, bad := range []string{"", strings.ToUpper(id), id[:35] + "g", strings.ReplaceAll(id, "-", "_"), id + "0"} {
		_, ok := parseUUID(bad)
		assert.False(t, ok, bad)
	}

	e := domain.EventData{ID: id, Type: "Type", Data: []byte(`{"a":1}`), Metadata: []byte(`{"m":2}`)}
	rec := encodeRecord("stream-1", 5, 1234567890, raw, e)
	s, err := recordStream(rec)
	require.NoError(t, err)
	assert.Equal(t, "stream-1", string(s))
	var d decoder
	out, err := d.decode(nil, 9, rec)
	require.NoError(t, err)
	d.finish(out)
	require.Len(t, out, 1)
	assert.Equal(t, domain.RecordedEvent{
		Stream: "stream-1", Revision: 5, Position: domain.Position{Commit: 9, Prepare: 9}, ID: id, Type: "Type",
		Data: e.Data, Metadata: e.Metadata, Created: out[0].Created,
	}, out[0])
	assert.Equal(t, int64(1234567890), out[0].Created.UnixNano())
	// Appending to a returned slice never reaches the next event's bytes.
	assert.Equal(t, len(out[0].Data), cap(out[0].Data))

	for cut := 0; cut < len(rec); cut++ {
		_, err := d.decode(nil, 1, rec[:cut])
		assert.ErrorIs(t, err, errCorrupt, "truncated at %d", cut)
	}
}
