package bolt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// spillFile holds the sorted runs of rows a replay's file spilled, one
// after another: per row, uvarint length and the encoded row. It lives
// next to the read model under the rebuild's name, so a leftover of a
// crash goes with it (RemoveStaleRebuilds), and is read back through
// read calls, which leave its pages out of the process's memory.
type spillFile struct {
	f    *os.File
	size int64
	runs []spillRun
}

type spillRun struct{ off, n int64 }

// spillRun writes the rows in memory as one sorted run and frees them.
func (r *ReadModel) spillRun() error {
	b := &r.bulk
	if b.spill == nil {
		f, err := os.OpenFile(r.path+".spill", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("write rows: %w", err)
		}
		b.spill = &spillFile{f: f}
	}
	sp := b.spill
	w := bufio.NewWriterSize(io.NewOffsetWriter(sp.f, sp.size), 1<<20)
	var n int64
	var lenBuf [binary.MaxVarintLen64]byte
	for _, row := range b.sorted() {
		enc := b.enc(row)
		k := binary.PutUvarint(lenBuf[:], uint64(len(enc)))
		w.Write(lenBuf[:k])
		w.Write(enc)
		n += int64(k + len(enc))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write rows: spill: %w", err)
	}
	sp.runs = append(sp.runs, spillRun{off: sp.size, n: n})
	sp.size += n
	b.freeMem()
	return nil
}

// cursors returns a cursor on each run, oldest first (none for nil).
func (sp *spillFile) cursors() ([]*runCursor, error) {
	if sp == nil {
		return nil, nil
	}
	cs := make([]*runCursor, len(sp.runs))
	for i, run := range sp.runs {
		cs[i] = &runCursor{rd: bufio.NewReaderSize(io.NewSectionReader(sp.f, run.off, run.n), 256<<10)}
	}
	return cs, nil
}

func (sp *spillFile) remove() {
	_ = sp.f.Close()
	_ = os.Remove(sp.f.Name())
}

// runCursor walks one sorted run: in the spill file (rd) or in memory.
type runCursor struct {
	rd   *bufio.Reader
	mem  *bulkRows
	rows []bulkRow
	i    int
	buf  []byte
	// The current row; nil at the end. Valid until advance.
	id, enc []byte
}

func (c *runCursor) advance() error {
	c.id, c.enc = nil, nil
	if c.rd == nil {
		if c.i < len(c.rows) {
			row := c.rows[c.i]
			c.i++
			c.id, c.enc = c.mem.id(row), c.mem.enc(row)
		}
		return nil
	}
	n, err := binary.ReadUvarint(c.rd)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil || n > 1<<30 {
		return fmt.Errorf("read spilled rows: %w", errors.Join(err, errRow))
	}
	c.buf = slices.Grow(c.buf[:0], int(n))[:n]
	if _, err := io.ReadFull(c.rd, c.buf); err != nil {
		return fmt.Errorf("read spilled rows: %w", err)
	}
	off, idLen := rowIDAt(c.buf)
	if off+idLen > len(c.buf) {
		return fmt.Errorf("read spilled rows: %w", errRow)
	}
	c.enc, c.id = c.buf, c.buf[off:off+idLen]
	return nil
}

// nextMerged returns the next row of the runs in id order, copied into
// ar, and moves past it in every run that has it: the latest run's row
// of an order wins. nil at the end.
func nextMerged(cs []*runCursor, ar *arena) ([]byte, error) {
	best := -1
	for i, c := range cs {
		if c.enc != nil && (best < 0 || bytes.Compare(c.id, cs[best].id) <= 0) {
			best = i
		}
	}
	if best < 0 {
		return nil, nil
	}
	enc := ar.copy(cs[best].enc)
	off, idLen := rowIDAt(enc)
	id := enc[off : off+idLen]
	for _, c := range cs {
		if c.enc != nil && bytes.Equal(c.id, id) {
			if err := c.advance(); err != nil {
				return nil, err
			}
		}
	}
	return enc, nil
}

// arena holds copies of rows for one write transaction, in blocks
// outside the heap (allocBlock) that never move.
type arena struct {
	cur     []byte
	release []func()
}

func (a *arena) copy(b []byte) []byte {
	if cap(a.cur)-len(a.cur) < len(b) {
		blk, free := allocBlock(max(bulkBlock, len(b)))
		a.cur, a.release = blk[:0], append(a.release, free)
	}
	start := len(a.cur)
	a.cur = append(a.cur, b...)
	return a.cur[start:len(a.cur):len(a.cur)]
}

func (a *arena) free() {
	for _, f := range a.release {
		f()
	}
	*a = arena{}
}
