package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// SetBuildChunk makes BuildIndexes read n rows per transaction and commit
// every n keys, until restore.
func SetBuildChunk(n int) (restore func()) {
	oldBuild, oldScan := buildChunk, scanChunk
	buildChunk, scanChunk = n, n
	return func() { buildChunk, scanChunk = oldBuild, oldScan }
}

// A prefix search decodes no row outside the prefix: a row that cannot be
// decoded, outside it but in every index, does not get in its way.
func TestPrefixSearchDecodesOnlyRowsWithThePrefix(t *testing.T) {
	ctx := context.Background()
	rm, err := OpenReadModel(filepath.Join(t.TempDir(), "readmodel.db"))
	require.NoError(t, err)
	defer rm.Close()
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var rows []projections.Summary
	for i, id := range []string{"aa01", "aa02", "ab01", "zz01"} {
		rows = append(rows, projections.Summary{OrderID: id, Status: domain.StatusInit, Total: int64(i), LastAt: at.Add(time.Duration(i) * time.Minute)})
	}
	require.NoError(t, rm.Put(ctx, rows))
	bad := indexed{Status: domain.StatusInit, Total: 1 << 40, LastAt: at.Add(time.Hour)}
	require.NoError(t, rm.db.Update(func(tx *bbolt.Tx) error {
		id := []byte("ac01")
		if err := tx.Bucket(bucketSummaries).Put(id, []byte("{not json")); err != nil {
			return err
		}
		for i, k := range keysOf(id, valsOf(&bad)) {
			if err := tx.Bucket(orderIndexes[i]).Put(k, []byte{}); err != nil {
				return err
			}
		}
		return nil
	}))

	for _, sort := range []projections.OrderSort{projections.SortByID, projections.SortByActivity, projections.SortByAmount} {
		for _, st := range []domain.Status{"", domain.StatusInit} {
			page, err := rm.Orders(ctx, projections.OrderQuery{Prefix: "aa", Sort: sort, Status: st})
			require.NoError(t, err, "%s %s", sort, st)
			assert.Len(t, page.Orders, 2)
			_, err = rm.Orders(ctx, projections.OrderQuery{Prefix: "a", Sort: sort, Status: st})
			assert.Error(t, err, "the bad row is decoded when it is in the prefix (%s %s)", sort, st)
		}
	}
}

// The scan BuildIndexes reads rows with finds what a full decode finds.
func TestSortScannerAgreesWithDecoding(t *testing.T) {
	at := time.Date(2026, 11, 1, 9, 0, 0, 123456789, time.FixedZone("x", 3600))
	var sc sortScanner
	for _, s := range []projections.Summary{
		{OrderID: "a", Status: domain.StatusRefunded, StatusReason: `says "total":7, "lastAt":"x"`, Total: 12345, LastAt: at,
			Days: []domain.DayMove{{Day: "2026-11-01", Money: domain.Totals{Captured: 1, Net: 1}}}, CreatedAt: at},
		{OrderID: "b"}, // no status, no activity
		{OrderID: "c", Status: "SOMETHING_NEW", Total: -5, LastAt: at.Add(-time.Hour)},
	} {
		row, err := json.Marshal(s)
		require.NoError(t, err)
		var ix indexed
		require.NoError(t, json.Unmarshal(row, &ix))
		got, err := sc.scan(row)
		require.NoError(t, err)
		assert.Equal(t, valsOf(&ix), got, "%s", row)
	}
	_, err := sc.scan([]byte(`[1]`))
	assert.Error(t, err)
	_, err = sc.scan([]byte(`{"total":"many"}`))
	assert.Error(t, err)
}
