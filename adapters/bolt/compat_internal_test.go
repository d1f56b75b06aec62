package bolt

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/projections"
)

// compatEvents are a fact as the ingester stores it (compact forms), one
// whose data is not the codec's own (kept raw) and odd metadata.
func compatEvents(t *testing.T) (string, []domain.EventData) {
	const order = "1a2b24a2-e46b-4c48-a772-05d2f3801d6a"
	name := "Ada"
	f := domain.Fact{Type: domain.FactUserCheckedOut, OrderID: order, BasketID: "1792f9ee-1df6-49e1-a788-fcac2055c7e2",
		FullName: &name, Amount: 31588, HasAmount: true, At: time.Date(2025, 1, 1, 0, 0, 0, 12e6, time.UTC)}
	data, err := codec.EncodeFact(f, domain.DefaultCurrency())
	require.NoError(t, err)
	meta, err := codec.EncodeMetadata(domain.Metadata{CorrelationID: order, SentCorrelationID: order, MessageID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655012",
		CausationID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655012", Envelope: "masstransit", Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent", ReceivedAt: f.At})
	require.NoError(t, err)
	return "order-" + order, []domain.EventData{
		{ID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655012", Type: string(f.Type), Data: data, Metadata: meta},
		{ID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655013", Type: string(f.Type), Data: append([]byte(" "), data...), Metadata: []byte("{\"x\":\"\x01\"}")},
		{ID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655014", Type: "Other", Data: []byte(`{"a":1}`)},
	}
}

// A file written before record version 2 (every record version 1) reads
// as it did, through every read; and version 2 records are smaller.
func TestRecordVersion1StillReads(t *testing.T) {
	ctx := context.Background()
	stream, events := compatEvents(t)
	for _, old := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "ledger.db")
		l, err := Open(path, Config{NoSync: true}, nil)
		require.NoError(t, err)
		_, err = l.Append(ctx, stream, domain.NoStream, events...)
		require.NoError(t, err)
		if old {
			require.NoError(t, l.db.Update(func(tx *bbolt.Tx) error { return rewriteV1(tx) }))
		}
		require.NoError(t, l.db.View(func(tx *bbolt.Tx) error {
			v := tx.Bucket(bucketAll).Get(u64(1))
			want := byte(recordVersion2)
			if old {
				want = recordVersion
			}
			assert.Equal(t, want, v[0])
			return nil
		}))
		all, err := l.ReadAll(ctx, nil, 0)
		require.NoError(t, err)
		got, err := l.ReadStream(ctx, stream, 0, domain.Forwards, 0)
		require.NoError(t, err)
		for _, evs := range [][]domain.RecordedEvent{all, got} {
			require.Len(t, evs, len(events))
			for i, e := range events {
				assert.Equal(t, e.ID, evs[i].ID)
				assert.Equal(t, string(e.Data), string(evs[i].Data), "data %d (old %v)", i, old)
				assert.Equal(t, string(e.Metadata), string(evs[i].Metadata), "metadata %d (old %v)", i, old)
			}
		}
		facts, _, err := l.ReadAllFacts(ctx, nil, 100, domain.StreamPrefix, nil)
		require.NoError(t, err)
		require.Len(t, facts, 3)
		want, err := codec.DecodeFact(events[0].Type, events[0].Data)
		require.NoError(t, err)
		assert.NoError(t, facts[0].Err)
		assert.Equal(t, want, facts[0].Event.Fact)
		assert.Equal(t, events[0].ID, facts[0].Event.ID)
		assert.Error(t, facts[2].Err, "not a fact")
		for _, f := range facts {
			assert.Equal(t, stream, f.Stream)
		}
		require.NoError(t, l.Close())
	}
}

