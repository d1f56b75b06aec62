package projections

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Tamper evidence (domain/seal.go): the Sealer appends seals over the
// order events to domain.SealStream; Verify recomputes them.

// Defaults and bounds of the Sealer's settings.
const (
	DefaultSealEvery    = time.Minute
	DefaultSealMaxFacts = 50000
	// MaxSealFacts keeps a seal's digests (DigestSize bytes each, base64)
	// well under EventStoreDB's default 1 MiB append limit.
	MaxSealFacts = 150000
)

// sealPage is how many events one read of the log asks for.
const sealPage = 1000

// Sealer seals the log: each Seal covers the order events after the last
// seal up to the log's head, in seals of at most MaxFacts events. Every
// append expects the seal stream's revision as last read, so instances
// sealing one shared store at once never fork the chain: the one that
// loses re-reads and goes on after the winner's seal. It keeps no state;
// safe for concurrent use.
type Sealer struct {
	Log      domain.EventLog
	Clock    func() time.Time // when a seal is made (nil: time.Now)
	Every    time.Duration    // how often Run seals; 0: Run does nothing
	MaxFacts int              // events per seal; 0: DefaultSealMaxFacts
	// Observe, when set, hears the outcome of each of Run's rounds:
	// the caller logs failures (Run retries at the next tick).
	Observe func(SealResult, error)
}

// SealResult is what one Seal did.
type SealResult struct {
	Facts int // events sealed
	Seals int // seals appended
	// Last is the chain's last seal after the call, without its digests
	// (nil: nothing sealed yet).
	Last *domain.Seal
}

// Validate checks the settings; problems are named by their keys.
func (s Sealer) Validate() error {
	var errs []error
	if s.Every < 0 {
		errs = append(errs, fmt.Errorf("every %s: must not be negative (0 turns sealing off)", s.Every))
	}
	if s.MaxFacts < 0 || s.MaxFacts > MaxSealFacts {
		errs = append(errs, fmt.Errorf("max_facts %d: must be within 1..%d (a seal must fit one EventStoreDB append)", s.MaxFacts, MaxSealFacts))
	}
	return errors.Join(errs...)
}

// Seal seals every order event after the last seal, up to the log's head
// as it is when Seal starts, and returns how many it sealed.
func (s Sealer) Seal(ctx context.Context) (int, error) {
	res, _, err := s.seal(ctx, nil)
	return res.Facts, err
}

