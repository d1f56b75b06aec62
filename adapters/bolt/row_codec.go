package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	json "github.com/go-json-experiment/json"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// A summary row is stored compact (rowCompact, below) since this version;
// files written before hold JSON rows ('{' first), which every reader
// still decodes. A replay lists and rewrites every row, and decoding the
// JSON took most of a diff's time.
//
//	[0]  rowCompact
//	     uvarint flags (rowOwnStream: the stream is not "order-" + id)
//	     str order id, [str stream], uvarint revision,
//	     str status, str previous status, str status reason,
//	     varint total, 5 varint money totals,
//	     uvarint placement attempts, time placement deadline,
//	     uvarint held, ignored, flags, facts,
//	     time last at, time created at,
//	     uvarint days, then per day: str day, 5 varint totals
//
// str is uvarint length + bytes; time is varint Unix seconds + uvarint
// nanoseconds (the zero time included), read back in UTC.
const (
	rowCompact   = 0x01
	rowOwnStream = 1 << 0
)

var errRow = errors.New("corrupt summary row")

// appendSummaryRow appends the compact form of s to dst.
func appendSummaryRow(dst []byte, s *projections.Summary) []byte {
	dst = append(dst, rowCompact)
	own := s.Stream != domain.StreamPrefix+s.OrderID
	var flags uint64
	if own {
		flags |= rowOwnStream
	}
	dst = binary.AppendUvarint(dst, flags)
	dst = appendStr(dst, s.OrderID)
	if own {
		dst = appendStr(dst, s.Stream)
	}
	dst = binary.AppendUvarint(dst, s.Revision)
	dst = appendStr(dst, string(s.Status))
	dst = appendStr(dst, string(s.PreviousStatus))
	dst = appendStr(dst, s.StatusReason)
	dst = binary.AppendVarint(dst, s.Total)
	dst = appendRowTotals(dst, s.Money)
	dst = binary.AppendUvarint(dst, uint64(s.PlacementAttempts))
	dst = appendTime(dst, s.PlacementDeadline)
	for _, n := range [...]int{s.Held, s.Ignored, s.Flags, s.Facts} {
		dst = binary.AppendUvarint(dst, uint64(n))
	}
	dst = appendTime(dst, s.LastAt)
	dst = appendTime(dst, s.CreatedAt)
	dst = binary.AppendUvarint(dst, uint64(len(s.Days)))
	for _, d := range s.Days {
		dst = appendStr(dst, d.Day)
		dst = appendRowTotals(dst, d.Money)
	}
	return dst
}

