package domain_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

const (
	orderA  = "0198c0de-5a1e-7c3b-9f4e-2d6a8b1c3e5f"
	basketA = "0198c0dd-1f2e-7a4b-8c6d-0e1f2a3b4c5d"
)

var t0 = time.Date(2025, 8, 1, 10, 0, 0, 123000000, time.UTC)

func ptr(s string) *string { return &s }

// history builds events for one order with ids and revisions assigned in order.
type history struct {
	order, basket string
	events        []domain.Event
	at            time.Time
	name, email   *string
	total         int64
}

func newHistory(order string) *history {
	return &history{order: order, basket: basketA, at: t0, name: ptr("John Doe"), email: ptr("john.doe@example.com"), total: 9999}
}

func (h *history) add(f domain.Fact) domain.Event {
	f.OrderID = h.order
	if f.At.IsZero() {
		h.at = h.at.Add(time.Minute)
		f.At = h.at
	}
	e := domain.Event{ID: domain.FactEventID(fmt.Sprintf("%s/%d", h.order, len(h.events))), Revision: uint64(len(h.events)), Fact: f}
	h.events = append(h.events, e)
	return e
}

func (h *history) bw(t domain.FactType) domain.Fact {
	f := domain.Fact{Type: t, BasketID: h.basket, Amount: h.total, HasAmount: true}
	switch t {
	case domain.FactUserCheckedOut, domain.FactOrderCompleted, domain.FactOrderCancelled:
		f.FullName, f.Email = h.name, h.email
	case domain.FactBasketDeletedFailed:
		f.Email = h.email
	}
	return f
}

func (h *history) checkout() domain.Event { return h.add(h.bw(domain.FactUserCheckedOut)) }
func (h *history) charge() domain.Event   { return h.add(h.bw(domain.FactBasketDeletedComplete)) }
func (h *history) basketFailed() domain.Event {
	return h.add(h.bw(domain.FactBasketDeletedFailed))
}
func (h *history) complete() domain.Event { return h.add(h.bw(domain.FactOrderCompleted)) }
func (h *history) cancel() domain.Event   { return h.add(h.bw(domain.FactOrderCancelled)) }

func (h *history) pay(t domain.FactType, amount int64) domain.Event {
	f := domain.Fact{Type: t, ProviderRef: "ref-" + fmt.Sprint(len(h.events)), Reason: "provider says so"}
	if amount > 0 {
		f.Amount, f.HasAmount = amount, true
	}
	return h.add(f)
}

func (h *history) timeout(attempt int, at time.Time) domain.Event {
	return h.add(domain.Fact{Type: domain.FactPlacementTimedOut, Attempt: attempt, At: at})
}

// fold runs Evolve over every event, checking purity on the way, and
// returns the final state and all transitions.
func evolveAll(t testing.TB, r domain.Rules, events []domain.Event) (domain.State, []domain.Transition, []domain.Outcome) {
	t.Helper()
	var s domain.State
	var trans []domain.Transition
	var outs []domain.Outcome
	for _, e := range events {
		var out domain.Outcome
		s, out = domain.Evolve(r, s, e)
		trans = append(trans, out.Transitions...)
		outs = append(outs, out)
	}
	return s, trans, outs
}

func names(ts []domain.Transition) (events, commands []string) {
	for _, t := range ts {
		if t.AccelByte != "" {
			events = append(events, t.AccelByte)
		}
		if t.Command != "" {
			commands = append(commands, t.Command)
		}
	}
	return events, commands
}

func count(list []string, name string) int {
	n := 0
	for _, s := range list {
		if s == name {
			n++
		}
	}
	return n
}
