package domain_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

const propertySeed = 20250801

var allStatuses = append([]domain.Status{""}, domain.Statuses()...)

func randomFact(rng *rand.Rand) domain.Fact {
	types := domain.FactTypes()
	f := domain.Fact{Type: types[rng.IntN(len(types))], OrderID: orderA}
	if rng.IntN(20) == 0 {
		f.OrderID = "0198c0de-ffff-7c3b-9f4e-2d6a8b1c3e5f"
	}
	f.At = t0.Add(time.Duration(rng.IntN(300)) * time.Minute)
	amounts := []int64{1, 100, 4000, 5000, 9999, 10000, 20000}
	switch f.Type {
	case domain.FactUserCheckedOut, domain.FactBasketDeletedComplete, domain.FactBasketDeletedFailed, domain.FactOrderCompleted, domain.FactOrderCancelled:
		f.BasketID = basketA
		f.Amount, f.HasAmount = 9999, true
		if rng.IntN(8) == 0 {
			f.Amount = amounts[rng.IntN(len(amounts))]
		}
		names := []*string{nil, ptr(""), ptr("  "), ptr("John Doe")}
		f.FullName, f.Email = names[rng.IntN(4)], names[rng.IntN(4)]
	case domain.FactPaymentRefunded, domain.FactPaymentRefundFailed, domain.FactPaymentChargeback, domain.FactPaymentChargebackReversed:
		f.Amount, f.HasAmount = amounts[rng.IntN(len(amounts))], true
		f.ProviderRef = "p"
	case domain.FactOrderRefundRequested:
		if rng.IntN(2) == 0 {
			f.Amount, f.HasAmount = amounts[rng.IntN(len(amounts))], true
		}
	case domain.FactPlacementTimedOut:
		f.Attempt = 1 + rng.IntN(4)
	case domain.FactOrderRestated:
		f.Restated = &domain.Restatement{Status: domain.Statuses()[rng.IntN(10)], PreviousStatus: allStatuses[rng.IntN(11)], ReplayID: "r"}
	}
	return f
}

func randomHistory(rng *rand.Rand) []domain.Event {
	n := 1 + rng.IntN(30)
	var events []domain.Event
	for i := 0; i < n; i++ {
		if len(events) > 0 && rng.IntN(6) == 0 { // a redelivery
			events = append(events, events[rng.IntN(len(events))])
			continue
		}
		f := randomFact(rng)
		if i == 0 && rng.IntN(2) == 0 {
			f = domain.Fact{Type: domain.FactUserCheckedOut, OrderID: orderA, BasketID: basketA, Amount: 9999, HasAmount: true, At: t0, FullName: ptr("J"), Email: ptr("e")}
		}
		events = append(events, domain.Event{ID: fmt.Sprintf("e%d", i), Revision: uint64(i), Fact: f})
	}
	return events
}

func checkInvariants(s domain.State) error {
	if !slices.Contains(allStatuses, s.Status) {
		return fmt.Errorf("status %q outside the enum", s.Status)
	}
	m := s.Money
	if m.Captured < 0 || m.Refunded < 0 || m.ChargedBack < 0 || m.Reversed < 0 {
		return fmt.Errorf("negative money %+v", m)
	}
	if m.Refunded+m.ChargedBack-m.Reversed > m.Captured {
		return fmt.Errorf("paid back more than captured: %+v", m)
	}
	if m.Reversed > m.ChargedBack {
		return fmt.Errorf("reversed more than charged back: %+v", m)
	}
	if m.Net != m.Captured-m.Refunded-m.ChargedBack+m.Reversed {
		return fmt.Errorf("net %+v", m)
	}
	if s.Status == "" && (m != domain.Totals{}) {
		return fmt.Errorf("money without an order")
	}
	if len(s.Held)+len(s.Ignored) > len(s.Applied) {
		return fmt.Errorf("more held and ignored than seen")
	}
	return checkDays(s)
}

// checkDays: the days are sorted, unique and sum to the order's money.
func checkDays(s domain.State) error {
	var sum domain.Totals
	for i, d := range s.Days {
		if i > 0 && d.Day <= s.Days[i-1].Day {
			return fmt.Errorf("days out of order or repeated: %+v", s.Days)
		}
		if _, err := time.Parse(domain.DayFormat, d.Day); err != nil {
			return fmt.Errorf("day %q: %v", d.Day, err)
		}
		if (d.Money == domain.Totals{}) {
			return fmt.Errorf("a day with no money: %+v", s.Days)
		}
		sum = sum.Add(d.Money)
	}
	if sum != s.Money {
		return fmt.Errorf("days sum to %+v, money is %+v", sum, s.Money)
	}
	return nil
}

