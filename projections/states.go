package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/bookworm-ledger/ledger/domain"
)

// states gives the fold state of a stream just before a given revision. It
// keeps the most recent state per stream so following the log costs one
// Evolve per event; on a miss it reads the stream's head and folds it.
type states struct {
	log   domain.EventLog
	rules domain.Rules
	max   int
	cache map[string]cachedState
}

type cachedState struct {
	next  uint64 // revision the state expects next
	facts int
	state domain.State
}

func newStates(log domain.EventLog, rules domain.Rules, max int) *states {
	if max <= 0 {
		max = 50_000
	}
	return &states{log: log, rules: rules, max: max, cache: make(map[string]cachedState)}
}

// before returns the state of stream folded over revisions [0, rev).
func (c *states) before(ctx context.Context, stream string, rev uint64) (domain.State, int, error) {
	if cs, ok := c.cache[stream]; ok && cs.next == rev {
		return cs.state, cs.facts, nil
	}
	if rev == 0 {
		return domain.State{}, 0, nil
	}
	evs, err := c.log.ReadStream(ctx, stream, 0, domain.Forwards, int(rev))
	if err != nil && !errors.Is(err, domain.ErrStreamNotFound) {
		return domain.State{}, 0, fmt.Errorf("read %s before %d: %w", stream, rev, err)
	}
	var s domain.State
	n := 0
	for _, e := range evs {
		if e.Revision >= rev {
			break
		}
		ev, err := toEvent(e)
		if err != nil {
			continue // undecodable facts are reported where they are met live
		}
		s, _ = domain.Evolve(c.rules, s, ev)
		n++
	}
	return s, n, nil
}

// remember records the state after folding revision rev.
func (c *states) remember(stream string, rev uint64, facts int, s domain.State) {
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
	c.cache[stream] = cachedState{next: rev + 1, facts: facts, state: s}
}

// toEvent decodes a recorded event into the fold's input.
func toEvent(e domain.RecordedEvent) (domain.Event, error) {
	f, err := domain.DecodeFact(e.Type, e.Data)
	if err != nil {
		return domain.Event{}, fmt.Errorf("decode %s@%d (%s): %w", e.Stream, e.Revision, e.Type, err)
	}
	return domain.Event{ID: e.ID, Revision: e.Revision, Fact: f}, nil
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
	}
}
