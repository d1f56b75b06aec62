package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The order indexes (OrderIndex) live beside the summaries and are written
// in the same transaction as the rows. Every index key starts with the
// order's status and ends with its id; the value is empty.
//
//	ix_status_id        status 0x00 id
//	ix_status_activity  status 0x00 ^lastAt id   (newest first)
//	ix_status_amount    status 0x00 ^total id    (largest first)
//	ix_stats            "status" 0x00 status -> count; "money" -> totals
//	ix_days             day (2006-01-02) -> orders checked out, totals
//	ix_meta             "version" -> indexVersion
//
// ^x is the 8-byte big-endian complement of x mapped to an unsigned order,
// so the smallest key is the newest (largest) value. Ties sort by id. A
// listing of every status by activity or amount merges the statuses'
// ranges (a dozen at most) rather than keep two more indexes: each index
// costs every write a few B-tree operations.
var (
	bucketByStatusID       = []byte("ix_status_id")
	bucketByStatusActivity = []byte("ix_status_activity")
	bucketByStatusAmount   = []byte("ix_status_amount")
	bucketStats            = []byte("ix_stats")
	bucketDays             = []byte("ix_days")
	bucketIndexMeta        = []byte("ix_meta")

	// orderIndexes are the buckets of rowKeys, in its order.
	orderIndexes = [...][]byte{bucketByStatusID, bucketByStatusActivity, bucketByStatusAmount}
	indexBuckets = append(orderIndexes[:], bucketStats, bucketDays, bucketIndexMeta)

	keyIndexVersion = []byte("version")
	keyMoney        = []byte("money")
	keyStatusPrefix = []byte("status\x00")
)

// indexVersion is the layout above; a file with another (or none) has its
// indexes built again from the summaries when it is opened.
const indexVersion = 1

// indexed is what the indexes and aggregates know of a row. Decoding an
// old row into it skips the fields nothing here needs.
type indexed struct {
	Status    domain.Status    `json:"status"`
	Total     int64            `json:"total"`
	Money     domain.Totals    `json:"money"`
	LastAt    time.Time        `json:"lastAt"`
	CreatedAt time.Time        `json:"createdAt"`
	Days      []domain.DayMove `json:"days"`
}

func indexedOf(s *projections.Summary) indexed {
	return indexed{Status: s.Status, Total: s.Total, Money: s.Money, LastAt: s.LastAt, CreatedAt: s.CreatedAt, Days: s.Days}
}

// descending maps v to 8 bytes that sort the largest v first.
func descending(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, ^(uint64(v) ^ 1<<63))
}

// activity is LastAt as a sortable number; a zero time sorts oldest.
func activity(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 63
	}
	return t.UnixNano()
}

func statusPart(st domain.Status) []byte {
	if st == "" {
		return nil
	}
	return append([]byte(st), 0)
}

// sortVals are what an order's index keys are made of, besides its id.
type sortVals struct {
	status     domain.Status
	act, total int64
}

func valsOf(ix *indexed) sortVals {
	return sortVals{status: ix.Status, act: activity(ix.LastAt), total: ix.Total}
}

// appendKey appends the order's key in orderIndexes[i] to dst.
func appendKey(dst []byte, i int, id []byte, v sortVals) []byte {
	return appendSortKey(append(append(dst, v.status...), 0), i, id, v)
}

// appendSortKey appends the key without its status: the sort value, if
// any, and the id.
func appendSortKey(dst []byte, i int, id []byte, v sortVals) []byte {
	switch i {
	case 1:
		dst = descending(dst, v.act)
	case 2:
		dst = descending(dst, v.total)
	}
	return append(dst, id...)
}

// rowKeys are an order's keys in orderIndexes, in one allocation (bbolt
// keeps a key until the transaction ends).
type rowKeys [len(orderIndexes)][]byte

func keysOf(id []byte, v sortVals) rowKeys {
	buf := make([]byte, 0, len(orderIndexes)*(len(v.status)+1+len(id))+2*8)
	var k rowKeys
	for i := range k {
		start := len(buf)
		buf = appendKey(buf, i, id, v)
		k[i] = buf[start:len(buf):len(buf)]
	}
	return k
}

// dayDelta is what a batch changes on one day.
type dayDelta struct {
	orders int64
	money  domain.Totals
}

// indexWriter keeps the indexes in step with the rows of one transaction.
// Counters and aggregates are summed in memory and written once, by flush.
type indexWriter struct {
	tx     *bbolt.Tx
	ix     [len(orderIndexes)]*bbolt.Bucket
	status map[domain.Status]int64
	money  domain.Totals
	days   map[string]*dayDelta
	// noKeys (a DeferIndexes file): the aggregates are kept, the order
	// index keys left to BuildIndexes.
	noKeys bool
}

