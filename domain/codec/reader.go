package codec

import "encoding/binary"

// Reader reads the varint-framed fields of a compact form: the compact
// fact here, and the embedded store's compact read-model rows. The first
// problem sticks in Err and every later read returns zero, so a decoder
// checks once at the end.
type Reader struct {
	b   []byte
	off int
	bad error // what Err says after a failed read
	err error
}

// NewReader reads b; a failed read makes Err return bad.
func NewReader(b []byte, bad error) Reader { return Reader{b: b, bad: bad} }

// Err is nil while every read so far succeeded.
func (r *Reader) Err() error { return r.err }

// Done reports whether every read succeeded and all of b was read.
func (r *Reader) Done() bool { return r.err == nil && r.off == len(r.b) }

// Fail marks the input corrupt: a decoder's own check failed.
func (r *Reader) Fail() { r.err, r.off = r.bad, len(r.b) }

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.off >= len(r.b) {
		r.Fail()
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.off += n
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.off += n
	return v
}

// Bytes reads a length-prefixed run of bytes, aliasing the input.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if n > uint64(len(r.b)-r.off) {
		r.Fail()
		return nil
	}
	out := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return out
}
