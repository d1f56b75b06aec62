package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// Record format in the all bucket (version 1):
//
//	[0]      version
//	[1:9]    revision
//	[9:17]   created, Unix nanoseconds
//	[17:33]  event id
//	then uvarint length + bytes of stream, type, data, metadata
//
// The stream name comes first so subscription filters can skip events
// without decoding the rest.
const (
	recordVersion = 1
	recordHeader  = 33
)

var errCorrupt = errors.New("corrupt event record")

func encodeRecord(stream string, rev uint64, created int64, id [16]byte, e domain.EventData) []byte {
	dataForm, data := compactData(e.Type, e.Data)
	metaForm, meta := compactMeta(e.Metadata)
	n := recordHeader + 2 + 4*binary.MaxVarintLen32 + len(stream) + len(e.Type) + len(data) + len(meta)
	b := make([]byte, recordHeader, n)
	b[0] = recordVersion2
	binary.BigEndian.PutUint64(b[1:9], rev)
	binary.BigEndian.PutUint64(b[9:17], uint64(created))
	copy(b[17:33], id[:])
	b = binary.AppendUvarint(b, uint64(len(stream)))
	b = append(b, stream...)
	b = binary.AppendUvarint(b, uint64(len(e.Type)))
	b = append(b, e.Type...)
	b = append(b, dataForm)
	b = binary.AppendUvarint(b, uint64(len(data)))
	b = append(b, data...)
	b = append(b, metaForm)
	b = binary.AppendUvarint(b, uint64(len(meta)))
	b = append(b, meta...)
	return b
}

// recordFields splits a record of either version into its stream, type,
// data and metadata, each with its form (formRaw for version 1).
func recordFields(b []byte) (stream, typ []byte, dataForm byte, data []byte, metaForm byte, meta []byte, err error) {
	if len(b) < recordHeader || (b[0] != recordVersion && b[0] != recordVersion2) {
		return nil, nil, 0, nil, 0, nil, errCorrupt
	}
	stream, off, err := field(b, recordHeader)
	if err != nil {
		return
	}
	if typ, off, err = field(b, off); err != nil {
		return
	}
	if b[0] == recordVersion {
		if data, off, err = field(b, off); err != nil {
			return
		}
		meta, _, err = field(b, off)
		return
	}
	if dataForm, data, off, err = formField(b, off); err != nil {
		return
	}
	metaForm, meta, _, err = formField(b, off)
	return
}

// field reads one length-prefixed field of b starting at off.
func field(b []byte, off int) ([]byte, int, error) {
	n, k := binary.Uvarint(b[off:])
	if k <= 0 || n > uint64(len(b)-off-k) {
		return nil, 0, errCorrupt
	}
	start := off + k
	return b[start : start+int(n)], start + int(n), nil
}

// recordStream returns the stream name of a record without decoding more.
func recordStream(b []byte) ([]byte, error) {
	if len(b) < recordHeader || (b[0] != recordVersion && b[0] != recordVersion2) {
		return nil, errCorrupt
	}
	s, _, err := field(b, recordHeader)
	return s, err
}

// decoder turns records into RecordedEvents with few allocations. It
// copies data and metadata out of bbolt's map as it decodes (the record is
// hot in the cache then) into a shared buffer sized by what the read still
// expects (left): a 3-event stream gets one small buffer, not a fixed
// chunk. One buffer holds at most sharedBuf bytes, so a retained event pins
// little. Names are interned, and finish formats the ids of a read into
// one string. Nothing handed to a caller points into the map. Decoders
// come from a pool (getDecoder/free).
type decoder struct {
	known   string            // the stream of a ReadStream: its events share the caller's string
	stream  string            // last stream name
	typ     string            // last type
	names   map[string]string // stream names of this read
	chunk   []byte            // unused tail of the current buffer
	left    int               // events the read still expects; sizes the next buffer
	pending []int             // indexes into out whose ID is still the raw 16 bytes in rawIDs
	rawIDs  []byte
	key     []byte // scratch for seek keys
	// scratch, scratch2: the JSON of a compact fact and of packed
	// metadata, before d.bytes copies it out.
	scratch, scratch2 []byte
}

// sharedBuf caps the buffer that events of one read share.
const sharedBuf = 256 << 10

var decoderPool = sync.Pool{New: func() any { return &decoder{names: make(map[string]string, 64)} }}

// getDecoder returns a pooled decoder; known is the stream every record
// belongs to, or "".
func getDecoder(known string) *decoder {
	d := decoderPool.Get().(*decoder)
	d.known = known
	return d
}

// free returns d to the pool. What it handed out stays with the events;
// the pool keeps only empty scratch.
func (d *decoder) free() {
	if len(d.names) > 4*readChunk {
		d.names = make(map[string]string, 64)
	} else {
		clear(d.names)
	}
	if cap(d.pending) > 4*readChunk {
		d.pending, d.rawIDs = nil, nil
	}
	d.pending, d.rawIDs = d.pending[:0], d.rawIDs[:0]
	d.known, d.stream, d.typ, d.chunk, d.left = "", "", "", nil, 0
	decoderPool.Put(d)
}

// expect tells d how many more events the read may decode at most.
func (d *decoder) expect(n int) { d.left = max(n, 1) }

func (d *decoder) bytes(b []byte, need int) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > len(d.chunk) {
		// need is this event's data and metadata: guess the rest are alike.
		size := min(need*max(d.left, 1), sharedBuf)
		d.chunk = make([]byte, max(size, len(b)))
	}
	out := d.chunk[:len(b):len(b)] // capped: appending to it never reaches a neighbour
	d.chunk = d.chunk[len(b):]
	copy(out, b)
	return out
}

