package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
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
//	ix_stats            "status" 0x00 status -> count; "money" -> totals;
//	                    "books" -> account balances (5 x 8 bytes)
//	ix_days             day (2006-01-02) -> orders checked out, totals
//	ix_day_status       day 0x00 status -> orders checked out that day now
//	                    in status, totals moved that day by orders now in it
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
	bucketDayStatus        = []byte("ix_day_status")
	bucketIndexMeta        = []byte("ix_meta")

	// orderIndexes are the buckets of rowKeys, in its order.
	orderIndexes = [...][]byte{bucketByStatusID, bucketByStatusActivity, bucketByStatusAmount}
	indexBuckets = append(orderIndexes[:], bucketStats, bucketDays, bucketDayStatus, bucketIndexMeta)

	keyIndexVersion = []byte("version")
	keyMoney        = []byte("money")
	keyBooks        = []byte("books")
	keyStatusPrefix = []byte("status\x00")
)

// indexVersion is the layout above; a file with another (or none) has its
// indexes built again from the summaries when it is opened. 2: the books
// sum and ix_day_status.
const indexVersion = 2

// indexed is what the indexes and aggregates know of a row. Decoding an
// old row into it skips the fields nothing here needs.
type indexed struct {
	Status    domain.Status    `json:"status"`
	Total     int64            `json:"total"`
	Money     domain.Totals    `json:"money"`
	LastAt    time.Time        `json:"lastAt"`
	CreatedAt time.Time        `json:"createdAt"`
	Days      []domain.DayMove `json:"days"`
	Books     domain.Books     `json:"books"`
}

func indexedOf(s *projections.Summary) indexed {
	return indexed{Status: s.Status, Total: s.Total, Money: s.Money, LastAt: s.LastAt, CreatedAt: s.CreatedAt, Days: s.Days, Books: s.Books}
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

// dayDelta is what a batch changes on one day, and on each of its
// (day, status) cells.
type dayDelta struct {
	orders int64
	money  domain.Totals
	cells  []cellDelta // a few statuses at most: a slice beats a map
}

type cellDelta struct {
	status domain.Status
	orders int64
	money  domain.Totals
}

func (dd *dayDelta) cell(st domain.Status) *cellDelta {
	for i := range dd.cells {
		if dd.cells[i].status == st {
			return &dd.cells[i]
		}
	}
	dd.cells = append(dd.cells, cellDelta{status: st})
	return &dd.cells[len(dd.cells)-1]
}

// indexWriter keeps the indexes in step with the rows of one transaction.
// Counters and aggregates are summed in memory and written once, by flush.
type indexWriter struct {
	tx     *bbolt.Tx
	ix     [len(orderIndexes)]*bbolt.Bucket
	status map[domain.Status]int64
	money  domain.Totals
	books  domain.Books
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
	if sign < 0 {
		w.books = w.books.Sub(ix.Books)
	} else {
		w.books = w.books.Add(ix.Books)
	}
	for _, d := range ix.Days {
		dd := w.day(d.Day)
		dd.money = addSigned(dd.money, d.Money, sign)
		c := dd.cell(ix.Status)
		c.money = addSigned(c.money, d.Money, sign)
	}
	if !ix.CreatedAt.IsZero() {
		var buf [16]byte
		d := ix.CreatedAt.UTC().AppendFormat(buf[:0], domain.DayFormat)
		dd := w.days[string(d)] // no allocation for a day seen before
		if dd == nil {
			dd = w.day(string(d))
		}
		dd.orders += sign
		dd.cell(ix.Status).orders += sign
	}
}

func addSigned(t, o domain.Totals, sign int64) domain.Totals {
	if sign < 0 {
		return t.Sub(o)
	}
	return t.Add(o)
}

// flush writes the summed counters and day aggregates; a day or cell left
// with nothing is deleted, so Days and DayStatus list only what moved.
func (w *indexWriter) flush() error {
	stats := w.tx.Bucket(bucketStats)
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
	if w.books.Balance != ([domain.NumAccounts]int64{}) {
		if err := stats.Put(keyBooks, appendBooks(nil, decodeBooks(stats.Get(keyBooks)).Add(w.books))); err != nil {
			return fmt.Errorf("sum books: %w", err)
		}
	}
	return w.flushDays()
}

// flushDays adds the day and (day, status) deltas to what is stored.
func (w *indexWriter) flushDays() error {
	days, cells := w.tx.Bucket(bucketDays), w.tx.Bucket(bucketDayStatus)
	var key []byte
	for _, day := range slices.Sorted(maps.Keys(w.days)) {
		d := w.days[day]
		if d.orders != 0 || (d.money != domain.Totals{}) {
			cur := decodeDay(day, days.Get([]byte(day)))
			if err := putCell(days, []byte(day), cur.Orders+int(d.orders), cur.Money.Add(d.money)); err != nil {
				return fmt.Errorf("day %s: %w", day, err)
			}
		}
		slices.SortFunc(d.cells, func(a, b cellDelta) int { return strings.Compare(string(a.status), string(b.status)) })
		for _, c := range d.cells {
			if c.orders == 0 && (c.money == domain.Totals{}) {
				continue
			}
			key = appendCellKey(key[:0], day, c.status)
			cur := decodeDay(day, cells.Get(key))
			if err := putCell(cells, slices.Clone(key), cur.Orders+int(c.orders), cur.Money.Add(c.money)); err != nil {
				return fmt.Errorf("day %s status %s: %w", day, c.status, err)
			}
		}
	}
	return nil
}

// appendCellKey appends the ix_day_status key of (day, st).
func appendCellKey(dst []byte, day string, st domain.Status) []byte {
	return append(append(append(dst, day...), 0), st...)
}

// putCell stores a day's (or cell's) orders and totals, or deletes it
// when nothing is left.
func putCell(b *bbolt.Bucket, k []byte, orders int, money domain.Totals) error {
	if orders == 0 && (money == domain.Totals{}) {
		return b.Delete(k)
	}
	return b.Put(k, appendTotals(binary.BigEndian.AppendUint64(nil, uint64(orders)), money))
}

// appendBooks appends the balances, 8 bytes each (Recognized is an
// order's, not a sum's: not kept).
func appendBooks(b []byte, books domain.Books) []byte {
	for _, v := range books.Balance {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// decodeBooks reads appendBooks' bytes; anything else is zero.
func decodeBooks(b []byte) domain.Books {
	var books domain.Books
	if len(b) != 8*domain.NumAccounts {
		return books
	}
	for i := range books.Balance {
		books.Balance[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
	}
	return books
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
