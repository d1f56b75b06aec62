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
	Books               domain.Books
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
		ids(len(s.Flags), func(i int) string { return s.Flags[i].EventID }), len(s.Applied), s.Books}
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

// booksFor is what an order's books must hold given its money and whether
// it was ever fulfilled. The machine fulfils only a CHARGED or
// FULFILL_FAILED order, which nothing paid back yet, and captures only
// before that; so before fulfilment all its money sits in deferred
// revenue, and after it revenue holds the whole capture, the contra
// accounts every payback and deferred revenue nothing.
func booksFor(m domain.Totals, fulfilled bool) domain.Books {
	var b domain.Books
	b.Balance[domain.AccountPaymentsClearing] = m.Net
	if !fulfilled {
		b.Balance[domain.AccountDeferredRevenue] = -m.Net
		return b
	}
	b.Recognized = true
	b.Balance[domain.AccountRevenue] = -m.Captured
	b.Balance[domain.AccountRefunds] = m.Refunded
	b.Balance[domain.AccountChargebacks] = m.ChargedBack - m.Reversed
	return b
}

// journal follows one order's postings as the fold emits them.
type journal struct {
	books   domain.Books           // the postings applied from nothing
	byEntry map[domain.Entry]int64 // per entry: the movement on payments clearing (+ in, - out)
	amounts map[domain.Entry]int64 // per entry: the debits posted
	lines   int
}

func newJournal() *journal {
	return &journal{byEntry: map[domain.Entry]int64{}, amounts: map[domain.Entry]int64{}}
}

func (j *journal) add(ps []domain.Posting) {
	for _, p := range ps {
		j.books.Balance[p.Account] += p.Signed()
		if p.Account == domain.AccountPaymentsClearing {
			j.byEntry[p.Entry] += p.Signed()
		}
		if p.Side == domain.Debit {
			j.amounts[p.Entry] += p.Amount
		}
		j.lines++
	}
}

// checkBooks: the invariants of an order's books after a step.
func checkBooks(s domain.State, fulfilled bool, j *journal) error {
	b, m := s.Books, s.Money
	if b.Sum() != 0 {
		return fmt.Errorf("books do not balance: %+v", b)
	}
	if b.Of(domain.AccountPaymentsClearing) != m.Net {
		return fmt.Errorf("clearing %d, net %d", b.Of(domain.AccountPaymentsClearing), m.Net)
	}
	if b.Recognized != fulfilled {
		return fmt.Errorf("recognized %v, ever fulfilled %v", b.Recognized, fulfilled)
	}
	if want := booksFor(m, fulfilled); b != want {
		return fmt.Errorf("books %+v, want %+v for money %+v", b, want, m)
	}
	if j.books.Balance != b.Balance {
		return fmt.Errorf("the postings add up to %+v, the books hold %+v", j.books.Balance, b.Balance)
	}
	got := domain.Totals{Captured: j.byEntry[domain.EntryCapture], Refunded: -j.byEntry[domain.EntryRefund],
		ChargedBack: -j.byEntry[domain.EntryChargeback], Reversed: j.byEntry[domain.EntryReversal]}
	got.Net = got.Captured - got.Refunded - got.ChargedBack + got.Reversed
	if got != m {
		return fmt.Errorf("postings by entry say %+v, money is %+v", got, m)
	}
	if j.byEntry[domain.EntryRecognition] != 0 || j.amounts[domain.EntryRecognition] != -b.Of(domain.AccountRevenue) {
		return fmt.Errorf("recognition posted %d, revenue %d", j.amounts[domain.EntryRecognition], b.Of(domain.AccountRevenue))
	}
	return nil
}