func TestPropertyRandomHistories(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed, 1))
	for i := 0; i < 3000; i++ {
		events := randomHistory(rng)
		for _, r := range []domain.Rules{immediate, provider} {
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d, history %d, settlement %s: %s\n%s", propertySeed, i, r.RefundSettlement, fmt.Sprintf(format, args...), dump(events))
			}
			var s domain.State
			seen := map[string]bool{}
			for k, e := range events {
				prev := s
				var out domain.Outcome
				s, out = domain.Evolve(r, s, e)
				if err := checkInvariants(s); err != nil {
					fail("after event %d: %v", k, err)
				}
				if seen[e.ID] {
					if out.Disposition != domain.DispDuplicate || !reflect.DeepEqual(prev, s) || len(out.Transitions) != 0 {
						fail("duplicate %d changed something", k)
					}
				}
				seen[e.ID] = true
				for _, tr := range out.Transitions {
					if !tr.To.Valid() {
						fail("transition to %q", tr.To)
					}
				}
				// re-evolving the previous state gives the same result (purity)
				again, _ := domain.Evolve(r, prev, e)
				if !reflect.DeepEqual(again, s) {
					fail("Evolve not deterministic at event %d", k)
				}
			}
			if f := domain.Fold(r, events); !reflect.DeepEqual(f, s) {
				fail("Fold differs from Evolve")
			}
			if f := domain.Fold(r, events); !reflect.DeepEqual(f, domain.Fold(r, events)) {
				fail("Fold not deterministic")
			}
		}
	}
}

// TestPropertyDaysAcrossDays spreads the random histories over a fortnight,
// in no particular date order, so facts land on many days and arrive out
// of date order.
func TestPropertyDaysAcrossDays(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed, 3))
	for i := 0; i < 3000; i++ {
		events := randomHistory(rng)
		shift := map[string]time.Duration{}
		for k := range events {
			e := &events[k]
			if _, ok := shift[e.ID]; !ok {
				shift[e.ID] = time.Duration(rng.IntN(14)) * 24 * time.Hour
			}
			e.Fact.At = e.Fact.At.Add(shift[e.ID]) // a redelivery keeps its date
		}
		for _, r := range []domain.Rules{immediate, provider} {
			var s domain.State
			for k, e := range events {
				s, _ = domain.Evolve(r, s, e)
				if err := checkDays(s); err != nil {
					t.Fatalf("seed %d, history %d, event %d: %v\n%s", propertySeed, i, k, err, dump(events))
				}
			}
			if f := domain.Fold(r, events); !reflect.DeepEqual(f.Days, s.Days) {
				t.Fatalf("seed %d, history %d: Fold days %+v, Evolve days %+v", propertySeed, i, f.Days, s.Days)
			}
		}
	}
}

func dump(events []domain.Event) string {
	out := ""
	for _, e := range events {
		out += fmt.Sprintf("  %s %s amount=%d attempt=%d at=%s\n", e.ID, e.Fact.Type, e.Fact.Amount, e.Fact.Attempt, e.Fact.At.Format("15:04"))
	}
	return out
}

// A story is a history plus its causal prerequisites: after[i] lists the
// events that must come before event i because it was caused by them (a
// refund result after its request, a reversal after its chargeback, a
// refund after the reversal). Technical ordering is not listed: every fact
// may overtake the checkout and the charge, a completion the charge, a
// provider refund result its request. Every such order, with
// redeliveries, must end in the same state. (A fact caused by a fact that
// is itself still held is judged without it; see specs/lifecycle.md.)
type story struct {
	name  string
	rules domain.Rules
	build func(h *history) (after map[int][]int)
}

