package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	json "github.com/go-json-experiment/json"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
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
//	     uvarint days, then per day: str day, 5 varint totals,
//	     [5 varint account balances]          (rowBooks)
//
// str is uvarint length + bytes; time is varint Unix seconds + uvarint
// nanoseconds (the zero time included), read back in UTC. Rows written
// before the books have neither books flag and read back with zero books
// (the read model's books marker says whether to trust them, index_books.go);
// zero books are not written either.
const (
	rowCompact    = 0x01
	rowOwnStream  = 1 << 0
	rowBooks      = 1 << 1 // the account balances follow the days
	rowRecognized = 1 << 2 // Books.Recognized
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
	hasBalances := s.Books.Balance != [domain.NumAccounts]int64{}
	if hasBalances {
		flags |= rowBooks
	}
	if s.Books.Recognized {
		flags |= rowRecognized
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
	if hasBalances {
		for _, v := range s.Books.Balance {
			dst = binary.AppendVarint(dst, v)
		}
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
	r := rowReader{codec.NewReader(b, errRow)}
	if r.Byte() != rowCompact {
		return errRow
	}
	flags := r.Uvarint()
	stream := ""
	idb := r.Bytes()
	if flags&rowOwnStream != 0 {
		s.OrderID = string(idb)
		stream = string(r.Bytes())
	} else {
		// One string for both: the id is the stream's tail.
		stream = domain.StreamPrefix + string(idb)
		s.OrderID = stream[len(domain.StreamPrefix):]
	}
	s.Stream = stream
	s.Revision = r.Uvarint()
	s.Status = r.status()
	s.PreviousStatus = r.status()
	s.StatusReason = r.str()
	s.Total = r.Varint()
	s.Money = r.totals()
	s.PlacementAttempts = int(r.Uvarint())
	s.PlacementDeadline = r.time()
	s.Held, s.Ignored, s.Flags, s.Facts = int(r.Uvarint()), int(r.Uvarint()), int(r.Uvarint()), int(r.Uvarint())
	s.LastAt = r.time()
	s.CreatedAt = r.time()
	s.Days = nil
	if n := r.Uvarint(); n > 0 && n <= uint64(len(b)) {
		s.Days = make([]domain.DayMove, n)
		for i := range s.Days {
			s.Days[i] = domain.DayMove{Day: r.str(), Money: r.totals()}
		}
	}
	s.Books = r.books(flags)
	if !r.Done() {
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
	r := rowReader{codec.NewReader(b, errRow)}
	if r.Byte() != rowCompact {
		return errRow
	}
	flags := r.Uvarint()
	r.Bytes() // order id
	if flags&rowOwnStream != 0 {
		r.Bytes() // stream
	}
	r.Uvarint() // revision
	v.ix.Status = r.status()
	r.Bytes() // previous status
	r.Bytes() // status reason
	v.ix.Total = r.Varint()
	v.ix.Money = r.totals()
	v.attempts = int(r.Uvarint())
	v.deadline = r.time()
	for range 4 {
		r.Uvarint() // held, ignored, flags, facts
	}
	v.ix.LastAt = r.time()
	v.ix.CreatedAt = r.time()
	n := r.Uvarint()
	if n > uint64(len(b)) {
		return errRow
	}
	v.ix.Days = v.ix.Days[:0]
	for range n {
		d := r.Bytes()
		name, ok := names[string(d)]
		if !ok {
			name = string(d)
			names[name] = name
		}
		v.ix.Days = append(v.ix.Days, domain.DayMove{Day: name, Money: r.totals()})
	}
	v.ix.Books = r.books(flags)
	if !r.Done() {
		return errRow
	}
	return nil
}

// rowSortVals reads a compact row's status, total and last activity
// without allocating.
func rowSortVals(b []byte) (sortVals, error) {
	r := rowReader{codec.NewReader(b, errRow)}
	if r.Byte() != rowCompact {
		return sortVals{}, errRow
	}
	flags := r.Uvarint()
	r.Bytes()
	if flags&rowOwnStream != 0 {
		r.Bytes()
	}
	r.Uvarint()
	var v sortVals
	v.status = r.status()
	r.Bytes()
	r.Bytes()
	v.total = r.Varint()
	r.totals()
	r.Uvarint()
	r.time()
	for range 4 {
		r.Uvarint()
	}
	v.act = activity(r.time())
	if r.Err() != nil {
		return v, errRow
	}
	return v, nil
}

// rowReader reads the fields of a compact row.
type rowReader struct{ codec.Reader }

func (r *rowReader) str() string {
	b := r.Bytes()
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// status interns the known statuses: no allocation per row.
func (r *rowReader) status() domain.Status {
	b := r.Bytes()
	if len(b) == 0 {
		return ""
	}
	return internStatusBytes(b)
}

func (r *rowReader) totals() domain.Totals {
	return domain.Totals{Captured: r.Varint(), Refunded: r.Varint(), ChargedBack: r.Varint(), Reversed: r.Varint(), Net: r.Varint()}
}

// books reads the account balances the flags say follow, if any.
func (r *rowReader) books(flags uint64) domain.Books {
	b := domain.Books{Recognized: flags&rowRecognized != 0}
	if flags&rowBooks != 0 {
		for i := range b.Balance {
			b.Balance[i] = r.Varint()
		}
	}
	return b
}

func (r *rowReader) time() time.Time {
	sec := r.Varint()
	ns := r.Uvarint()
	if ns >= 1e9 {
		r.Fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

// rowError names the order of a row that does not decode.
func rowError(id []byte, err error) error { return fmt.Errorf("summary %s: %w", id, err) }
