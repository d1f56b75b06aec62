package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	OK       bool  `json:"ok"`       // every seal checked out: the sealed history is intact
	Seals    int   `json:"seals"`    // seals checked and intact
	Sealed   int64 `json:"sealed"`   // events those seals cover
	Unsealed int64 `json:"unsealed"` // order events after the last seal (0 when a difference was found)
	// Through, Hash and SealedAt are the last intact seal's: keep the hash
	// elsewhere, as a rewrite of the whole chain would change it.
	Through    *domain.Position `json:"through,omitempty"`
	Hash       string           `json:"hash,omitempty"`
	SealedAt   time.Time        `json:"sealedAt,omitzero"`
	Difference *Difference      `json:"difference,omitempty"` // the first one, in log order
}

// DiffKind says how the history differs from its seals.
type DiffKind string

// Kinds of difference.
const (
	DiffAltered     DiffKind = "altered"     // a sealed event's content changed
	DiffMissing     DiffKind = "missing"     // a sealed event is gone
	DiffExtra       DiffKind = "extra"       // an event no seal covers sits among sealed ones
	DiffChainBroken DiffKind = "chainBroken" // a seal does not follow the one before it
	DiffSealAltered DiffKind = "sealAltered" // a seal is malformed, or its hash is not its events'
)

// Difference is the first place where the log and its seals disagree.
type Difference struct {
	What DiffKind `json:"what"`
	Seal uint64   `json:"seal"` // the seal's seq
	// SealRevision is the seal's revision in domain.SealStream.
	SealRevision uint64 `json:"sealRevision"`
	// Index is the event's place among the seal's events (0-based); -1
	// for a difference of the seal itself.
	Index int `json:"index"`
	// Position is the event that differs; for a missing event, the first
	// event after the gap (nil: the seal's range ends there).
	Position *domain.Position `json:"position,omitempty"`
	// After is, for a missing event, the last intact event before it.
	After    *domain.Position `json:"after,omitempty"`
	Stream   string           `json:"stream,omitempty"`
	Revision *uint64          `json:"revision,omitempty"`
	EventID  string           `json:"eventId,omitempty"`
	Detail   string           `json:"detail"`
}

// String says where the history differs, naming the position.
func (d Difference) String() string {
	event := ""
	if d.Stream != "" {
		event = fmt.Sprintf(" (%s@%d, event %s)", d.Stream, *d.Revision, d.EventID)
	}
	switch d.What {
	case DiffAltered, DiffExtra:
		return fmt.Sprintf("%s at position %s%s: %s", d.What, posText(d.Position), event, d.Detail)
	case DiffMissing:
		at := "at the end of its range"
		if d.Position != nil {
			at = "before position " + d.Position.String()
		}
		return fmt.Sprintf("missing: event %d of seal %d, after position %s, %s: %s", d.Index, d.Seal, posText(d.After), at, d.Detail)
	}
	return fmt.Sprintf("%s: seal %d (%s@%d): %s", d.What, d.Seal, domain.SealStream, d.SealRevision, d.Detail)
}

// Verify recomputes every seal of log over the order events and reports
// the first difference, if any. Its error is about reading the log only;
// a tampered history is a report with OK false.
func Verify(ctx context.Context, log domain.EventLog) (VerifyReport, error) {
	var rep VerifyReport
	v := verifier{cur: &logCursor{log: log}}
	err := eachSeal(ctx, log, func(re domain.RecordedEvent) (bool, error) {
		seal, diff := v.link(re)
		if diff == nil {
			var err error
			if diff, err = v.checkRange(ctx, re.Revision, seal); err != nil {
				return false, err
			}
		}
		if diff != nil {
			rep.Difference = diff
			return false, nil
		}
		through := seal.Through
		rep.Seals++
		rep.Sealed += int64(seal.Count)
		rep.Through, rep.Hash, rep.SealedAt = &through, seal.Hash, seal.SealedAt
		return true, nil
	})
	if err != nil {
		return rep, err
	}
	if rep.Difference == nil {
		if rep.Unsealed, err = v.cur.rest(ctx); err != nil {
			return rep, err
		}
	}
	rep.OK = rep.Difference == nil
	return rep, nil
}

