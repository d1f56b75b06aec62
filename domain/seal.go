package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// Tamper evidence: seals are events of stream SealStream, each covering
// the order events (streams starting with StreamPrefix) after the last
// seal's range, in log order. A seal carries a hash chained over every
// event it covers and, before it, every earlier seal's events, plus a
// short digest per event, so a verifier can say which event differs, not
// only that one does.
//
// The chain: h = sha256(prev || sha256(enc(e))) for each event e, from
// the zero hash. Hashing the event first gives its digest (the first
// DigestSize bytes of sha256(enc(e))) and the chain's step in one pass
// over its bytes. enc(e) is length-prefixed, so two different events never
// encode alike:
//
//	uvarint len + stream | revision, 8 bytes big-endian | uvarint len + id |
//	uvarint len + type | uvarint len + data | uvarint len + metadata |
//	created, Unix nanoseconds, 8 bytes big-endian (0 when unknown)
//
// The position is left out: it is where the store put the event, not
// what the event is.

// SealStream is the stream of the seals, outside StreamPrefix so no
// projection folds it.
const SealStream = "ledger-seals"

// EventLogSealed is the event type of a seal.
const EventLogSealed = "LogSealed"

// DigestSize is the length of an event's short digest in a seal.
const DigestSize = 4

// ErrInvalidSeal is matched by Seal.Validate's errors.
var ErrInvalidSeal = errors.New("invalid seal")

// ChainHash is a link of the chain; the zero value starts it.
type ChainHash [sha256.Size]byte

// String is the hash in lower-case hex, as seals carry it.
func (h ChainHash) String() string { return hex.EncodeToString(h[:]) }

// ParseChainHash reads a hash in hex; errors match ErrInvalidSeal.
func ParseChainHash(s string) (ChainHash, error) {
	h, err := parseHash(s)
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrInvalidSeal, err)
	}
	return h, nil
}

func parseHash(s string) (ChainHash, error) {
	var h ChainHash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("hash %q: want %d hex digits", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// Digest is an event's short digest.
type Digest [DigestSize]byte

// Chain computes the chain over events, one at a time. Not safe for
// concurrent use.
type Chain struct {
	cur  ChainHash
	h    hash.Hash
	buf  []byte
	link [2 * sha256.Size]byte
}

// NewChain starts a chain at prev (the zero hash for the first seal).
func NewChain(prev ChainHash) *Chain { return &Chain{cur: prev, h: sha256.New()} }

// Sum is the chain's hash after the events added so far.
func (c *Chain) Sum() ChainHash { return c.cur }

// EventDigest is e's short digest and full hash, without adding it.
func (c *Chain) EventDigest(e RecordedEvent) (Digest, [sha256.Size]byte) {
	c.buf = AppendSealEncoding(c.buf[:0], e)
	c.h.Reset()
	c.h.Write(c.buf)
	var sum [sha256.Size]byte
	c.h.Sum(sum[:0])
	return Digest(sum[:DigestSize]), sum
}

// Add chains e and returns its digest.
func (c *Chain) Add(e RecordedEvent) Digest {
	d, sum := c.EventDigest(e)
	c.AddHash(sum)
	return d
}

// AddHash chains an event by the full hash EventDigest gave.
func (c *Chain) AddHash(sum [sha256.Size]byte) {
	copy(c.link[:sha256.Size], c.cur[:])
	copy(c.link[sha256.Size:], sum[:])
	c.cur = sha256.Sum256(c.link[:])
}

// AppendSealEncoding appends enc(e), the bytes the chain hashes.
func AppendSealEncoding(b []byte, e RecordedEvent) []byte {
	b = appendField(b, e.Stream)
	b = binary.BigEndian.AppendUint64(b, e.Revision)
	b = appendField(b, e.ID)
	b = appendField(b, e.Type)
	b = appendField(b, string(e.Data))
	b = appendField(b, string(e.Metadata))
	var created int64
	if !e.Created.IsZero() {
		created = e.Created.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(created))
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// SealedStream reports whether seals cover a stream's events: the order
// streams.
func SealedStream(stream string) bool { return strings.HasPrefix(stream, StreamPrefix) }

// Seal is the data of a LogSealed event: the order events after After
// (nil: from the log's start) up to and including Through, Count of them.
type Seal struct {
	Seq     uint64    `json:"seq"` // 1 for the first seal, then one more each
	After   *Position `json:"after"`
	Through Position  `json:"through"`
	Count   int       `json:"count"`
	Hash    string    `json:"hash"` // the chain after the last event covered, hex
	Prev    string    `json:"prev"` // the previous seal's Hash (zero hash for the first)
	// Digests holds DigestSize bytes per event covered, in log order
	// (base64 in JSON).
	Digests  []byte    `json:"digests"`
	SealedAt time.Time `json:"sealedAt"`
}

// Digest returns the i-th event's digest.
func (s Seal) Digest(i int) Digest { return Digest(s.Digests[i*DigestSize : (i+1)*DigestSize]) }

// Validate checks that s is well formed; it does not check the chain.
func (s Seal) Validate() error {
	var errs []error
	if s.Seq == 0 {
		errs = append(errs, errors.New("seq: must be at least 1"))
	}
	if s.Count < 1 {
		errs = append(errs, fmt.Errorf("count %d: must be at least 1", s.Count))
	}
	if len(s.Digests) != s.Count*DigestSize {
		errs = append(errs, fmt.Errorf("digests: %d bytes for %d events, want %d", len(s.Digests), s.Count, s.Count*DigestSize))
	}
	if s.After != nil && !s.After.Less(s.Through) {
		errs = append(errs, fmt.Errorf("through %s: must be after %s", s.Through, *s.After))
	}
	for _, h := range []struct{ name, v string }{{"hash", s.Hash}, {"prev", s.Prev}} {
		if _, err := parseHash(h.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %d: %w", ErrInvalidSeal, s.Seq, errors.Join(errs...))
	}
	return nil
}

// SealEventID is the event id of a seal made in term (random per
// attempt): a retry of the append is a duplicate, while two instances
// that made the same seal write different ids, so the one that comes
// second fails on the expected revision rather than passing for a
// retry of the other's write.
func SealEventID(seq uint64, hash, term string) string {
	return NameUUID("seal", strconv.FormatUint(seq, 10), hash, term)
}
