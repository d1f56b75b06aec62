package bolt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
	bbolt "go.etcd.io/bbolt"
)

var _ projections.OrderIndex = (*ReadModel)(nil)

// errNotIndexed: a DeferIndexes file before BuildIndexes.
var errNotIndexed = errors.New("order indexes not built yet")

// Listing limits.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// listing is an OrderQuery turned into ranges of one index: one range for
// id order or one status; for a sort by value over every status, one per
// status, merged.
type listing struct {
	tag    byte   // first byte of a cursor: the sort, upper case when its key has no status
	bucket []byte // bucketSummaries (id order, every status) or orderIndexes[key]
	key    int    // the bucket's place in orderIndexes; -1 for bucketSummaries
	status []byte // status 0x00 of the status asked; nil: every status
	sortN  int    // bytes of sort value between status and id: 8, or 0 in id order
	prefix []byte // what every key walked (a cursor's too) starts with
	after  []byte // the cursor's key: the listing goes on after it
	limit  int
	idPre  []byte // order id prefix
}

func planListing(q projections.OrderQuery) (listing, error) {
	l := listing{status: statusPart(q.Status), limit: q.Limit, idPre: []byte(q.Prefix)}
	if q.Status != "" && !q.Status.Valid() {
		return l, fmt.Errorf("%w: unknown status %q", projections.ErrInvalidQuery, q.Status)
	}
	if l.limit <= 0 {
		l.limit = defaultPageSize
	}
	l.limit = min(l.limit, maxPageSize)
	switch q.Sort {
	case "", projections.SortByID:
		l.tag, l.bucket, l.key = 'i', bucketByStatusID, 0
		if q.Status == "" {
			l.bucket, l.key = bucketSummaries, -1
		}
	case projections.SortByActivity:
		l.tag, l.bucket, l.key, l.sortN = 'a', bucketByStatusActivity, 1, 8
	case projections.SortByAmount:
		l.tag, l.bucket, l.key, l.sortN = 'm', bucketByStatusAmount, 2, 8
	default:
		return l, fmt.Errorf("%w: unknown sort %q", projections.ErrInvalidQuery, q.Sort)
	}
	switch {
	case l.sortN == 0:
		l.prefix = append(slices.Clip(l.status), l.idPre...)
	case l.status != nil && len(l.idPre) == 0:
		l.prefix = l.status
	default: // merged or sorted in memory: keys without the status
		l.tag -= 'a' - 'A'
	}
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(b) < 2 || b[0] != l.tag || !bytes.HasPrefix(b[1:], l.prefix) || len(b)-1 < len(l.prefix)+l.sortN {
			return l, fmt.Errorf("%w: the cursor is not one of this listing's", projections.ErrInvalidQuery)
		}
		l.after = b[1:]
	}
	return l, nil
}

func (l *listing) cursor(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{l.tag}, key...))
}