func stories() []story {
	return []story{
		{"charge, complete, refund", immediate, func(h *history) map[int][]int {
			h.checkout()
			h.charge()
			h.complete()
			h.pay(domain.FactOrderRefundRequested, 0)
			return map[int][]int{3: {2}}
		}},
		{"fulfil failure, cancel, provider refund", provider, func(h *history) map[int][]int {
			h.checkout()
			h.charge()
			h.pay(domain.FactOrderFulfillFailed, 0)
			h.cancel()
			h.pay(domain.FactPaymentRefunded, h.total)
			return map[int][]int{3: {1, 2}}
		}},
		{"chargeback, reversal, refund", immediate, func(h *history) map[int][]int {
			h.checkout()
			h.charge()
			h.complete()
			h.pay(domain.FactPaymentChargeback, 4000)
			h.pay(domain.FactPaymentChargebackReversed, 4000)
			h.pay(domain.FactOrderRefundRequested, 0)
			return map[int][]int{3: {2}, 4: {3}, 5: {4}}
		}},
		{"two time-outs then charge", immediate, func(h *history) map[int][]int {
			co := h.checkout()
			h.timeout(1, co.Fact.At.Add(30*time.Minute))
			h.timeout(2, co.Fact.At.Add(60*time.Minute))
			h.charge()
			h.complete()
			return map[int][]int{3: {1, 2}, 4: {1, 2}}
		}},
		{"expiry then late facts", immediate, func(h *history) map[int][]int {
			co := h.checkout()
			h.timeout(1, co.Fact.At.Add(30*time.Minute))
			h.timeout(2, co.Fact.At.Add(60*time.Minute))
			h.timeout(3, co.Fact.At.Add(90*time.Minute))
			h.complete()
			h.pay(domain.FactPaymentRefunded, 1)
			return map[int][]int{4: {1, 2, 3}}
		}},
		{"provider refund fails then chargeback", provider, func(h *history) map[int][]int {
			h.checkout()
			h.charge()
			h.pay(domain.FactOrderRefundRequested, 0)
			h.pay(domain.FactPaymentRefundFailed, h.total)
			h.pay(domain.FactPaymentChargeback, h.total)
			return map[int][]int{3: {2}, 4: {3}}
		}},
	}
}

func randomTopoOrder(rng *rand.Rand, n int, after map[int][]int) []int {
	done := make([]bool, n)
	var order []int
	for len(order) < n {
		var ready []int
		for i := 0; i < n; i++ {
			if done[i] {
				continue
			}
			ok := true
			for _, p := range after[i] {
				ok = ok && done[p]
			}
			if ok {
				ready = append(ready, i)
			}
		}
		pick := ready[rng.IntN(len(ready))]
		done[pick] = true
		order = append(order, pick)
	}
	return order
}

type summary struct {
	Status, Previous    domain.Status
	Reason              string
	Money               domain.Totals
	Total, Pending      int64
	Attempts            int
	Deadline, LastAt    time.Time
	Name, Email         string
	Held, Ignored, Flag []string
	Seen                int
}

func summarize(s domain.State) summary {
	ids := func(n int, id func(int) string) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, id(i))
		}
		slices.Sort(out)
		return out
	}
	deref := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	return summary{s.Status, s.PreviousStatus, s.StatusReason, s.Money, s.Total, s.PendingRefund, s.PlacementAttempts,
		s.PlacementDeadline, s.LastAt, deref(s.FullName), deref(s.Email),
		ids(len(s.Held), func(i int) string { return s.Held[i].ID }),
		ids(len(s.Ignored), func(i int) string { return s.Ignored[i].Event.ID }),
		ids(len(s.Flags), func(i int) string { return s.Flags[i].EventID }), len(s.Applied)}
}

func TestPropertyOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed, 2))
	for _, st := range stories() {
		t.Run(st.name, func(t *testing.T) {
			h := newHistory(orderA)
			after := st.build(h)
			want := summarize(domain.Fold(st.rules, h.events))
			for i := 0; i < 500; i++ {
				order := randomTopoOrder(rng, len(h.events), after)
				var events []domain.Event
				for n, k := range order {
					events = append(events, h.events[k])
					if rng.IntN(4) == 0 { // a redelivery of something already delivered
						events = append(events, h.events[order[rng.IntN(n+1)]])
					}
				}
				folded := domain.Fold(st.rules, events)
				if err := checkDays(folded); err != nil {
					t.Fatalf("seed %d, order %v: %v", propertySeed, order, err)
				}
				got := summarize(folded)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("seed %d, order %v: \n got %+v\nwant %+v", propertySeed, order, got, want)
				}
			}
		})
	}
}
