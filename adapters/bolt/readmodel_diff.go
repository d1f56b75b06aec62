package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/projections"
)

var (
	_ projections.DiffLister = (*ReadModel)(nil)
	_ projections.DiffLister = (*Swappable)(nil)
)

// DiffRows lists the status and money of the rows after the order id
// after, in id order, for a replay's diff: a compact row is read in place
// and the page's ids share one string, so no allocation per row.
func (r *ReadModel) DiffRows(ctx context.Context, after string, limit int, out []projections.DiffRow) ([]projections.DiffRow, error) {
	if err := ctx.Err(); err != nil {
		return out, err
	}
	if limit <= 0 {
		limit = 100
	}
	start := len(out)
	ids := make([]byte, 0, 36*min(limit, 4096))
	ends := make([]int, 0, min(limit, 4096))
	err := r.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketSummaries).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && len(out)-start < limit; k, v = c.Next() {
			d, err := rowDiffVals(v)
			if err != nil {
				return rowError(k, err)
			}
			ids = append(ids, k...)
			ends = append(ends, len(ids))
			out = append(out, d)
		}
		return nil
	})
	r.touch(len(out) - start)
	if err != nil {
		return out[:start], err
	}
	all, from := string(ids), 0
	for i, end := range ends {
		out[start+i].OrderID, from = all[from:end], end
	}
	return out, nil
}

// rowDiffVals reads a stored row's status and money: in place for a
// compact row, by decoding the whole of an older JSON one.
func rowDiffVals(b []byte) (projections.DiffRow, error) {
	if len(b) > 0 && b[0] == '{' {
		var s projections.Summary
		if err := decodeRow(b, &s); err != nil {
			return projections.DiffRow{}, err
		}
		return projections.DiffRow{Status: s.Status, Total: s.Total, Money: s.Money}, nil
	}
	r := rowReader{codec.NewReader(b, errRow)}
	if r.Byte() != rowCompact {
		return projections.DiffRow{}, errRow
	}
	flags := r.Uvarint()
	r.Bytes() // order id
	if flags&rowOwnStream != 0 {
		r.Bytes() // stream
	}
	r.Uvarint() // revision
	d := projections.DiffRow{Status: r.status()}
	r.Bytes() // previous status
	r.Bytes() // status reason
	d.Total = r.Varint()
	d.Money = r.totals()
	if r.Err() != nil {
		return projections.DiffRow{}, errRow
	}
	return d, nil
}

// DiffRows implements projections.DiffLister.
func (s *Swappable) DiffRows(ctx context.Context, after string, limit int, out []projections.DiffRow) ([]projections.DiffRow, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.DiffRows(ctx, after, limit, out)
}