// internStream returns b as a string shared with earlier equal names of
// this read: streams come in runs and interleave within a page.
func (d *decoder) internStream(b []byte) string {
	switch {
	case d.known != "" && d.known == string(b):
		return d.known
	case d.stream == string(b):
		return d.stream
	}
	if s, ok := d.names[string(b)]; ok {
		d.stream = s
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string, 64)
	}
	d.names[s] = s
	d.stream = s
	return s
}

// typeNames interns event types across reads: a log holds a handful of
// them. It stops growing at maxTypeNames, so odd types cannot bloat it.
var typeNames struct {
	sync.RWMutex
	m map[string]string
}

const maxTypeNames = 1024

func (d *decoder) internType(b []byte) string {
	if d.typ == string(b) {
		return d.typ
	}
	typeNames.RLock()
	s, ok := typeNames.m[string(b)]
	typeNames.RUnlock()
	if !ok {
		s = string(b)
		typeNames.Lock()
		if typeNames.m == nil {
			typeNames.m = make(map[string]string)
		}
		if len(typeNames.m) < maxTypeNames {
			typeNames.m[s] = s
		}
		typeNames.Unlock()
	}
	d.typ = s
	return s
}

// decode appends the event of record b at position pos to out. The ID is
// filled in by finish.
func (d *decoder) decode(out []domain.RecordedEvent, pos uint64, b []byte) ([]domain.RecordedEvent, error) {
	stream, typ, dataForm, data, metaForm, meta, err := recordFields(b)
	if err != nil {
		return out, fmt.Errorf("position %d: %w", pos, err)
	}
	styp := d.internType(typ)
	if dataForm == formFact {
		if d.scratch, err = codec.AppendFactJSON(d.scratch[:0], styp, data); err != nil {
			return out, fmt.Errorf("position %d: %w: %w", pos, errCorrupt, err)
		}
		data = d.scratch
	}
	if metaForm == formPacked {
		if d.scratch2, err = unpackJSON(d.scratch2[:0], meta); err != nil {
			return out, fmt.Errorf("position %d: %w", pos, err)
		}
		meta = d.scratch2
	}
	need := len(data) + len(meta)
	e := domain.RecordedEvent{
		Stream:   d.internStream(stream),
		Revision: binary.BigEndian.Uint64(b[1:9]),
		Position: domain.Position{Commit: pos, Prepare: pos},
		Type:     styp,
		Data:     d.bytes(data, need),
		Metadata: d.bytes(meta, need),
		Created:  time.Unix(0, int64(binary.BigEndian.Uint64(b[9:17]))).UTC(),
	}
	d.left--
	d.pending = append(d.pending, len(out))
	d.rawIDs = append(d.rawIDs, b[17:33]...)
	return append(out, e), nil
}

// finish formats the ids of every event decoded since the last finish into
// one string and hands out substrings of it.
func (d *decoder) finish(out []domain.RecordedEvent) {
	if len(d.pending) == 0 {
		return
	}
	var sb strings.Builder
	sb.Grow(36 * len(d.pending))
	var buf [36]byte
	for i := range d.pending {
		formatUUID(&buf, [16]byte(d.rawIDs[16*i:16*i+16]))
		sb.Write(buf[:])
	}
	all := sb.String()
	for i, idx := range d.pending {
		out[idx].ID = all[36*i : 36*i+36]
	}
	d.pending = d.pending[:0]
	d.rawIDs = d.rawIDs[:0]
}

const hexDigits = "0123456789abcdef"

func formatUUID(dst *[36]byte, id [16]byte) {
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j] = hexDigits[c>>4]
		dst[j+1] = hexDigits[c&0x0f]
		j += 2
	}
}

// parseUUID accepts only the canonical lower-case text form, so one event
// id has exactly one spelling and idempotency cannot be dodged by case.
func parseUUID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
		i += 2
	}
	return id, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// Key tags in the streams bucket. Every key of a stream starts with its
// name and 0x00, so one stream's keys are adjacent: an append to a short
// stream dirties a single leaf page there, which keeps commits small.
// There is no per-stream summary key, which would be one more write per
// append: the last revision is the highest revision key.
const (
	tagRev = 0x01 // + revision → position
	tagID  = 0x02 // + event id → revision, position
)

// lastRevision returns the last revision of the stream whose keys start
// with name (stream, 0x00), and false when it has no events. The key just
// before the stream's first id key is its highest revision key.
func lastRevision(c *bbolt.Cursor, name []byte) (uint64, bool) {
	return lastRevisionBuf(c, name, nil)
}

// lastRevisionBuf is lastRevision building its seek key in scratch.
func lastRevisionBuf(c *bbolt.Cursor, name []byte, scratch *[]byte) (uint64, bool) {
	var seek []byte
	if scratch != nil {
		seek = append(append((*scratch)[:0], name...), tagID)
		*scratch = seek
	} else {
		seek = append(name[:len(name):len(name)], tagID)
	}
	k, _ := c.Seek(seek)
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if len(k) != len(name)+9 || k[len(name)] != tagRev || !bytes.Equal(k[:len(name)], name) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(name)+1:]), true
}

// streamKey is name, 0x00, tag, suffix.
func streamKey(stream string, tag byte, suffix []byte) []byte {
	k := make([]byte, 0, len(stream)+2+len(suffix))
	k = append(k, stream...)
	k = append(k, 0, tag)
	return append(k, suffix...)
}