// Run seals at once and then every Every, until ctx is done. A failed
// round is reported to Observe and tried again at the next tick.
func (s Sealer) Run(ctx context.Context) error {
	if s.Every <= 0 {
		return nil
	}
	t := time.NewTicker(s.Every)
	defer t.Stop()
	var idle *domain.Position
	for {
		res, scanned, err := s.seal(ctx, idle)
		idle = scanned
		if ctx.Err() != nil {
			return nil
		}
		if s.Observe != nil {
			s.Observe(res, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// seal seals up to the head. idle, when not nil, is a position up to
// which an earlier round found no order event after the last seal: the
// log between holds other streams' events only (an election's checkpoints
// keep coming while no order does), so it is not read again. It returns
// the position to pass as idle next time.
func (s Sealer) seal(ctx context.Context, idle *domain.Position) (SealResult, *domain.Position, error) {
	var res SealResult
	head, ok, err := s.Log.Head(ctx)
	if err != nil {
		return res, idle, fmt.Errorf("seal: read the head: %w", err)
	}
	conflicts := 0
	for {
		last, expected, err := lastSeal(ctx, s.Log)
		if err != nil {
			return res, idle, err
		}
		res.Last = withoutDigests(last)
		if last != nil && idle != nil && !last.Through.Less(*idle) {
			idle = nil // sealed past it: the seal is where to go on from
		}
		done := idle
		if done == nil && last != nil {
			done = &last.Through
		}
		if !ok || (done != nil && !done.Less(head)) {
			return res, idle, nil
		}
		next, scanned, err := s.next(ctx, last, idle, head)
		if err != nil {
			return res, idle, err
		}
		if next == nil {
			return res, scanned, nil
		}
		ar, err := s.append(ctx, next, expected)
		if errors.Is(err, domain.ErrWrongExpectedVersion) && conflicts < conflictAttempts {
			conflicts++ // another instance sealed first: go on after its seal
			continue
		}
		if err != nil {
			return res, idle, fmt.Errorf("seal %d (%s..%s): %w", next.Seq, posText(next.After), next.Through, err)
		}
		conflicts, idle = 0, nil
		if !ar.Duplicate {
			res.Facts += next.Count
			res.Seals++
		}
	}
}

func (s Sealer) append(ctx context.Context, seal *domain.Seal, expected domain.ExpectedRevision) (domain.AppendResult, error) {
	data, err := json.Marshal(seal)
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("encode: %w", err)
	}
	ev := domain.EventData{ID: domain.SealEventID(seal.Seq, seal.Hash, rand.Text()), Type: domain.EventLogSealed, Data: data}
	return s.Log.Append(ctx, domain.SealStream, expected, ev)
}

// next makes the seal after last over the order events up to head, at
// most MaxFacts of them, reading from idle when it is past last (see
// seal); nil when there are none, with the position read up to.
func (s Sealer) next(ctx context.Context, last *domain.Seal, idle *domain.Position, head domain.Position) (*domain.Seal, *domain.Position, error) {
	limit := s.MaxFacts
	if limit <= 0 {
		limit = DefaultSealMaxFacts
	}
	seal := &domain.Seal{Seq: 1, Prev: domain.ChainHash{}.String()}
	var prev domain.ChainHash
	if last != nil {
		var err error
		if prev, err = domain.ParseChainHash(last.Hash); err != nil {
			return nil, nil, fmt.Errorf("seal %d: %w", last.Seq, err)
		}
		after := last.Through
		seal.Seq, seal.After, seal.Prev = last.Seq+1, &after, last.Hash
	}
	chain := domain.NewChain(prev)
	cursor := seal.After
	if idle != nil && (cursor == nil || cursor.Less(*idle)) {
		cursor = idle // no order event between: the seal's range still starts at After
	}
	for seal.Count < limit {
		page, err := s.Log.ReadAll(ctx, cursor, sealPage)
		if err != nil {
			return nil, nil, fmt.Errorf("seal %d: read the log after %s: %w", seal.Seq, posText(cursor), err)
		}
		for i := range page {
			e := &page[i]
			if head.Less(e.Position) || seal.Count == limit {
				break
			}
			cursor = &e.Position
			if !domain.SealedStream(e.Stream) {
				continue
			}
			d := chain.Add(*e)
			seal.Digests = append(seal.Digests, d[:]...)
			seal.Count++
			seal.Through = e.Position
		}
		if len(page) < sealPage || head.Less(page[len(page)-1].Position) {
			break
		}
	}
	if seal.Count == 0 {
		return nil, cursor, nil
	}
	seal.Hash = chain.Sum().String()
	seal.SealedAt = s.now()
	return seal, nil, nil
}

func (s Sealer) now() time.Time {
	if s.Clock != nil {
		return s.Clock().UTC()
	}
	return time.Now().UTC()
}

// lastSeal reads the seal stream's last seal (nil: none) and the expected
// revision of an append after it.
func lastSeal(ctx context.Context, log domain.EventLog) (*domain.Seal, domain.ExpectedRevision, error) {
	evs, err := log.ReadStream(ctx, domain.SealStream, domain.EndOfStream, domain.Backwards, 1)
	if errors.Is(err, domain.ErrStreamNotFound) || (err == nil && len(evs) == 0) {
		return nil, domain.NoStream, nil
	}
	if err != nil {
		return nil, domain.Any, fmt.Errorf("seal: read %s: %w", domain.SealStream, err)
	}
	seal, err := decodeSeal(evs[0])
	if err != nil {
		return nil, domain.Any, fmt.Errorf("seal: the last seal is unusable (run ledger verify): %w", err)
	}
	return &seal, domain.Exact(evs[0].Revision), nil
}

// decodeSeal reads and checks the seal an event of the seal stream holds.
func decodeSeal(re domain.RecordedEvent) (domain.Seal, error) {
	var seal domain.Seal
	if re.Type != domain.EventLogSealed {
		return seal, fmt.Errorf("%s@%d: event type %q, not %s", re.Stream, re.Revision, re.Type, domain.EventLogSealed)
	}
	if err := json.Unmarshal(re.Data, &seal); err != nil {
		return seal, fmt.Errorf("%s@%d: %w", re.Stream, re.Revision, err)
	}
	if err := seal.Validate(); err != nil {
		return seal, fmt.Errorf("%s@%d: %w", re.Stream, re.Revision, err)
	}
	return seal, nil
}

func withoutDigests(s *domain.Seal) *domain.Seal {
	if s == nil {
		return nil
	}
	c := *s
	c.Digests = nil
	return &c
}

// posText prints a position, "start" for nil (before the first event).
func posText(p *domain.Position) string {
	if p == nil {
		return "start"
	}
	return p.String()
}