func newIndexWriter(tx *bbolt.Tx, noKeys bool) *indexWriter {
	w := &indexWriter{tx: tx, status: make(map[domain.Status]int64, 4), days: make(map[string]*dayDelta, 8), noKeys: noKeys}
	for i, name := range orderIndexes {
		w.ix[i] = tx.Bucket(name)
	}
	return w
}

func (w *indexWriter) day(d string) *dayDelta {
	dd := w.days[d]
	if dd == nil {
		dd = &dayDelta{}
		w.days[d] = dd
	}
	return dd
}

// update moves order id from old (nil: a new order) to nw.
func (w *indexWriter) update(id []byte, old, nw *indexed) error {
	w.count(nw, 1)
	if old != nil {
		w.count(old, -1)
	}
	if w.noKeys {
		return nil
	}
	nk := keysOf(id, valsOf(nw))
	var ok rowKeys
	if old != nil {
		ok = keysOf(id, valsOf(old))
	}
	for i, b := range w.ix {
		if old != nil {
			if bytes.Equal(ok[i], nk[i]) {
				continue
			}
			if err := b.Delete(ok[i]); err != nil {
				return fmt.Errorf("unindex %s: %w", id, err)
			}
		}
		if err := b.Put(nk[i], []byte{}); err != nil {
			return fmt.Errorf("index %s: %w", id, err)
		}
	}
	return nil
}

// count adds (sign 1) or takes away (-1) a row's share of the aggregates.
func (w *indexWriter) count(ix *indexed, sign int64) {
	w.status[ix.Status] += sign
	w.money = addSigned(w.money, ix.Money, sign)
	for _, d := range ix.Days {
		dd := w.day(d.Day)
		dd.money = addSigned(dd.money, d.Money, sign)
	}
	if !ix.CreatedAt.IsZero() {
		var buf [16]byte
		d := ix.CreatedAt.UTC().AppendFormat(buf[:0], domain.DayFormat)
		dd := w.days[string(d)] // no allocation for a day seen before
		if dd == nil {
			dd = w.day(string(d))
		}
		dd.orders += sign
	}
}

func addSigned(t, o domain.Totals, sign int64) domain.Totals {
	if sign < 0 {
		return t.Sub(o)
	}
	return t.Add(o)
}

// flush writes the summed counters and day aggregates; a day left with
// nothing is deleted, so Days lists only days on which something moved.
func (w *indexWriter) flush() error {
	stats, days := w.tx.Bucket(bucketStats), w.tx.Bucket(bucketDays)
	for _, st := range slices.Sorted(maps.Keys(w.status)) {
		if d := w.status[st]; d != 0 {
			k := append(slices.Clip(keyStatusPrefix), st...)
			n := int64(0)
			if v := stats.Get(k); len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v))
			}
			var err error
			if n+d == 0 {
				err = stats.Delete(k)
			} else {
				err = stats.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n+d)))
			}
			if err != nil {
				return fmt.Errorf("count status %s: %w", st, err)
			}
		}
	}
	if (w.money != domain.Totals{}) {
		if err := stats.Put(keyMoney, appendTotals(nil, decodeTotals(stats.Get(keyMoney)).Add(w.money))); err != nil {
			return fmt.Errorf("sum money: %w", err)
		}
	}
	for _, day := range slices.Sorted(maps.Keys(w.days)) {
		d := w.days[day]
		if (*d == dayDelta{}) {
			continue
		}
		cur := decodeDay(day, days.Get([]byte(day)))
		cur.Orders += int(d.orders)
		cur.Money = cur.Money.Add(d.money)
		var err error
		if cur.Orders == 0 && (cur.Money == domain.Totals{}) {
			err = days.Delete([]byte(day))
		} else {
			err = days.Put([]byte(day), appendTotals(binary.BigEndian.AppendUint64(nil, uint64(cur.Orders)), cur.Money))
		}
		if err != nil {
			return fmt.Errorf("day %s: %w", day, err)
		}
	}
	return nil
}

func appendTotals(b []byte, t domain.Totals) []byte {
	for _, v := range [...]int64{t.Captured, t.Refunded, t.ChargedBack, t.Reversed, t.Net} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// decodeTotals reads appendTotals' 40 bytes; anything else is zero.
func decodeTotals(b []byte) domain.Totals {
	if len(b) != 40 {
		return domain.Totals{}
	}
	v := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[8*i:])) }
	return domain.Totals{Captured: v(0), Refunded: v(1), ChargedBack: v(2), Reversed: v(3), Net: v(4)}
}

func decodeDay(day string, v []byte) projections.DayTotals {
	d := projections.DayTotals{Day: day}
	if len(v) == 48 {
		d.Orders = int(int64(binary.BigEndian.Uint64(v)))
		d.Money = decodeTotals(v[8:])
	}
	return d
}