// rewriteV1 turns every record of the all bucket into version 1, as
// builds before version 2 wrote them.
func rewriteV1(tx *bbolt.Tx) error {
	all := tx.Bucket(bucketAll)
	d := getDecoder("")
	defer d.free()
	type kv struct{ k, v []byte }
	var recs []kv
	err := all.ForEach(func(k, v []byte) error {
		out, err := d.decode(nil, binary.BigEndian.Uint64(k), v)
		if err != nil {
			return err
		}
		e := out[0]
		id := [16]byte(v[17:33])
		recs = append(recs, kv{append([]byte(nil), k...), encodeRecordV1(e.Stream, e.Revision, e.Created.UnixNano(), id,
			domain.EventData{Type: e.Type, Data: e.Data, Metadata: e.Metadata})})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := all.Put(r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// A read model written before compact rows (JSON rows) reads as it did,
// and a row written over an old one replaces it in the aggregates.
func TestJSONRowsStillRead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	rm, err := OpenReadModel(path)
	require.NoError(t, err)
	at := time.Date(2025, 3, 1, 10, 0, 0, 5, time.UTC)
	row := projections.Summary{OrderID: "1a2b24a2-e46b-4c48-a772-05d2f3801d6a", Stream: "order-1a2b24a2-e46b-4c48-a772-05d2f3801d6a",
		Revision: 2, Status: domain.StatusCharged, Total: 100, Money: domain.Totals{Captured: 100, Net: 100}, Facts: 3, LastAt: at, CreatedAt: at,
		Days: []domain.DayMove{{Day: "2025-03-01", Money: domain.Totals{Captured: 100, Net: 100}}}}
	require.NoError(t, rm.Put(ctx, []projections.Summary{row}))
	old, err := json.Marshal(row)
	require.NoError(t, err)
	require.NoError(t, rm.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSummaries).Put([]byte(row.OrderID), old)
	}))
	got, ok, err := rm.Summary(ctx, row.OrderID)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, row, got)
	list, err := rm.Summaries(ctx, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []projections.Summary{row}, list)
	diff, err := rm.DiffRows(ctx, "", 10, nil)
	require.NoError(t, err)
	assert.Equal(t, []projections.DiffRow{{OrderID: row.OrderID, Status: row.Status, Total: row.Total, Money: row.Money}}, diff)
	row.Status, row.Money = domain.StatusRefunded, domain.Totals{Captured: 100, Refunded: 100}
	require.NoError(t, rm.Put(ctx, []projections.Summary{row}))
	ov, err := rm.Overview(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(100), ov.Money.Refunded)
	page, err := rm.Orders(ctx, projections.OrderQuery{})
	require.NoError(t, err)
	require.Len(t, page.Orders, 1)
	assert.Equal(t, row, page.Orders[0])
	require.NoError(t, rm.Close())
}

// Compact rows keep every field, the odd ones included.
func TestCompactRowRoundTrip(t *testing.T) {
	rows := []projections.Summary{
		{},
		{OrderID: "x", Stream: "elsewhere", Status: "ODD", StatusReason: "why", Total: -5, PlacementAttempts: 2,
			PlacementDeadline: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), Held: 1, Ignored: 2, Flags: 3,
			Days: []domain.DayMove{{Day: "d", Money: domain.Totals{Net: -1}}, {Day: "e"}}},
	}
	for _, r := range rows {
		var got projections.Summary
		require.NoError(t, decodeRow(appendSummaryRow(nil, &r), &got))
		assert.Equal(t, r, got)
		d, err := rowDiffVals(appendSummaryRow(nil, &r))
		require.NoError(t, err)
		assert.Equal(t, projections.DiffRow{Status: r.Status, Total: r.Total, Money: r.Money}, d)
	}
	_, err := rowDiffVals([]byte{rowCompact, 0, 5})
	assert.Error(t, err)
	assert.Error(t, decodeRow([]byte{rowCompact, 0, 5}, &projections.Summary{}))
}

// encodeRecordV1 writes a record as builds before version 2 did, for the
// tests of files written then.
func encodeRecordV1(stream string, rev uint64, created int64, id [16]byte, e domain.EventData) []byte {
	n := recordHeader + 4*binary.MaxVarintLen32 + len(stream) + len(e.Type) + len(e.Data) + len(e.Metadata)
	b := make([]byte, recordHeader, n)
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:9], rev)
	binary.BigEndian.PutUint64(b[9:17], uint64(created))
	copy(b[17:33], id[:])
	b = binary.AppendUvarint(b, uint64(len(stream)))
	b = append(b, stream...)
	b = binary.AppendUvarint(b, uint64(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.AppendUvarint(b, uint64(len(e.Data)))
	b = append(b, e.Data...)
	b = binary.AppendUvarint(b, uint64(len(e.Metadata)))
	b = append(b, e.Metadata...)
	return b
}
