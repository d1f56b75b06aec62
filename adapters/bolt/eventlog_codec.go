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
	n := recordHeader + 4*binary.MaxVarintLen32 + len(stream) + len(e.Type) + len(e.Data) + len(e.Metadata)
	b := make([]byte, recordHeader, n)
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:9], rev)
	binary.BigEndian.PutUint64(b[9:17], uint64(created))
	copy(b[17:33], id[:])
	b = binary.AppendUvarint(b, uint64(len(stream)))
	b = append(b, stream...)
	b = binary.AppendUvarint(b, uint64(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.AppendUvarint(b, uint64(len(e.Data)))
	b = append(b, e.Data...)
	b = binary.AppendUvarint(b, uint64(len(e.Metadata)))
	b = append(b, e.Metadata...)
	return b
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
	if len(b) < recordHeader || b[0] != recordVersion {
		return nil, errCorrupt
	}
	s, _, err := field(b, recordHeader)
	return s, err
}

// decoder turns records into RecordedEvents with few allocations. It works
// in two steps inside one read transaction: decode leaves Data and
// Metadata pointing into bbolt's map and notes the record; detach copies
// them out into buffers sized to exactly what the read holds (a 3-event
// stream costs one small buffer, not a fixed chunk), formats the ids into
// one string per buffer and interns names. Nothing handed to a caller
// points into the map, and one retained event pins at most one buffer of
// up to sharedBuf bytes. Decoders come from a pool (getDecoder/free).
type decoder struct {
	known  string            // the stream of a ReadStream: its events share the caller's string
	stream string            // last stream name
	typ    string            // last type
	names  map[string]string // stream names of this read
	recs   [][]byte          // records decoded since the last detach
	key    []byte            // scratch for seek keys
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

// free returns d to the pool. The strings it interned stay with the
// events that use them; the pool keeps only empty scratch.
func (d *decoder) free() {
	clear(d.recs)
	d.recs = d.recs[:0]
	if cap(d.recs) > 4*readChunk {
		d.recs = nil
	}
	if len(d.names) > 4*readChunk {
		d.names = make(map[string]string, 64)
	} else {
		clear(d.names)
	}
	d.known, d.stream, d.typ = "", "", ""
	decoderPool.Put(d)
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

// decode appends the event of record b at position pos to out. Its Data,
// Metadata and ID are only valid after detach, which must run before the
// transaction that b belongs to ends.
func (d *decoder) decode(out []domain.RecordedEvent, pos uint64, b []byte) ([]domain.RecordedEvent, error) {
	if len(b) < recordHeader || b[0] != recordVersion {
		return out, fmt.Errorf("position %d: %w", pos, errCorrupt)
	}
	stream, off, err := field(b, recordHeader)
	if err != nil {
		return out, fmt.Errorf("position %d: %w", pos, err)
	}
	typ, off, err := field(b, off)
	if err != nil {
		return out, fmt.Errorf("position %d: %w", pos, err)
	}
	data, off, err := field(b, off)
	if err != nil {
		return out, fmt.Errorf("position %d: %w", pos, err)
	}
	meta, _, err := field(b, off)
	if err != nil {
		return out, fmt.Errorf("position %d: %w", pos, err)
	}
	d.recs = append(d.recs, b)
	return append(out, domain.RecordedEvent{
		Stream:   d.internStream(stream),
		Revision: binary.BigEndian.Uint64(b[1:9]),
		Position: domain.Position{Commit: pos, Prepare: pos},
		Type:     d.internType(typ),
		Data:     data,
		Metadata: meta,
		Created:  time.Unix(0, int64(binary.BigEndian.Uint64(b[9:17]))).UTC(),
	}), nil
}

// detach finishes the events decoded since the last detach (the tail of
// out): it copies their bytes out of the map and sets their ids.
func (d *decoder) detach(out []domain.RecordedEvent) {
	evs := out[len(out)-len(d.recs):]
	for i := 0; i < len(evs); {
		size, j := 0, i
		for ; j < len(evs); j++ {
			n := len(evs[j].Data) + len(evs[j].Metadata)
			if j > i && (size+n > sharedBuf || j-i >= sharedBuf/64) {
				break
			}
			size += n
		}
		var buf []byte
		if size > 0 {
			buf = make([]byte, size)
		}
		var ids strings.Builder
		ids.Grow(36 * (j - i))
		var txt [36]byte
		for k := i; k < j; k++ {
			e := &evs[k]
			e.Data, buf = carve(buf, e.Data)
			e.Metadata, buf = carve(buf, e.Metadata)
			formatUUID(&txt, [16]byte(d.recs[k][17:33]))
			ids.Write(txt[:])
		}
		all := ids.String()
		for k := i; k < j; k++ {
			evs[k].ID = all[36*(k-i) : 36*(k-i)+36]
		}
		i = j
	}
	clear(d.recs)
	d.recs = d.recs[:0]
}

// undo drops the events decoded since the last detach, which still point
// into the map: for a read that fails half way.
func (d *decoder) undo(out []domain.RecordedEvent) []domain.RecordedEvent {
	n := len(out) - len(d.recs)
	clear(out[n:])
	clear(d.recs)
	d.recs = d.recs[:0]
	return out[:n]
}

// carve copies b to the front of buf and returns the copy, capped so that
// appending to it never reaches a neighbour, and the rest of buf.
func carve(buf, b []byte) ([]byte, []byte) {
	if len(b) == 0 {
		return nil, buf
	}
	n := copy(buf, b)
	return buf[:n:n], buf[n:]
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
