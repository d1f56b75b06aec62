package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/projections"
)

var _ projections.FactLog = (*Log)(nil)

// ReadAllFacts reads up to max events of streams starting with prefix
// after position after, their facts decoded straight from the stored form
// (no JSON for a compact fact, no copy of the data); see
// [projections.FactLog].
func (l *Log) ReadAllFacts(ctx context.Context, after *domain.Position, max int, prefix string, out []projections.DecodedEvent) ([]projections.DecodedEvent, domain.Position, error) {
	var from uint64
	if after != nil {
		from = after.Commit
	}
	last := domain.Position{Commit: from, Prepare: from}
	if err := ctx.Err(); err != nil {
		return out, last, fmt.Errorf("read facts: %w", err)
	}
	if max <= 0 || max > readChunk {
		max = readChunk
	}
	d := getDecoder("")
	defer d.free()
	start := len(out)
	var ids, names strings.Builder
	ids.Grow(36 * max)
	names.Grow(48 * max)
	streamEnd := make([]int, 0, max)
	err := l.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAll).Cursor()
		var mapped mapEstimate
		seek := binary.BigEndian.AppendUint64(nil, from+1)
		looked := 0
		for k, v := c.Seek(seek); k != nil && len(out)-start < max && looked < 16*max; k, v = c.Next() {
			looked++
			mapped.touch(v)
			pos := binary.BigEndian.Uint64(k)
			last = domain.Position{Commit: pos, Prepare: pos}
			stream, typ, form, data, _, _, err := recordFields(v)
			if err != nil {
				return fmt.Errorf("position %d: %w", pos, err)
			}
			if !keep(stream, prefix) {
				continue
			}
			// The page's stream names share one string: cheaper than a
			// map lookup per event, and no allocation per event either.
			streamEnd = append(streamEnd, names.Len()+len(stream))
			names.Write(stream)
			styp := d.internType(typ)
			var f domain.Fact
			if form == formFact {
				f, err = codec.DecodeCompactFact(styp, data)
			} else {
				f, err = codec.DecodeFact(styp, data)
			}
			var buf [36]byte
			formatUUID(&buf, [16]byte(v[17:33]))
			ids.Write(buf[:])
			out = append(out, projections.DecodedEvent{
				Type: styp, Position: last,
				Event: domain.Event{Revision: binary.BigEndian.Uint64(v[1:9]), Fact: f}, Err: err,
			})
		}
		l.scanned(tx, mapped.bytes)
		return nil
	})
	if err != nil {
		return out, last, fmt.Errorf("read facts: %w", err)
	}
	all, streams, prev := ids.String(), names.String(), 0
	for i, end := range streamEnd {
		out[start+i].Event.ID = all[36*i : 36*i+36]
		out[start+i].Stream, prev = streams[prev:end], end
	}
	return out, last, nil
}