// Orders implements projections.OrderIndex: only the rows of the page are
// decoded. An id prefix with a sort by value decodes the rows whose id
// has the prefix (and no other) and sorts them.
func (r *ReadModel) Orders(ctx context.Context, q projections.OrderQuery) (projections.OrderPage, error) {
	if err := ctx.Err(); err != nil {
		return projections.OrderPage{}, err
	}
	if r.deferred.Load() {
		return projections.OrderPage{}, fmt.Errorf("read model %s: %w", r.path, errNotIndexed)
	}
	l, err := planListing(q)
	if err != nil {
		return projections.OrderPage{}, err
	}
	page := projections.OrderPage{Orders: []projections.Summary{}}
	decoded := 0
	err = r.view(func(tx *bbolt.Tx) error {
		var err error
		switch {
		case l.sortN > 0 && len(l.idPre) > 0:
			decoded, err = l.sortPrefix(tx, &page)
			return err
		case l.sortN > 0 && l.status == nil:
			err = l.merge(tx, &page)
		default:
			err = l.walk(tx, &page)
		}
		decoded = len(page.Orders)
		return err
	})
	r.touch(decoded)
	if err != nil {
		return projections.OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	return page, nil
}

// walk reads the page from one range of the listing's index, in key order.
func (l *listing) walk(tx *bbolt.Tx, page *projections.OrderPage) error {
	sums := tx.Bucket(bucketSummaries)
	c := tx.Bucket(l.bucket).Cursor()
	k, v := c.Seek(l.prefix)
	if l.after != nil {
		if k, v = c.Seek(l.after); bytes.Equal(k, l.after) {
			k, v = c.Next()
		}
	}
	var last []byte
	for ; k != nil && bytes.HasPrefix(k, l.prefix); k, v = c.Next() {
		if len(page.Orders) == l.limit {
			page.Next = l.cursor(last)
			return nil
		}
		id := k[len(l.status)+l.sortN:]
		if l.key >= 0 {
			v = sums.Get(id)
		}
		if err := appendRow(page, id, v); err != nil {
			return err
		}
		last = k
	}
	return nil
}

func appendRow(page *projections.OrderPage, id, v []byte) error {
	if v == nil {
		return fmt.Errorf("an index lists order %s, which has no row", id)
	}
	var s projections.Summary
	if err := decodeRow(v, &s); err != nil {
		return fmt.Errorf("summary %s: %w", id, err)
	}
	page.Orders = append(page.Orders, s)
	return nil
}

// merge reads the page of a sort by value over every status: one range of
// the index per status there is (the counters say which), merged on the
// keys without their status.
func (l *listing) merge(tx *bbolt.Tx, page *projections.OrderPage) error {
	type head struct {
		c    *bbolt.Cursor
		st   []byte // status 0x00
		rest []byte // the current key without st
	}
	var heads []head
	bk := tx.Bucket(l.bucket)
	for _, st := range presentStatuses(tx) {
		h := head{c: bk.Cursor(), st: append([]byte(st), 0)}
		k, _ := h.c.Seek(append(slices.Clip(h.st), l.after...))
		if l.after != nil && bytes.Equal(k, append(slices.Clip(h.st), l.after...)) {
			k, _ = h.c.Next()
		}
		if bytes.HasPrefix(k, h.st) {
			h.rest = k[len(h.st):]
			heads = append(heads, h)
		}
	}
	sums := tx.Bucket(bucketSummaries)
	var last []byte
	for len(heads) > 0 {
		m := 0
		for i := range heads {
			if bytes.Compare(heads[i].rest, heads[m].rest) < 0 {
				m = i
			}
		}
		if len(page.Orders) == l.limit {
			page.Next = l.cursor(last)
			return nil
		}
		h := &heads[m]
		id := h.rest[l.sortN:]
		if err := appendRow(page, id, sums.Get(id)); err != nil {
			return err
		}
		last = h.rest
		if k, _ := h.c.Next(); bytes.HasPrefix(k, h.st) {
			h.rest = k[len(h.st):]
		} else {
			heads = slices.Delete(heads, m, m+1)
		}
	}
	return nil
}

// presentStatuses lists the statuses some order is in, from the counters.
func presentStatuses(tx *bbolt.Tx) []domain.Status {
	var out []domain.Status
	c := tx.Bucket(bucketStats).Cursor()
	for k, v := c.Seek(keyStatusPrefix); k != nil && bytes.HasPrefix(k, keyStatusPrefix); k, v = c.Next() {
		if len(v) == 8 && binary.BigEndian.Uint64(v) != 0 {
			out = append(out, domain.Status(k[len(keyStatusPrefix):]))
		}
	}
	return out
}

// sortPrefix ranges over the ids with the prefix (in the status+id index
// when a status is given), builds each one's key without status from its
// row and sorts them: the order the index has them in.
func (l *listing) sortPrefix(tx *bbolt.Tx, page *projections.OrderPage) (int, error) {
	sums := tx.Bucket(bucketSummaries)
	ids := sums
	if l.status != nil {
		ids = tx.Bucket(bucketByStatusID)
	}
	from := append(slices.Clip(l.status), l.idPre...)
	var keys [][]byte
	decoded := 0
	c := ids.Cursor()
	for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, from); k, v = c.Next() {
		id := k[len(l.status):]
		if ids != sums {
			v = sums.Get(id)
		}
		var ix indexed
		if err := decodeIndexed(v, &ix); err != nil {
			return decoded, fmt.Errorf("summary %s: %w", id, err)
		}
		decoded++
		if key := appendSortKey(nil, l.key, id, valsOf(&ix)); l.after == nil || bytes.Compare(key, l.after) > 0 {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	if len(keys) > l.limit {
		keys = keys[:l.limit]
		page.Next = l.cursor(keys[len(keys)-1])
	}
	for _, k := range keys {
		id := k[l.sortN:]
		if err := appendRow(page, id, sums.Get(id)); err != nil {
			return decoded, err
		}
	}
	return decoded + len(keys), nil
}

// Overview implements projections.OrderIndex from the counters alone.
// ByStatus has every status (0 when none); orders whose checkout has not
// arrived yet count under "".
func (r *ReadModel) Overview(ctx context.Context) (projections.Overview, error) {
	if err := ctx.Err(); err != nil {
		return projections.Overview{}, err
	}
	if r.deferred.Load() {
		return projections.Overview{}, fmt.Errorf("read model %s: %w", r.path, errNotIndexed)
	}
	o := projections.Overview{ByStatus: make(map[domain.Status]int, 11)}
	for _, st := range domain.Statuses() {
		o.ByStatus[st] = 0
	}
	err := r.view(func(tx *bbolt.Tx) error {
		stats := tx.Bucket(bucketStats)
		c := stats.Cursor()
		for k, v := c.Seek(keyStatusPrefix); k != nil && bytes.HasPrefix(k, keyStatusPrefix); k, v = c.Next() {
			if len(v) != 8 {
				return fmt.Errorf("corrupt status counter %q", k)
			}
			n := int(int64(binary.BigEndian.Uint64(v)))
			if st := domain.Status(k[len(keyStatusPrefix):]); n != 0 || st != "" {
				o.ByStatus[st] = n
			}
			o.Orders += n
		}
		o.Money = decodeTotals(stats.Get(keyMoney))
		o.Books = decodeBooks(stats.Get(keyBooks))
		o.BooksStale = !hasBooks(tx)
		return nil
	})
	if err != nil {
		return projections.Overview{}, fmt.Errorf("overview: %w", err)
	}
	return o, nil
}

// checkDayQuery is what a question by day needs first: a live context,
// built indexes and days of the form domain.DayFormat ("" is an open end).
func (r *ReadModel) checkDayQuery(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.deferred.Load() {
		return fmt.Errorf("read model %s: %w", r.path, errNotIndexed)
	}
	for _, d := range []string{from, to} {
		if _, err := time.Parse(domain.DayFormat, d); d != "" && err != nil {
			return fmt.Errorf("%w: day %q: want %s", projections.ErrInvalidQuery, d, domain.DayFormat)
		}
	}
	return nil
}

// Days implements projections.OrderIndex from the day aggregates alone.
func (r *ReadModel) Days(ctx context.Context, from, to string) ([]projections.DayTotals, error) {
	if err := r.checkDayQuery(ctx, from, to); err != nil {
		return nil, err
	}
	out := []projections.DayTotals{}
	err := r.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDays).Cursor()
		for k, v := c.Seek([]byte(from)); k != nil && (to == "" || string(k) <= to); k, v = c.Next() {
			if len(v) != 48 {
				return fmt.Errorf("corrupt day %q", k)
			}
			out = append(out, decodeDay(string(k), v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("days %s..%s: %w", from, to, err)
	}
	return out, nil
}