// TestPropertyBooks folds random histories and checks every step's
// postings (positive, on the chart, balanced overall and per entry, and
// exactly the change of the books) and the books after it (see
// checkBooks); over all the orders the books net to zero and the trial
// balance's debits equal its credits.
func TestPropertyBooks(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed, 4))
	var all domain.Books
	var net int64
	orders, fulfilled, paidBack, both := 0, 0, 0, 0
	for i := 0; i < 6000; i++ {
		events := randomHistory(rng)
		if i%2 == 1 {
			events = lifelikeHistory(rng)
		}
		for _, r := range []domain.Rules{immediate, provider} {
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d, history %d, settlement %s: %s\n%s", propertySeed, i, r.RefundSettlement, fmt.Sprintf(format, args...), dump(events))
			}
			var s domain.State
			j, ever := newJournal(), false
			folder := domain.NewFolder(r, domain.State{})
			for k, e := range events {
				prev := s
				var out domain.Outcome
				s, out = domain.Evolve(r, s, e)
				folder.Fold(e)
				if msg := checkPostings(out.Postings); msg != "" {
					fail("event %d: %s", k, msg)
				}
				if len(out.Postings) > 0 && (s.Money == prev.Money && s.Books.Recognized == prev.Books.Recognized) {
					fail("event %d posted %+v without moving money or earning revenue", k, out.Postings)
				}
				if out.Disposition == domain.DispDuplicate && out.Postings != nil {
					fail("duplicate %d posted %+v", k, out.Postings)
				}
				for _, tr := range out.Transitions {
					ever = ever || tr.To == domain.StatusFulfilled
				}
				j.add(out.Postings)
				if err := checkBooks(s, ever, j); err != nil {
					fail("after event %d: %v", k, err)
				}
				if fb := folder.State().Books; fb != s.Books {
					fail("after event %d: Folder.Fold books %+v, Evolve books %+v", k, fb, s.Books)
				}
			}
			all = all.Add(s.Books)
			net += s.Money.Net
			orders++
			if ever {
				fulfilled++
			}
			if s.Money.Refunded+s.Money.ChargedBack > 0 {
				paidBack++
				if ever {
					both++
				}
			}
		}
	}
	if all.Sum() != 0 || all.Of(domain.AccountPaymentsClearing) != net {
		t.Fatalf("%d orders: books %+v, net %d", orders, all, net)
	}
	var debits, credits int64
	for _, a := range domain.Accounts() {
		if v := all.Of(a); v > 0 {
			debits += v
		} else {
			credits -= v
		}
	}
	if debits != credits || debits == 0 {
		t.Fatalf("trial balance: debits %d, credits %d", debits, credits)
	}
	// The histories must reach the interesting cases for this to mean much.
	if fulfilled < orders/5 || paidBack < orders/5 || both < orders/10 {
		t.Fatalf("of %d orders only %d fulfilled, %d paid back, %d both", orders, fulfilled, paidBack, both)
	}
	t.Logf("%d orders, %d fulfilled, %d paid back, %d both; books %+v", orders, fulfilled, paidBack, both, all)
}

// lifelikeHistory is an order that is checked out and charged, then gets
// a few money facts of random amounts, delivered with some facts
// overtaking others (so the charge releases what waited for it) and with
// redeliveries.
func lifelikeHistory(rng *rand.Rand) []domain.Event {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	if rng.IntN(2) == 0 {
		h.complete()
	}
	amounts := []int64{0, 1, 2500, 4000, 9999, 10000}
	for n := 1 + rng.IntN(5); n > 0; n-- {
		switch rng.IntN(8) {
		case 0, 1:
			h.complete()
		case 2:
			h.pay(domain.FactOrderFulfillFailed, 0)
		case 3:
			h.pay(domain.FactOrderRefundRequested, amounts[rng.IntN(len(amounts))])
		case 4:
			h.pay(domain.FactPaymentRefunded, amounts[1+rng.IntN(len(amounts)-1)])
		case 5:
			h.pay(domain.FactPaymentChargeback, amounts[1+rng.IntN(len(amounts)-1)])
		case 6:
			h.pay(domain.FactPaymentChargebackReversed, amounts[1+rng.IntN(len(amounts)-1)])
		case 7:
			h.cancel()
		}
	}
	events := slices.Clone(h.events)
	for k := rng.IntN(3); k > 0; k-- { // a fact overtakes another
		a, b := rng.IntN(len(events)), rng.IntN(len(events))
		events[a], events[b] = events[b], events[a]
	}
	if rng.IntN(3) == 0 {
		events = append(events, events[rng.IntN(len(events))])
	}
	return events
}
