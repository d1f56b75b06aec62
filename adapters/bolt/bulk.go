package bolt

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/projections"
)

// A replay hands a DeferIndexes file its rows in batches of random order
// ids. Written as they come, every batch rewrote most leaf pages of the
// summaries (a 2,048-row batch into 100,000 rows: 83 ms, half the
// replay). Put buffers them instead, encoded (about 100 bytes a row), and
// the rows are written sorted, so bbolt fills one full leaf after another.

// bulkLimit is how many bytes of encoded rows Put holds in memory; past
// it they go, sorted, as one run to a spill file next to the read model,
// and the runs are merged when the rows are written (bulk_spill.go). It
// bounds a replay's memory whatever the number of orders (the 1M-fact
// replay held 37 MB of rows); a variable for the tests.
var bulkLimit = 16 << 20

// bulkChunk is how many rows one transaction of a bulk write holds (a
// variable for the tests).
var bulkChunk = 32 << 10

// bulkRows are encoded rows in arrival order, kept in blocks outside the
// Go heap where the system allows (offheap_linux.go): the collector then
// paces by the replay's own objects, not by them too (a 1M-fact replay's
// heap went to twice its live objects plus twice the rows).
type bulkRows struct {
	blocks  [][]byte // filled up to len
	release []func()
	spill   *spillFile // runs spilled so far; nil: none
	size    int        // bytes of rows held
	rows    []bulkRow  // outside the heap too, in rowsMem
	rowsMem []byte
	freeRow func()
	scratch []byte // one row being encoded
}

type bulkRow struct {
	pre          uint64 // the id's first 8 bytes, big-endian: most comparisons end there
	block, off   uint32 // the encoded row is blocks[block][off:off+encLen]
	encLen       uint32
	seq          uint32 // arrival: the later of two rows for one order wins
	idOff, idLen uint16 // the id, inside the encoded row
}

// bulkBlock is the size of one block of bulkRows.
const bulkBlock = 1 << 20

// idPrefix is the first 8 bytes of id as a number that sorts as they do.
func idPrefix(id []byte) uint64 {
	var b [8]byte
	copy(b[:], id)
	return binary.BigEndian.Uint64(b[:])
}

func (b *bulkRows) enc(r bulkRow) []byte { return b.blocks[r.block][r.off : r.off+r.encLen] }

func (b *bulkRows) id(r bulkRow) []byte {
	return b.enc(r)[r.idOff : r.idOff+r.idLen]
}

// add encodes a row into the blocks.
func (b *bulkRows) add(s *projections.Summary) {
	enc := appendSummaryRow(b.scratch[:0], s)
	b.scratch = enc
	idOff, idLen := rowIDAt(enc)
	if len(b.blocks) == 0 || cap(b.blocks[len(b.blocks)-1])-len(b.blocks[len(b.blocks)-1]) < len(enc) {
		blk, free := allocBlock(max(bulkBlock, len(enc)))
		b.blocks, b.release = append(b.blocks, blk[:0]), append(b.release, free)
	}
	k := len(b.blocks) - 1
	off := len(b.blocks[k])
	b.blocks[k] = append(b.blocks[k], enc...)
	if len(b.rows) == cap(b.rows) {
		b.growRows()
	}
	b.rows = append(b.rows, bulkRow{pre: idPrefix(enc[idOff : idOff+idLen]), block: uint32(k), off: uint32(off), encLen: uint32(len(enc)),
		seq: uint32(len(b.rows)), idOff: uint16(idOff), idLen: uint16(idLen)})
	b.size += len(enc) + 32
}

// growRows doubles the room for rows.
func (b *bulkRows) growRows() {
	n := max(2*cap(b.rows), 4096)
	mem, free := allocBlock(n * int(unsafe.Sizeof(bulkRow{})))
	rows := unsafe.Slice((*bulkRow)(unsafe.Pointer(unsafe.SliceData(mem))), n)[:len(b.rows)]
	copy(rows, b.rows)
	if b.freeRow != nil {
		b.freeRow()
	}
	b.rows, b.rowsMem, b.freeRow = rows, mem, free
}

// rowIDAt finds the id in an encoded row: after the form byte, the flags
// and its length (appendSummaryRow).
func rowIDAt(enc []byte) (off, n int) {
	_, n1 := binary.Uvarint(enc[1:])
	idLen, n2 := binary.Uvarint(enc[1+n1:])
	return 1 + n1 + n2, int(idLen)
}

