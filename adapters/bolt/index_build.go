package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
)

// Building the order indexes in one go, for a file written without them:
// every order's sort values are gathered first, then each index is
// written in key order, so bbolt fills one leaf after another instead of
// rewriting a page for each key. (Kept row by row in a rebuild, keys in
// random order made `ledger-bench replay` of 333,333 orders take 23 s
// instead of 15 and peak at 490 MB RSS instead of 290.)

func hasIndexes(tx *bbolt.Tx) bool {
	meta := tx.Bucket(bucketIndexMeta)
	if meta == nil {
		return false
	}
	v := meta.Get(keyIndexVersion)
	return len(v) == 8 && binary.BigEndian.Uint64(v) == indexVersion
}

func markIndexed(tx *bbolt.Tx) error {
	if err := tx.Bucket(bucketIndexMeta).Put(keyIndexVersion, binary.BigEndian.AppendUint64(nil, indexVersion)); err != nil {
		return fmt.Errorf("mark indexes built: %w", err)
	}
	return nil
}

// resetIndexes empties every index bucket, the version mark included.
func resetIndexes(tx *bbolt.Tx) error {
	for _, name := range indexBuckets {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("drop index %s: %w", name, err)
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create index %s: %w", name, err)
		}
	}
	return nil
}

// ensureIndexes builds the indexes from the summaries when the file has
// none of this version (written by an older ledger, or a rebuild that
// never finished). It works in transactions of scanChunk rows and
// buildChunk keys, so a large file's build never holds all its dirty
// pages at once; the version mark is written last, so a crash midway
// means a fresh build on the next open.
func ensureIndexes(db *bbolt.DB) error {
	built := false
	if err := db.Update(func(tx *bbolt.Tx) error {
		if built = hasIndexes(tx); built {
			return nil
		}
		return resetIndexes(tx)
	}); err != nil || built {
		return err
	}
	b := &indexBuild{}
	var after []byte
	for more := true; more; {
		err := db.Update(func(tx *bbolt.Tx) error {
			var err error
			after, more, err = aggregateChunk(tx, b, after)
			return err
		})
		if err != nil {
			return err
		}
	}
	for i := range orderIndexes {
		order := b.orderBy(i)
		for start := 0; start < len(order); start += buildChunk {
			chunk := order[start:min(start+buildChunk, len(order))]
			if err := db.Update(func(tx *bbolt.Tx) error { return b.write(tx, i, chunk) }); err != nil {
				return err
			}
		}
	}
	return db.Update(markIndexed)
}

// aggregateChunk counts up to scanChunk rows after the id after into the
// aggregates and gathers their sort values into b; more is false once the
// last row is in.
func aggregateChunk(tx *bbolt.Tx, b *indexBuild, after []byte) (last []byte, more bool, err error) {
	w := newIndexWriter(tx, true)
	c := tx.Bucket(bucketSummaries).Cursor()
	k, v := c.First()
	if after != nil {
		if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	n := 0
	for ; k != nil && n < scanChunk; k, v = c.Next() {
		var ix indexed
		if err := decodeIndexed(v, &ix); err != nil {
			return nil, false, fmt.Errorf("index summary %s: %w", k, err)
		}
		if err := w.update(k, nil, &ix); err != nil {
			return nil, false, err
		}
		if err := b.add(k, valsOf(&ix)); err != nil {
			return nil, false, err
		}
		last, n = bytes.Clone(k), n+1
	}
	return last, k != nil, w.flush()
}

// buildChunk is how many keys one transaction of BuildIndexes writes (a
// variable for the tests).
var buildChunk = 16 << 10

// BuildIndexes writes the order indexes of a file opened with
// DeferIndexes, once every row is in, and from then on keeps them with
// every write. It reads each row's status, total and last activity (the
// aggregates were kept by the writes). The version mark is written last:
// a file left without it has its indexes built again when next opened.
func (r *ReadModel) BuildIndexes(ctx context.Context) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if !r.deferred.Load() {
		return nil // kept with every write already
	}
	if err := r.flushBulk(); err != nil {
		return fmt.Errorf("build indexes of %s: %w", r.path, err)
	}
	b, err := r.scanSortVals(ctx)
	if err != nil {
		return fmt.Errorf("build indexes of %s: %w", r.path, err)
	}
	for i := range orderIndexes {
		order := b.orderBy(i)
		for start := 0; start < len(order); start += buildChunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			chunk := order[start:min(start+buildChunk, len(order))]
			if err := r.db.Update(func(tx *bbolt.Tx) error { return b.write(tx, i, chunk) }); err != nil {
				return fmt.Errorf("build indexes of %s: %w", r.path, err)
			}
		}
	}
	if err := r.db.Update(markIndexed); err != nil {
		return fmt.Errorf("build indexes of %s: %w", r.path, err)
	}
	r.deferred.Store(false)
	return nil
}

