package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// states keeps, per stream, a fold positioned after the last event seen,
// so following the log costs one Apply per event; on a miss it reads the
// stream's head and folds it.
type states struct {
	log   domain.EventLog
	rules domain.Rules
	max   int
	// meta: decode each event's envelope ids too (the lifecycle publisher
	// needs them for the outbound messages; the read model does not, and
	// skips the cost).
	meta  bool
	cache map[string]*cachedFold
}

type cachedFold struct {
	next  uint64 // revision the fold expects next
	facts int
	f     *domain.Folder
	meta  bool // decode envelope ids too (states.meta)
}

// DefaultCacheSize is how many order folds the live projections (the
// lifecycle publisher and the read model) each keep in memory. It covers
// the orders whose facts are in flight many times over (the bench's 2,000
// facts/s keep about 700 busy); a fold that fell out is rebuilt from its
// stream. 20,000 of them held half the service's heap: under the end-to-end
// load 4,096 took peak RSS from 157 to 117 MB and p99 from 140 to 114 ms,
// with the same throughput (the collector had less to mark).
const DefaultCacheSize = 4096

func newStates(log domain.EventLog, rules domain.Rules, max int, meta bool) *states {
	if max <= 0 {
		max = DefaultCacheSize
	}
	return &states{log: log, rules: rules, max: max, meta: meta, cache: make(map[string]*cachedFold)}
}

// at returns the fold of stream over revisions [0, rev). The caller applies
// the event at rev and then calls advance.
func (c *states) at(ctx context.Context, stream string, rev uint64) (*cachedFold, error) {
	if cf, ok := c.cache[stream]; ok && cf.next == rev {
		return cf, nil
	}
	cf := &cachedFold{f: domain.NewFolder(c.rules, domain.State{}), meta: c.meta}
	if rev > 0 {
		evs, err := c.log.ReadStream(ctx, stream, 0, domain.Forwards, int(rev))
		if err != nil && !errors.Is(err, domain.ErrStreamNotFound) {
			return nil, fmt.Errorf("read %s before %d: %w", stream, rev, err)
		}
		for _, e := range evs {
			if e.Revision >= rev {
				break
			}
			decode := toEvent
			if c.meta {
				decode = toEventWithMeta
			}
			ev, err := decode(e)
			if err != nil {
				continue // undecodable facts are reported where they are met live
			}
			cf.f.Apply(ev)
			cf.facts++
		}
	}
	cf.next = rev
	if len(c.cache) >= c.max {
		// Forget about half, arbitrarily: a miss only costs a stream read.
		drop := len(c.cache) / 2
		for k := range c.cache {
			if drop == 0 {
				break
			}
			delete(c.cache, k)
			drop--
		}
	}
	c.cache[stream] = cf
	return cf, nil
}

// apply folds the event at cf.next (re) into cf. A stored event that cannot
// be decoded is skipped (ok false) and reported by the caller.
func (cf *cachedFold) apply(re domain.RecordedEvent) (domain.Outcome, bool, error) {
	cf.next = re.Revision + 1
	decode := toEvent
	if cf.meta {
		decode = toEventWithMeta
	}
	ev, err := decode(re)
	if err != nil {
		return domain.Outcome{}, false, err
	}
	cf.facts++
	return cf.f.Apply(ev), true, nil
}

// forget drops a stream whose fold may be ahead of what was stored, after
// a failed batch.
func (c *states) reset() { clear(c.cache) }

// toEvent decodes a recorded event's fact into the fold's input, without
// the envelope ids (what the read model and replay need).
func toEvent(e domain.RecordedEvent) (domain.Event, error) {
	f, err := codec.DecodeFact(e.Type, e.Data)
	if err != nil {
		return domain.Event{}, fmt.Errorf("decode %s@%d (%s): %w", e.Stream, e.Revision, e.Type, err)
	}
	return domain.Event{ID: e.ID, Revision: e.Revision, Fact: f}, nil
}

// toEventWithMeta is toEvent with the envelope ids the stored metadata
// keeps, which reach the outbound messages through the fold.
func toEventWithMeta(e domain.RecordedEvent) (domain.Event, error) {
	ev, err := toEvent(e)
	if err != nil {
		return ev, err
	}
	f := ev.Fact
	// Unreadable metadata only loses the ids, never the fact.
	if meta, err := codec.DecodeMetadata(e.Metadata); err == nil {
		ev.MessageID, ev.ConversationID = meta.MessageID, meta.ConversationID
		ev.CorrelationID = meta.SentCorrelationID
		if ev.CorrelationID == "" && meta.CorrelationID != f.OrderID {
			ev.CorrelationID = meta.CorrelationID // stored before the envelope's own was kept apart
		}
	}
	return ev, nil
}

// SummaryOf builds the read-model row of a folded state.
func SummaryOf(stream string, rev uint64, facts int, s domain.State) Summary {
	id, _ := domain.OrderIDFromStream(stream)
	if s.OrderID != "" {
		id = s.OrderID
	}
	return Summary{
		OrderID:           id,
		Stream:            stream,
		Revision:          rev,
		Status:            s.Status,
		PreviousStatus:    s.PreviousStatus,
		StatusReason:      s.StatusReason,
		Total:             s.Total,
		Money:             s.Money,
		PlacementAttempts: s.PlacementAttempts,
		PlacementDeadline: s.PlacementDeadline,
		Held:              len(s.Held),
		Ignored:           len(s.Ignored),
		Flags:             len(s.Flags),
		Facts:             facts,
		LastAt:            s.LastAt,
		CreatedAt:         s.CreatedAt,
		Days:              s.Days,
		Books:             s.Books,
	}
}

// EventOf is the fold's input for a recorded event: the fact and the
// envelope ids its stored metadata keeps (what the lifecycle publisher
// folds, for tests and tools outside this package).
func EventOf(e domain.RecordedEvent) (domain.Event, error) { return toEventWithMeta(e) }
