package bolt

import (
	"context"
	"fmt"

	json "github.com/go-json-experiment/json"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// bucketParked holds the lifecycle's parked lanes: order id + "\x00" +
// kind -> the Parked as JSON. Keys sort by order id, then kind.
var bucketParked = []byte("parked")

var _ projections.ParkStore = (*ReadModel)(nil)

func parkKey(orderID string, kind domain.OutboundKind) []byte {
	return []byte(orderID + "\x00" + string(kind))
}

// Park implements projections.ParkStore: one transaction for all lanes.
func (r *ReadModel) Park(ctx context.Context, lanes []projections.Parked) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.db.Update(func(tx *bbolt.Tx) error { return putParked(tx, lanes) })
}

func putParked(tx *bbolt.Tx, lanes []projections.Parked) error {
	b := tx.Bucket(bucketParked)
	for _, p := range lanes {
		v, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode parked %s %s: %w", p.OrderID, p.Kind, err)
		}
		if err := b.Put(parkKey(p.OrderID, p.Kind), v); err != nil {
			return fmt.Errorf("park %s %s: %w", p.OrderID, p.Kind, err)
		}
	}
	return nil
}

// Unpark implements projections.ParkStore.
func (r *ReadModel) Unpark(ctx context.Context, orderID string, kind domain.OutboundKind) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketParked).Delete(parkKey(orderID, kind)); err != nil {
			return fmt.Errorf("unpark %s %s: %w", orderID, kind, err)
		}
		return nil
	})
}

// ListParked implements projections.ParkStore.
func (r *ReadModel) ListParked(ctx context.Context) ([]projections.Parked, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []projections.Parked
	err := r.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketParked).ForEach(func(k, v []byte) error {
			var p projections.Parked
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("parked %q: %w", k, err)
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

var _ projections.ParkStore = (*Swappable)(nil)

// Park implements projections.ParkStore.
func (s *Swappable) Park(ctx context.Context, lanes []projections.Parked) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Park(ctx, lanes)
}

// Unpark implements projections.ParkStore.
func (s *Swappable) Unpark(ctx context.Context, orderID string, kind domain.OutboundKind) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Unpark(ctx, orderID, kind)
}

// ListParked implements projections.ParkStore.
func (s *Swappable) ListParked(ctx context.Context) ([]projections.Parked, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.ListParked(ctx)
}