func appendStr(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendRowTotals(dst []byte, t domain.Totals) []byte {
	for _, v := range [...]int64{t.Captured, t.Refunded, t.ChargedBack, t.Reversed, t.Net} {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

func appendTime(dst []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(dst, t.Unix()), uint64(t.Nanosecond()))
}

// decodeRow reads a stored row of either form into s.
func decodeRow(b []byte, s *projections.Summary) error {
	if len(b) > 0 && b[0] == '{' {
		*s = projections.Summary{}
		return json.Unmarshal(b, s)
	}
	r := rowReader{b: b}
	if r.byte() != rowCompact {
		return errRow
	}
	flags := r.uvarint()
	stream := ""
	idb := r.bytes()
	if flags&rowOwnStream != 0 {
		s.OrderID = string(idb)
		stream = string(r.bytes())
	} else {
		// One string for both: the id is the stream's tail.
		stream = domain.StreamPrefix + string(idb)
		s.OrderID = stream[len(domain.StreamPrefix):]
	}
	s.Stream = stream
	s.Revision = r.uvarint()
	s.Status = r.status()
	s.PreviousStatus = r.status()
	s.StatusReason = r.str()
	s.Total = r.varint()
	s.Money = r.totals()
	s.PlacementAttempts = int(r.uvarint())
	s.PlacementDeadline = r.time()
	s.Held, s.Ignored, s.Flags, s.Facts = int(r.uvarint()), int(r.uvarint()), int(r.uvarint()), int(r.uvarint())
	s.LastAt = r.time()
	s.CreatedAt = r.time()
	s.Days = nil
	if n := r.uvarint(); n > 0 && n <= uint64(len(b)) {
		s.Days = make([]domain.DayMove, n)
		for i := range s.Days {
			s.Days[i] = domain.DayMove{Day: r.str(), Money: r.totals()}
		}
	}
	if r.err != nil || r.off != len(b) {
		return errRow
	}
	return nil
}

// decodeIndexed reads the part of a stored row the indexes need.
func decodeIndexed(b []byte, ix *indexed) error {
	if len(b) > 0 && b[0] == '{' {
		*ix = indexed{}
		return json.Unmarshal(b, ix)
	}
	var s projections.Summary
	if err := decodeRow(b, &s); err != nil {
		return err
	}
	*ix = indexedOf(&s)
	return nil
}

// rowIndexVals reads what putRow needs of a compact row into v, reusing
// v's days; names gives each day one string, so known statuses and days
// allocate nothing.
func rowIndexVals(b []byte, v *rowIndex, names map[string]string) error {
	r := rowReader{b: b}
	if r.byte() != rowCompact {
		return errRow
	}
	flags := r.uvarint()
	r.bytes() // order id
	if flags&rowOwnStream != 0 {
		r.bytes() // stream
	}
	r.uvarint() // revision
	v.ix.Status = r.status()
	r.bytes() // previous status
	r.bytes() // status reason
	v.ix.Total = r.varint()
	v.ix.Money = r.totals()
	v.attempts = int(r.uvarint())
	v.deadline = r.time()
	for range 4 {
		r.uvarint() // held, ignored, flags, facts
	}
	v.ix.LastAt = r.time()
	v.ix.CreatedAt = r.time()
	n := r.uvarint()
	if n > uint64(len(b)) {
		return errRow
	}
	v.ix.Days = v.ix.Days[:0]
	for range n {
		d := r.bytes()
		name, ok := names[string(d)]
		if !ok {
			name = string(d)
			names[name] = name
		}
		v.ix.Days = append(v.ix.Days, domain.DayMove{Day: name, Money: r.totals()})
	}
	if r.err != nil || r.off != len(b) {
		return errRow
	}
	return nil
}

// rowSortVals reads a compact row's status, total and last activity
// without allocating.
func rowSortVals(b []byte) (sortVals, error) {
	r := rowReader{b: b}
	if r.byte() != rowCompact {
		return sortVals{}, errRow
	}
	flags := r.uvarint()
	r.bytes()
	if flags&rowOwnStream != 0 {
		r.bytes()
	}
	r.uvarint()
	var v sortVals
	v.status = r.status()
	r.bytes()
	r.bytes()
	v.total = r.varint()
	r.totals()
	r.uvarint()
	r.time()
	for range 4 {
		r.uvarint()
	}
	v.act = activity(r.time())
	if r.err != nil {
		return v, errRow
	}
	return v, nil
}

// rowReader reads the fields of a compact row; the first problem sticks
// in err and every later read returns zero.
type rowReader struct {
	b   []byte
	off int
	err error
}

func (r *rowReader) fail() { r.err, r.off = errRow, len(r.b) }

func (r *rowReader) byte() byte {
	if r.off >= len(r.b) {
		r.fail()
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *rowReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.off += n
	return v
}

func (r *rowReader) varint() int64 {
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.off += n
	return v
}

func (r *rowReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off) {
		r.fail()
		return nil
	}
	out := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return out
}

func (r *rowReader) str() string {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// status interns the known statuses: no allocation per row.
func (r *rowReader) status() domain.Status {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	return internStatusBytes(b)
}

func (r *rowReader) totals() domain.Totals {
	return domain.Totals{Captured: r.varint(), Refunded: r.varint(), ChargedBack: r.varint(), Reversed: r.varint(), Net: r.varint()}
}

func (r *rowReader) time() time.Time {
	sec := r.varint()
	ns := r.uvarint()
	if ns >= 1e9 {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

// rowError names the order of a row that does not decode.
func rowError(id []byte, err error) error { return fmt.Errorf("summary %s: %w", id, err) }