// scanChunk is how many rows scanSortVals reads per transaction, between
// which the pages they mapped in can be dropped (touch); a variable for
// the tests.
var scanChunk = 16 << 10

// scanSortVals reads every row's sort values, in id order, into arrays
// sized from the counters (a replay's peak memory is the concern).
func (r *ReadModel) scanSortVals(ctx context.Context) (*indexBuild, error) {
	b := &indexBuild{}
	err := r.db.View(func(tx *bbolt.Tx) error {
		n := 0
		for _, st := range presentStatuses(tx) {
			n += int(int64(binary.BigEndian.Uint64(tx.Bucket(bucketStats).Get(append(slices.Clip(keyStatusPrefix), st...)))))
		}
		n = max(n, 0) // only a size hint
		k, _ := tx.Bucket(bucketSummaries).Cursor().First()
		b.recs, b.ids = make([]buildRec, 0, n), make([]byte, 0, n*len(k))
		return nil
	})
	if err != nil {
		return nil, err
	}
	var sc sortScanner
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := 0
		err := r.db.View(func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketSummaries).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < scanChunk; k, v = c.Next() {
				sv, err := sc.scan(v)
				if err != nil {
					return fmt.Errorf("index summary %s: %w", k, err)
				}
				if err := b.add(k, sv); err != nil {
					return err
				}
				after = append(after[:0], k...)
				n++
			}
			return nil
		})
		r.touch(n)
		if err != nil || n < scanChunk {
			return b, err
		}
	}
}

// sortScanner reads a stored row's status, total and lastAt with one
// pass over its JSON tokens, skipping the rest: a fraction of decoding
// the row.
type sortScanner struct {
	buf bytes.Buffer
	dec jsontext.Decoder
	str []byte
}

var (
	nameStatus = []byte(`"status"`)
	nameTotal  = []byte(`"total"`)
	nameLastAt = []byte(`"lastAt"`)
)

func (sc *sortScanner) scan(row []byte) (sortVals, error) {
	if len(row) > 0 && row[0] != '{' {
		return rowSortVals(row)
	}
	var v sortVals
	v.act = activity(time.Time{})
	sc.buf = *bytes.NewBuffer(row) // the decoder reads it in place
	sc.dec.Reset(&sc.buf)
	if tok, err := sc.dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return v, fmt.Errorf("not a JSON object: %v", err)
	}
	for sc.dec.PeekKind() == '"' {
		name, err := sc.dec.ReadValue()
		if err != nil {
			return v, err
		}
		switch {
		case bytes.Equal(name, nameStatus):
			err = sc.readString(func(s []byte) error { v.status = internStatusBytes(s); return nil })
		case bytes.Equal(name, nameTotal):
			var val jsontext.Value
			if val, err = sc.dec.ReadValue(); err == nil {
				v.total, err = strconv.ParseInt(string(val), 10, 64)
			}
		case bytes.Equal(name, nameLastAt):
			err = sc.readString(func(s []byte) error {
				t, err := time.Parse(time.RFC3339Nano, string(s))
				v.act = activity(t)
				return err
			})
		default:
			err = sc.dec.SkipValue()
		}
		if err != nil {
			return v, fmt.Errorf("%s: %w", name, err)
		}
	}
	return v, nil
}

func (sc *sortScanner) readString(use func([]byte) error) error {
	val, err := sc.dec.ReadValue()
	if err != nil {
		return err
	}
	if sc.str, err = jsontext.AppendUnquote(sc.str[:0], val); err != nil {
		return err
	}
	return use(sc.str)
}