// eachSeal calls fn with each event of the seal stream in order until fn
// returns false.
func eachSeal(ctx context.Context, log domain.EventLog, fn func(domain.RecordedEvent) (bool, error)) error {
	const page = 16 // a seal holds up to ~270 KB of digests
	for from := uint64(0); ; {
		evs, err := log.ReadStream(ctx, domain.SealStream, from, domain.Forwards, page)
		if errors.Is(err, domain.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("verify: read %s from %d: %w", domain.SealStream, from, err)
		}
		for _, re := range evs {
			if more, err := fn(re); err != nil || !more {
				return err
			}
			from = re.Revision + 1
		}
		if len(evs) < page {
			return nil
		}
	}
}

// verifier walks the seals and the order events together.
type verifier struct {
	cur     *logCursor
	seq     uint64
	prev    string           // the last seal's hash ("": none yet)
	through *domain.Position // the last seal's end
}

// link decodes a seal and checks that it follows the last one.
func (v *verifier) link(re domain.RecordedEvent) (domain.Seal, *Difference) {
	diff := func(what DiffKind, format string, a ...any) *Difference {
		return &Difference{What: what, Seal: v.seq + 1, SealRevision: re.Revision, Index: -1, Detail: fmt.Sprintf(format, a...)}
	}
	seal, err := decodeSeal(re)
	if err != nil {
		return seal, diff(DiffSealAltered, "%v", err)
	}
	prev := v.prev
	if prev == "" {
		prev = domain.ChainHash{}.String()
	}
	switch {
	case seal.Seq != v.seq+1:
		return seal, diff(DiffChainBroken, "seq %d, want %d (a seal is missing or out of place)", seal.Seq, v.seq+1)
	case seal.Prev != prev:
		return seal, diff(DiffChainBroken, "prev %s is not the last seal's hash %s", seal.Prev, prev)
	case !samePos(seal.After, v.through):
		return seal, diff(DiffChainBroken, "it starts after %s, the last seal ends at %s", posText(seal.After), posText(v.through))
	}
	return seal, nil
}

// checkRange recomputes a seal over its events, consuming them.
func (v *verifier) checkRange(ctx context.Context, rev uint64, seal domain.Seal) (*Difference, error) {
	prev, _ := domain.ParseChainHash(seal.Prev) // checked by Validate
	chain := domain.NewChain(prev)
	var after *domain.Position
	for i := 0; i < seal.Count; i++ {
		e, ok, err := v.cur.peek(ctx, 0)
		if err != nil {
			return nil, err
		}
		if !ok || seal.Through.Less(e.Position) {
			return missingAt(seal, rev, i, after, nil, fmt.Sprintf("%d of its %d events are not in the log", seal.Count-i, seal.Count)), nil
		}
		d, sum := chain.EventDigest(e)
		if d != seal.Digest(i) {
			return v.classify(ctx, seal, rev, i, after, e, d)
		}
		chain.AddHash(sum)
		after = &e.Position
		v.cur.next()
	}
	e, ok, err := v.cur.peek(ctx, 0)
	if err != nil {
		return nil, err
	}
	if ok && !seal.Through.Less(e.Position) {
		return eventDiff(DiffExtra, seal, rev, seal.Count, e, fmt.Sprintf("seal %d covers %d events up to position %s; this one is more", seal.Seq, seal.Count, seal.Through)), nil
	}
	if got := chain.Sum().String(); got != seal.Hash {
		return &Difference{What: DiffSealAltered, Seal: seal.Seq, SealRevision: rev, Index: -1,
			Detail: fmt.Sprintf("its events match their digests but chain to %s, not to its hash %s", got, seal.Hash)}, nil
	}
	v.seq, v.prev, v.through = seal.Seq, seal.Hash, &seal.Through
	return nil, nil
}