// freeMem gives the memory back, keeping the spilled runs; no slice of
// it may be used after.
func (b *bulkRows) freeMem() {
	for _, f := range b.release {
		f()
	}
	if b.freeRow != nil {
		b.freeRow()
	}
	*b = bulkRows{spill: b.spill, scratch: b.scratch}
}

// sorted sorts the rows in memory by id and keeps the last row of each
// order.
func (b *bulkRows) sorted() []bulkRow {
	slices.SortFunc(b.rows, func(x, y bulkRow) int {
		if x.pre != y.pre {
			return cmp.Compare(x.pre, y.pre)
		}
		if c := bytes.Compare(b.id(x), b.id(y)); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	kept := b.rows[:0]
	for i, row := range b.rows {
		if i+1 < len(b.rows) && bytes.Equal(b.id(row), b.id(b.rows[i+1])) {
			continue
		}
		kept = append(kept, row)
	}
	return kept
}

// buffer encodes rows into the bulk buffer, writing it out when full.
func (r *ReadModel) buffer(rows []projections.Summary) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if !r.deferred.Load() {
		// BuildIndexes ran meanwhile: write through.
		return r.db.Update(func(tx *bbolt.Tx) error { return putRows(tx, rows, false) })
	}
	// A batch goes in whole or not at all, as a write transaction would.
	for i := range rows {
		switch n := len(rows[i].OrderID); {
		case n == 0:
			return fmt.Errorf("write rows: %w", bbolt.ErrKeyRequired)
		case n > bbolt.MaxKeySize:
			return fmt.Errorf("write rows: %s: %w", rows[i].OrderID[:64], bbolt.ErrKeyTooLarge)
		}
	}
	for i := range rows {
		r.bulk.add(&rows[i])
	}
	r.hasBulk.Store(true)
	if r.bulk.size >= bulkLimit {
		return r.spillRun()
	}
	return nil
}

// settle writes the buffered rows, so a read sees every row Put took.
func (r *ReadModel) settle() error {
	if !r.hasBulk.Load() {
		return nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.flushBulk()
}

// view is db.View after settle.
func (r *ReadModel) view(fn func(tx *bbolt.Tx) error) error {
	if err := r.settle(); err != nil {
		return err
	}
	return r.db.View(fn)
}

// flushBulk writes the buffered rows, spilled and in memory, in id
// order, the last row of an order only. The caller holds wmu.
func (r *ReadModel) flushBulk() error {
	b := &r.bulk
	if len(b.rows) == 0 && b.spill == nil {
		return nil
	}
	defer r.hasBulk.Store(false)
	spill := b.spill
	defer func() {
		b.freeMem()
		b.spill = nil
		if spill != nil {
			spill.remove()
		}
	}()
	cs, err := spill.cursors()
	if err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	// The rows in memory came last: they win a tie.
	cs = append(cs, &runCursor{mem: b, rows: b.sorted()})
	for _, c := range cs {
		if err := c.advance(); err != nil {
			return fmt.Errorf("write rows: %w", err)
		}
	}
	return r.writeMerged(cs)
}

// writeMerged writes the merged rows of cs, bulkChunk rows a transaction.
func (r *ReadModel) writeMerged(cs []*runCursor) error {
	var v rowIndex
	days := map[string]string{}
	fresh := false // into an empty file (the first write of a replay): no old rows to look up
	for first, more := true, true; more; first = false {
		var ar arena
		n := 0
		err := r.db.Update(func(tx *bbolt.Tx) error {
			sums, due, dueKey := tx.Bucket(bucketSummaries), tx.Bucket(bucketDue), tx.Bucket(bucketDueKey)
			if first {
				k, _ := sums.Cursor().First()
				fresh = k == nil
			}
			// Keys arrive in order: full pages, as a bulk load.
			sums.FillPercent, dueKey.FillPercent = 1, 1
			ix := newIndexWriter(tx, r.deferred.Load())
			for ; n < bulkChunk; n++ {
				enc, err := nextMerged(cs, &ar)
				if err != nil || enc == nil {
					more = false
					if err != nil {
						return err
					}
					break
				}
				off, idLen := rowIDAt(enc)
				id := enc[off : off+idLen]
				if err := rowIndexVals(enc, &v, days); err != nil {
					return rowError(id, err)
				}
				if err := putRow(sums, due, dueKey, ix, id, enc, &v, fresh); err != nil {
					return err
				}
			}
			return ix.flush()
		})
		ar.free() // bbolt holds the values until the commit
		r.touch(n)
		if err != nil {
			return fmt.Errorf("write rows: %w", err)
		}
	}
	return nil
}