// indexBuild gathers every order's sort values: 24 bytes and the id each.
type indexBuild struct {
	ids      []byte // the order ids, one after another, in id order
	recs     []buildRec
	statuses []domain.Status // buildRec.st indexes this
}

type buildRec struct {
	off        uint32 // the id is ids[off : off+n]
	n          uint16
	st         uint8
	act, total int64
}

func (b *indexBuild) id(r *buildRec) []byte { return b.ids[r.off : r.off+uint32(r.n)] }

func (b *indexBuild) vals(r *buildRec) sortVals {
	return sortVals{status: b.statuses[r.st], act: r.act, total: r.total}
}

// add appends an order; orders come in id order (a scan of the summaries).
func (b *indexBuild) add(id []byte, v sortVals) error {
	if len(id) > 1<<16-1 || len(b.ids)+len(id) > 1<<32-1 {
		return fmt.Errorf("index %.40s: %w", id, errors.New("order ids too long to index"))
	}
	st := slices.Index(b.statuses, v.status)
	if st < 0 {
		if len(b.statuses) == 1<<8-1 {
			return fmt.Errorf("index %s: more than 255 statuses", id)
		}
		st = len(b.statuses)
		b.statuses = append(b.statuses, v.status)
	}
	b.recs = append(b.recs, buildRec{off: uint32(len(b.ids)), n: uint16(len(id)), st: uint8(st), act: v.act, total: v.total})
	b.ids = append(b.ids, id...)
	return nil
}

// orderBy returns the records' places in the key order of orderIndexes[i].
func (b *indexBuild) orderBy(i int) []uint32 {
	perm := make([]uint32, len(b.recs))
	for j := range perm {
		perm[j] = uint32(j)
	}
	if i > 0 {
		slices.SortFunc(perm, func(x, y uint32) int { return b.compare(i, &b.recs[x], &b.recs[y]) })
	} else { // the records are in id order: status, id is a stable sort by status
		slices.SortStableFunc(perm, func(x, y uint32) int { return cmp.Compare(b.statuses[b.recs[x].st], b.statuses[b.recs[y].st]) })
	}
	return perm
}

// compare orders two records as their keys in orderIndexes[i] sort
// (appendKey): status (no status holds a 0 byte, so string order is key
// order), then the sort value, largest first, then the id.
func (b *indexBuild) compare(i int, x, y *buildRec) int {
	c := cmp.Compare(b.statuses[x.st], b.statuses[y.st])
	switch {
	case c != 0:
	case i == 1:
		c = cmp.Compare(y.act, x.act)
	case i == 2:
		c = cmp.Compare(y.total, x.total)
	}
	return cmp.Or(c, bytes.Compare(b.id(x), b.id(y)))
}

// write puts the keys of the records order lists into orderIndexes[i],
// in that order, and checks that it is the keys' order.
func (b *indexBuild) write(tx *bbolt.Tx, i int, order []uint32) error {
	bk := tx.Bucket(orderIndexes[i])
	bk.FillPercent = 1 // keys come in order: pack the pages
	size := 0
	for _, j := range order {
		size += len(b.statuses[b.recs[j].st]) + 1 + 8 + int(b.recs[j].n)
	}
	arena := make([]byte, 0, size) // never grows: bbolt keeps the keys until the commit
	var prev []byte
	for _, j := range order {
		r := &b.recs[j]
		start := len(arena)
		arena = appendKey(arena, i, b.id(r), b.vals(r))
		k := arena[start:len(arena):len(arena)]
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("build index %s: keys out of order at %x", orderIndexes[i], k)
		}
		if err := bk.Put(k, []byte{}); err != nil {
			return fmt.Errorf("build index %s: %w", orderIndexes[i], err)
		}
		prev = k
	}
	return nil
}

var knownStatuses = domain.Statuses()

// internStatusBytes is the status constant spelt s, without a copy of s
// (or a copy, for a status the ledger does not know).
func internStatusBytes(s []byte) domain.Status {
	for _, st := range knownStatuses {
		if string(s) == string(st) {
			return st
		}
	}
	return domain.Status(s)
}