// classify names the difference at the seal's i-th event, where the log
// has e (digest d): the sealed event is missing when e is the next one
// sealed, e is extra when the event after it is the one sealed here, and
// otherwise e was altered.
func (v *verifier) classify(ctx context.Context, seal domain.Seal, rev uint64, i int, after *domain.Position, e domain.RecordedEvent, d domain.Digest) (*Difference, error) {
	nextSealed := i+1 < seal.Count && d == seal.Digest(i+1)
	e2, ok, err := v.cur.peek(ctx, 1)
	if err != nil {
		return nil, err
	}
	var thisFollows bool
	if ok {
		d2, _ := domain.NewChain(domain.ChainHash{}).EventDigest(e2)
		thisFollows = d2 == seal.Digest(i)
	}
	switch {
	case nextSealed && thisFollows:
		return eventDiff(DiffAltered, seal, rev, i, e, fmt.Sprintf("out of order: seal %d has it after the event at position %s", seal.Seq, e2.Position)), nil
	case nextSealed:
		return missingAt(seal, rev, i, after, &e.Position, fmt.Sprintf("the event at position %s is the one seal %d has next", e.Position, seal.Seq)), nil
	case thisFollows:
		return eventDiff(DiffExtra, seal, rev, i, e, fmt.Sprintf("not sealed: seal %d has the event after it (position %s) here", seal.Seq, e2.Position)), nil
	}
	return eventDiff(DiffAltered, seal, rev, i, e, fmt.Sprintf("seal %d has digest %x for its event %d, this event's is %x", seal.Seq, seal.Digests[i*domain.DigestSize:(i+1)*domain.DigestSize], i, d[:])), nil
}

func eventDiff(what DiffKind, seal domain.Seal, rev uint64, i int, e domain.RecordedEvent, detail string) *Difference {
	pos, r := e.Position, e.Revision
	return &Difference{What: what, Seal: seal.Seq, SealRevision: rev, Index: i, Position: &pos, Stream: e.Stream,
		Revision: &r, EventID: e.ID, Detail: detail}
}

func missingAt(seal domain.Seal, rev uint64, i int, after, at *domain.Position, detail string) *Difference {
	if after == nil {
		after = seal.After
	}
	return &Difference{What: DiffMissing, Seal: seal.Seq, SealRevision: rev, Index: i, Position: at, After: after, Detail: detail}
}

func samePos(a, b *domain.Position) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// logCursor reads the order events of the log in order, with a look
// ahead of a few events.
type logCursor struct {
	log   domain.EventLog
	after *domain.Position // the last event read from the log
	buf   []domain.RecordedEvent
	done  bool
}

// peek returns the i-th order event not consumed yet; false past the end.
func (c *logCursor) peek(ctx context.Context, i int) (domain.RecordedEvent, bool, error) {
	for len(c.buf) <= i && !c.done {
		page, err := c.log.ReadAll(ctx, c.after, sealPage)
		if err != nil {
			return domain.RecordedEvent{}, false, fmt.Errorf("verify: read the log after %s: %w", posText(c.after), err)
		}
		if len(page) < sealPage {
			c.done = true
		}
		if len(page) > 0 {
			c.after = &page[len(page)-1].Position
		}
		for _, e := range page {
			if domain.SealedStream(e.Stream) {
				c.buf = append(c.buf, e)
			}
		}
	}
	if len(c.buf) <= i {
		return domain.RecordedEvent{}, false, nil
	}
	return c.buf[i], true, nil
}

// next consumes the event peek(0) returned.
func (c *logCursor) next() {
	c.buf[0] = domain.RecordedEvent{}
	c.buf = c.buf[1:]
}

// rest consumes and counts the order events left.
func (c *logCursor) rest(ctx context.Context) (int64, error) {
	var n int64
	for {
		if _, ok, err := c.peek(ctx, 0); err != nil || !ok {
			return n, err
		}
		n += int64(len(c.buf))
		c.buf = c.buf[:0]
	}
}
