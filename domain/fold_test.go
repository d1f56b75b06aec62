package domain_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

var (
	immediate = domain.DefaultRules()
	provider  = func() domain.Rules { r := domain.DefaultRules(); r.RefundSettlement = domain.SettleProvider; return r }()
)

// reach builds the history that takes an order to status st.
func reach(h *history, st domain.Status) {
	if st == "" {
		return
	}
	h.checkout()
	switch st {
	case domain.StatusInit:
	case domain.StatusClosed:
		h.cancel()
	case domain.StatusCharged:
		h.charge()
	case domain.StatusFulfilled:
		h.charge()
		h.complete()
	case domain.StatusFulfillFailed:
		h.charge()
		h.pay(domain.FactOrderFulfillFailed, 0)
	case domain.StatusChargeback:
		h.charge()
		h.pay(domain.FactPaymentChargeback, h.total)
	case domain.StatusChargebackReversed:
		h.charge()
		h.pay(domain.FactPaymentChargeback, h.total)
		h.pay(domain.FactPaymentChargebackReversed, h.total)
	case domain.StatusRefunding: // provider rules only
		h.charge()
		h.pay(domain.FactOrderRefundRequested, 0)
	case domain.StatusRefundFailed: // provider rules only
		h.charge()
		h.pay(domain.FactOrderRefundRequested, 0)
		h.pay(domain.FactPaymentRefundFailed, h.total)
	case domain.StatusRefunded:
		h.charge()
		h.pay(domain.FactOrderRefundRequested, 0)
	}
}

type row struct {
	name     string
	rules    domain.Rules
	from     domain.Status
	given    func(h *history) // after reaching from
	when     func(h *history) domain.Event
	to       domain.Status
	disp     domain.Disposition
	events   []string
	commands []string
	money    *domain.Totals
}

func runRow(t *testing.T, c row) {
	t.Helper()
	h := newHistory(orderA)
	reach(h, c.from)
	if c.given != nil {
		c.given(h)
	}
	s, _, _ := evolveAll(t, c.rules, h.events)
	if s.Status != c.from && c.given == nil {
		t.Fatalf("given: status %s, want %s", s.Status, c.from)
	}
	e := c.when(h)
	got, out := domain.Evolve(c.rules, s, e)
	if got.Status != c.to {
		t.Errorf("status %s, want %s (%s: %s)", got.Status, c.to, out.Disposition, out.Reason)
	}
	if out.Disposition != c.disp {
		t.Errorf("disposition %s (%s), want %s", out.Disposition, out.Reason, c.disp)
	}
	events, commands := names(out.Transitions)
	if !slices.Equal(events, c.events) {
		t.Errorf("AccelByte events %v, want %v", events, c.events)
	}
	if !slices.Equal(commands, c.commands) {
		t.Errorf("commands %v, want %v", commands, c.commands)
	}
	if c.money != nil && got.Money != *c.money {
		t.Errorf("money %+v, want %+v", got.Money, *c.money)
	}
	for _, tr := range out.Transitions {
		if tr.Cause.ID != e.ID && out.Disposition != domain.DispApplied {
			t.Errorf("transition caused by %s", tr.Cause.ID)
		}
	}
}

func money(c, r, cb, rev int64) *domain.Totals {
	return &domain.Totals{Captured: c, Refunded: r, ChargedBack: cb, Reversed: rev, Net: c - r - cb + rev}
}

func TestLifecycleTable(t *testing.T) {
	const T = 9999
	later := func(h *history, d time.Duration) time.Time { return h.events[0].Fact.At.Add(d) }
	rows := []row{
		{name: "checkout creates the order", rules: immediate, from: "",
			when: func(h *history) domain.Event { return h.checkout() }, to: domain.StatusInit, disp: domain.DispApplied,
			events: []string{"orderCreated"}, commands: []string{"PlaceOrderCommand"}, money: money(0, 0, 0, 0)},
		{name: "time-out with attempts left re-sends", rules: immediate, from: domain.StatusInit,
			when: func(h *history) domain.Event { return h.timeout(1, later(h, 30*time.Minute)) }, to: domain.StatusInit, disp: domain.DispApplied,
			commands: []string{"PlaceOrderCommand"}},
		{name: "time-out with attempts spent expires", rules: immediate, from: domain.StatusInit,
			given: func(h *history) {
				h.timeout(1, later(h, 30*time.Minute))
				h.timeout(2, later(h, 60*time.Minute))
			},
			when: func(h *history) domain.Event { return h.timeout(3, later(h, 90*time.Minute)) }, to: domain.StatusClosed, disp: domain.DispApplied,
			events: []string{"orderExpired"}, commands: []string{"CancelOrderCommand"}},
		{name: "basket deleted charges", rules: immediate, from: domain.StatusInit,
			when: func(h *history) domain.Event { return h.charge() }, to: domain.StatusCharged, disp: domain.DispApplied,
			events: []string{"orderCharged"}, commands: []string{"DeleteBasketCompleteCommand"}, money: money(T, 0, 0, 0)},
		{name: "basket deletion failed cancels", rules: immediate, from: domain.StatusInit,
			when: func(h *history) domain.Event { return h.basketFailed() }, to: domain.StatusClosed, disp: domain.DispApplied,
			events: []string{"orderCancelled"}, commands: []string{"DeleteBasketFailedCommand"}, money: money(0, 0, 0, 0)},
		{name: "cancel before charge closes", rules: immediate, from: domain.StatusInit,
			when: func(h *history) domain.Event { return h.cancel() }, to: domain.StatusClosed, disp: domain.DispApplied,
			events: []string{"orderCancelled"}, commands: []string{"CancelOrderCommand"}, money: money(0, 0, 0, 0)},
		{name: "complete after charge fulfils", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.complete() }, to: domain.StatusFulfilled, disp: domain.DispApplied,
			events: []string{"orderFulfilled"}, commands: []string{"CompleteOrderCommand"}, money: money(T, 0, 0, 0)},
		{name: "complete after fulfil failure fulfils", rules: immediate, from: domain.StatusFulfillFailed,
			when: func(h *history) domain.Event { return h.complete() }, to: domain.StatusFulfilled, disp: domain.DispApplied,
			events: []string{"orderFulfilled"}, commands: []string{"CompleteOrderCommand"}},
		{name: "fulfil failure", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.pay(domain.FactOrderFulfillFailed, 0) }, to: domain.StatusFulfillFailed, disp: domain.DispApplied,
			events: []string{"orderFulfillFailed"}},
		{name: "provider refund settles", rules: provider, from: domain.StatusRefunding,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentRefunded, T) }, to: domain.StatusRefunded, disp: domain.DispApplied,
			events: []string{"orderRefunded"}, money: money(T, T, 0, 0)},
		{name: "provider refund fails", rules: provider, from: domain.StatusRefunding,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentRefundFailed, T) }, to: domain.StatusRefundFailed, disp: domain.DispApplied,
			events: []string{"orderRefundFailed"}, money: money(T, 0, 0, 0)},
		{name: "chargeback reversed", rules: immediate, from: domain.StatusChargeback,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentChargebackReversed, T) }, to: domain.StatusChargebackReversed, disp: domain.DispApplied,
			events: []string{"orderChargebackReversed"}, money: money(T, 0, T, T)},
	}
	// Refund requests and cancels from every refundable status, both settlements.
	for _, from := range []domain.Status{domain.StatusCharged, domain.StatusFulfilled, domain.StatusFulfillFailed, domain.StatusChargebackReversed, domain.StatusRefundFailed} {
		for _, cancel := range []bool{false, true} {
			for _, r := range []domain.Rules{immediate, provider} {
				if from == domain.StatusRefundFailed && r.RefundSettlement == domain.SettleImmediate {
					continue // REFUND_FAILED needs a provider
				}
				c := row{name: "refund from " + string(from), rules: r, from: from, disp: domain.DispApplied}
				c.when = func(h *history) domain.Event { return h.pay(domain.FactOrderRefundRequested, 0) }
				if cancel {
					c.name = "cancel from " + string(from)
					c.when = func(h *history) domain.Event { return h.cancel() }
					c.commands = []string{"CancelOrderCommand"}
				}
				cb := int64(0)
				if from == domain.StatusChargebackReversed {
					cb = T
				}
				if r.RefundSettlement == domain.SettleImmediate {
					c.name += " immediate"
					c.to = domain.StatusRefunded
					c.events = []string{"orderRefundRequested", "orderRefunded"}
					c.money = money(T, T, cb, cb)
				} else {
					c.name += " provider"
					c.to = domain.StatusRefunding
					c.events = []string{"orderRefundRequested"}
					c.money = money(T, 0, cb, cb)
				}
				rows = append(rows, c)
			}
		}
	}
	for _, from := range []domain.Status{domain.StatusCharged, domain.StatusFulfilled, domain.StatusFulfillFailed, domain.StatusChargebackReversed} {
		cb := int64(0)
		if from == domain.StatusChargebackReversed {
			cb = T
		}
		rows = append(rows, row{name: "chargeback from " + string(from), rules: immediate, from: from,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentChargeback, T) }, to: domain.StatusChargeback, disp: domain.DispApplied,
			events: []string{"orderChargeback"}, money: money(T, 0, T+cb, cb)})
	}
	for _, c := range rows {
		t.Run(c.name, func(t *testing.T) { runRow(t, c) })
	}
}

// Facts that can never apply are kept as ignored, with a reason, and change
// neither status nor money.
func TestNeverApplies(t *testing.T) {
	const T = 9999
	rows := []row{
		{name: "complete after cancel", rules: immediate, from: domain.StatusClosed,
			when: func(h *history) domain.Event { return h.complete() }, to: domain.StatusClosed, disp: domain.DispIgnored},
		{name: "charge after cancel", rules: immediate, from: domain.StatusClosed,
			when: func(h *history) domain.Event { return h.charge() }, to: domain.StatusClosed, disp: domain.DispIgnored, money: money(0, 0, 0, 0)},
		{name: "second charge", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.charge() }, to: domain.StatusCharged, disp: domain.DispIgnored, money: money(T, 0, 0, 0)},
		{name: "basket failure after charge", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.basketFailed() }, to: domain.StatusCharged, disp: domain.DispIgnored},
		{name: "second complete", rules: immediate, from: domain.StatusFulfilled,
			when: func(h *history) domain.Event { return h.complete() }, to: domain.StatusFulfilled, disp: domain.DispIgnored},
		{name: "complete after refund", rules: immediate, from: domain.StatusRefunded,
			when: func(h *history) domain.Event { return h.complete() }, to: domain.StatusRefunded, disp: domain.DispIgnored},
		{name: "fulfil failure after fulfil", rules: immediate, from: domain.StatusFulfilled,
			when: func(h *history) domain.Event { return h.pay(domain.FactOrderFulfillFailed, 0) }, to: domain.StatusFulfilled, disp: domain.DispIgnored},
		{name: "chargeback on a refunded order", rules: immediate, from: domain.StatusRefunded,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentChargeback, T) }, to: domain.StatusRefunded, disp: domain.DispIgnored, money: money(T, T, 0, 0)},
		{name: "refund during chargeback", rules: immediate, from: domain.StatusChargeback,
			when: func(h *history) domain.Event { return h.pay(domain.FactOrderRefundRequested, 0) }, to: domain.StatusChargeback, disp: domain.DispIgnored, money: money(T, 0, T, 0)},
		{name: "cancel during chargeback", rules: immediate, from: domain.StatusChargeback,
			when: func(h *history) domain.Event { return h.cancel() }, to: domain.StatusChargeback, disp: domain.DispIgnored, money: money(T, 0, T, 0)},
		{name: "provider result under immediate settlement", rules: immediate, from: domain.StatusRefunded,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentRefunded, T) }, to: domain.StatusRefunded, disp: domain.DispIgnored, money: money(T, T, 0, 0)},
		{name: "refund above captured", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.pay(domain.FactOrderRefundRequested, T+1) }, to: domain.StatusCharged, disp: domain.DispIgnored, money: money(T, 0, 0, 0)},
		{name: "chargeback above captured", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.pay(domain.FactPaymentChargeback, T+1) }, to: domain.StatusCharged, disp: domain.DispIgnored, money: money(T, 0, 0, 0)},
		{name: "time-out after charge", rules: immediate, from: domain.StatusCharged,
			when: func(h *history) domain.Event { return h.timeout(1, t0.Add(time.Hour)) }, to: domain.StatusCharged, disp: domain.DispIgnored},
	}
	for _, c := range rows {
		t.Run(c.name, func(t *testing.T) {
			runRow(t, c)
			h := newHistory(orderA)
			reach(h, c.from)
			e := c.when(h)
			s := domain.Fold(c.rules, h.events)
			if len(s.Ignored) == 0 || s.Ignored[len(s.Ignored)-1].Event.ID != e.ID || s.Ignored[len(s.Ignored)-1].Reason == "" {
				t.Fatalf("not kept as ignored with a reason: %+v", s.Ignored)
			}
		})
	}
}

func TestMoneyConflictsAreFlagged(t *testing.T) {
	cases := []struct {
		name  string
		rules domain.Rules
		build func(h *history) domain.Event
		flag  string
	}{
		{"chargeback on refunded", immediate, func(h *history) domain.Event {
			reach(h, domain.StatusRefunded)
			return h.pay(domain.FactPaymentChargeback, h.total)
		}, "paid back twice"},
		{"refund request above captured", immediate, func(h *history) domain.Event {
			reach(h, domain.StatusCharged)
			return h.pay(domain.FactOrderRefundRequested, h.total+1)
		}, "above"},
		{"provider refund above captured", provider, func(h *history) domain.Event {
			reach(h, domain.StatusRefunding)
			return h.pay(domain.FactPaymentRefunded, h.total+1)
		}, "above"},
		{"reversal above chargeback", immediate, func(h *history) domain.Event {
			h.checkout()
			h.charge()
			h.pay(domain.FactPaymentChargeback, 100)
			return h.pay(domain.FactPaymentChargebackReversed, 101)
		}, "above"},
		{"refund during chargeback", immediate, func(h *history) domain.Event {
			reach(h, domain.StatusChargeback)
			return h.pay(domain.FactOrderRefundRequested, 0)
		}, "chargeback"},
		{"charge after close", immediate, func(h *history) domain.Event {
			reach(h, domain.StatusClosed)
			return h.charge()
		}, "closed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHistory(orderA)
			e := c.build(h)
			before, _, _ := evolveAll(t, c.rules, h.events[:len(h.events)-1])
			after, out := domain.Evolve(c.rules, before, e)
			if len(out.Flags) != 1 || out.Flags[0].EventID != e.ID || !strings.Contains(out.Flags[0].Reason, c.flag) {
				t.Fatalf("flags %+v", out.Flags)
			}
			if after.Money != before.Money || after.Status != before.Status {
				t.Fatalf("money or status moved: %+v -> %+v", before.Money, after.Money)
			}
			if len(after.Flags) != len(before.Flags)+1 {
				t.Fatal("flag not kept in state")
			}
		})
	}
}

func TestPartialChargebackThenRefund(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	h.pay(domain.FactPaymentChargeback, 4000)
	h.pay(domain.FactPaymentChargebackReversed, 1000)
	h.pay(domain.FactOrderRefundRequested, 0)
	s := domain.Fold(immediate, h.events)
	if s.Status != domain.StatusRefunded || s.Money != *money(9999, 6999, 4000, 1000) || s.Money.Net != 0 {
		t.Fatalf("%s %+v", s.Status, s.Money)
	}
	// a second chargeback after the reversal may take only what is left
	h2 := newHistory(orderA)
	h2.checkout()
	h2.charge()
	h2.pay(domain.FactPaymentChargeback, 4000)
	h2.pay(domain.FactPaymentChargebackReversed, 4000)
	e := h2.pay(domain.FactPaymentChargeback, 9999)
	s = domain.Fold(immediate, h2.events)
	if s.Status != domain.StatusChargeback || s.Money != *money(9999, 0, 13999, 4000) || len(s.Flags) != 0 {
		t.Fatalf("second chargeback: %s %+v %+v (%s)", s.Status, s.Money, s.Flags, e.ID)
	}
}

func TestProviderRefundAmountDiffers(t *testing.T) {
	h := newHistory(orderA)
	reach(h, domain.StatusRefunding)
	h.pay(domain.FactPaymentRefunded, 5000)
	s := domain.Fold(provider, h.events)
	if s.Status != domain.StatusRefunded || s.Money != *money(9999, 5000, 0, 0) || len(s.Flags) != 1 || s.PendingRefund != 0 {
		t.Fatalf("%s %+v %+v", s.Status, s.Money, s.Flags)
	}
}

func TestDuplicatesChangeNothing(t *testing.T) {
	for _, st := range domain.Statuses() {
		r := immediate
		if st == domain.StatusRefunding || st == domain.StatusRefundFailed {
			r = provider
		}
		h := newHistory(orderA)
		reach(h, st)
		s, _, _ := evolveAll(t, r, h.events)
		for _, e := range h.events {
			got, out := domain.Evolve(r, s, e)
			if out.Disposition != domain.DispDuplicate || len(out.Transitions) != 0 || !reflect.DeepEqual(got, s) {
				t.Fatalf("%s: duplicate of %s changed something: %s", st, e.Fact.Type, out.Disposition)
			}
		}
	}
}

func TestSecondCheckoutChangesNothing(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	s, _, _ := evolveAll(t, immediate, h.events)
	h.total = 1
	e := h.checkout() // a new message id, different content
	got, out := domain.Evolve(immediate, s, e)
	if out.Disposition != domain.DispIgnored || out.Reason == "" || len(out.Transitions) != 0 {
		t.Fatalf("%+v", out)
	}
	if got.Status != s.Status || got.Total != s.Total || got.Money != s.Money || got.PlacementAttempts != s.PlacementAttempts {
		t.Fatal("second checkout changed the order")
	}
}

func TestOutOfOrderIsHeld(t *testing.T) {
	t.Run("charge and complete before checkout", func(t *testing.T) {
		h := newHistory(orderA)
		co := h.checkout()
		ch := h.charge()
		cp := h.complete()
		s, _, outs := evolveAll(t, immediate, []domain.Event{cp, ch, co})
		if outs[0].Disposition != domain.DispHeld || outs[1].Disposition != domain.DispHeld || outs[2].Disposition != domain.DispApplied {
			t.Fatalf("%+v", outs)
		}
		ev, cmds := names(outs[2].Transitions)
		if !slices.Equal(ev, []string{"orderCreated", "orderCharged", "orderFulfilled"}) ||
			!slices.Equal(cmds, []string{"PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand"}) {
			t.Fatalf("%v %v", ev, cmds)
		}
		if outs[2].Transitions[1].Cause.ID != ch.ID || outs[2].Transitions[2].Cause.ID != cp.ID {
			t.Fatal("released transitions must name the held fact as cause")
		}
		if s.Status != domain.StatusFulfilled || len(s.Held) != 0 || !s.PlacementDeadline.IsZero() {
			t.Fatalf("%s held=%d", s.Status, len(s.Held))
		}
	})
	t.Run("complete before charge stops the clock", func(t *testing.T) {
		h := newHistory(orderA)
		h.checkout()
		h.complete()
		s, _, outs := evolveAll(t, immediate, h.events)
		if outs[1].Disposition != domain.DispHeld || !s.PlacementDeadline.IsZero() || len(s.Held) != 1 {
			t.Fatalf("%+v", outs[1])
		}
		e := h.timeout(1, t0.Add(time.Hour))
		s2, out := domain.Evolve(immediate, s, e)
		if out.Disposition != domain.DispIgnored || len(out.Transitions) != 0 || s2.PlacementAttempts != 1 {
			t.Fatalf("time-out on a stopped clock: %+v", out)
		}
		s3, out := domain.Evolve(immediate, s2, h.charge())
		if s3.Status != domain.StatusFulfilled || len(out.Transitions) != 2 {
			t.Fatalf("%s %+v", s3.Status, out)
		}
	})
	t.Run("provider refund result before the request", func(t *testing.T) {
		h := newHistory(orderA)
		reach(h, domain.StatusCharged)
		h.pay(domain.FactPaymentRefunded, 9999)
		s, _, outs := evolveAll(t, provider, h.events)
		if outs[len(outs)-1].Disposition != domain.DispHeld || s.Status != domain.StatusCharged {
			t.Fatal("refund result must wait for REFUNDING")
		}
		s, out := domain.Evolve(provider, s, h.pay(domain.FactOrderRefundRequested, 0))
		ev, _ := names(out.Transitions)
		if s.Status != domain.StatusRefunded || !slices.Equal(ev, []string{"orderRefundRequested", "orderRefunded"}) || s.Money.Refunded != 9999 {
			t.Fatalf("%s %v %+v", s.Status, ev, s.Money)
		}
	})
	t.Run("reversal before chargeback", func(t *testing.T) {
		h := newHistory(orderA)
		reach(h, domain.StatusFulfilled)
		rev := h.pay(domain.FactPaymentChargebackReversed, 9999)
		cb := h.pay(domain.FactPaymentChargeback, 9999)
		s, _, _ := evolveAll(t, immediate, append(h.events[:len(h.events)-2:len(h.events)-2], rev, cb))
		if s.Status != domain.StatusChargebackReversed || s.Money != *money(9999, 0, 9999, 9999) {
			t.Fatalf("%s %+v", s.Status, s.Money)
		}
	})
	t.Run("held fact that can never apply moves to ignored", func(t *testing.T) {
		h := newHistory(orderA)
		h.checkout()
		cp := h.complete() // held: not charged
		h.cancel()         // closes the order
		s := domain.Fold(immediate, h.events)
		if len(s.Held) != 0 || len(s.Ignored) != 1 || s.Ignored[0].Event.ID != cp.ID || s.Status != domain.StatusClosed {
			t.Fatalf("held %d ignored %+v", len(s.Held), s.Ignored)
		}
	})
	t.Run("fact of another order", func(t *testing.T) {
		h := newHistory(orderA)
		h.checkout()
		other := newHistory("0198c0de-0000-7c3b-9f4e-2d6a8b1c3e5f")
		e := other.charge()
		e.ID = "x"
		s, out := domain.Evolve(immediate, domain.Fold(immediate, h.events), e)
		if out.Disposition != domain.DispIgnored || s.Status != domain.StatusInit {
			t.Fatal(out)
		}
	})
}

func TestPlacementClock(t *testing.T) {
	h := newHistory(orderA)
	co := h.checkout()
	s := domain.Fold(immediate, h.events)
	if s.PlacementAttempts != 1 || !s.PlacementDeadline.Equal(co.Fact.At.Add(30*time.Minute)) {
		t.Fatalf("%d %v", s.PlacementAttempts, s.PlacementDeadline)
	}
	early := h.timeout(1, co.Fact.At.Add(29*time.Minute))
	s1, out := domain.Evolve(immediate, s, early)
	if out.Disposition != domain.DispIgnored || s1.PlacementAttempts != 1 {
		t.Fatalf("premature time-out: %+v", out)
	}
	second := h.timeout(2, co.Fact.At.Add(61*time.Minute))
	s2, out := domain.Evolve(immediate, s1, second)
	if out.Disposition != domain.DispHeld {
		t.Fatalf("time-out 2 before 1: %+v", out)
	}
	first := h.timeout(1, co.Fact.At.Add(31*time.Minute))
	s3, out := domain.Evolve(immediate, s2, first)
	if s3.PlacementAttempts != 3 || len(out.Transitions) != 2 || len(s3.Held) != 0 {
		t.Fatalf("release of time-out 2: attempts %d, %+v", s3.PlacementAttempts, out)
	}
	if !s3.PlacementDeadline.Equal(second.Fact.At.Add(30 * time.Minute)) {
		t.Fatalf("deadline %v", s3.PlacementDeadline)
	}
	again := h.timeout(1, co.Fact.At.Add(200*time.Minute))
	_, out = domain.Evolve(immediate, s3, again)
	if out.Disposition != domain.DispIgnored || !strings.Contains(out.Reason, "already counted") {
		t.Fatalf("counted time-out: %+v", out)
	}
	// custom rules: one send in all
	r := immediate
	r.MaxPlacementAttempts = 1
	s4, out := domain.Evolve(r, s, first)
	if s4.Status != domain.StatusClosed || out.Transitions[0].AccelByte != "orderExpired" {
		t.Fatalf("%s", s4.Status)
	}
}

// BookWorm's MassTransit saga tests (the order state machine's own test
// cases: duplicate checkout, time-outs, cancel and complete), as fold scenarios.
func TestBookWormSagaScenarios(t *testing.T) {
	t.Run("duplicate checkout gives one PlaceOrderCommand", func(t *testing.T) {
		h := newHistory(orderA)
		e := h.checkout()
		e2 := h.checkout() // published twice: a second message id
		_, trans, _ := evolveAll(t, immediate, []domain.Event{e, e, e2})
		_, cmds := names(trans)
		if count(cmds, "PlaceOrderCommand") != 1 {
			t.Fatalf("%v", cmds)
		}
	})
	timeouts := func(h *history, n int) {
		for i := 1; i <= n; i++ {
			h.timeout(i, h.events[0].Fact.At.Add(time.Duration(i)*30*time.Minute))
		}
	}
	t.Run("one time-out gives two PlaceOrderCommands in all", func(t *testing.T) {
		h := newHistory(orderA)
		h.checkout()
		timeouts(h, 1)
		s, trans, _ := evolveAll(t, immediate, h.events)
		_, cmds := names(trans)
		if count(cmds, "PlaceOrderCommand") != 2 || s.Status != domain.StatusInit || s.PlacementAttempts != 2 {
			t.Fatalf("%v %s", cmds, s.Status)
		}
	})
	t.Run("the third time-out expires the order", func(t *testing.T) {
		h := newHistory(orderA)
		h.checkout()
		timeouts(h, 3)
		s, trans, _ := evolveAll(t, immediate, h.events)
		ev, cmds := names(trans)
		if count(cmds, "PlaceOrderCommand") != 3 || count(cmds, "CancelOrderCommand") != 1 || !slices.Contains(ev, "orderExpired") || s.Status != domain.StatusClosed {
			t.Fatalf("%v %v %s", ev, cmds, s.Status)
		}
		e := h.timeout(4, t0.Add(5*time.Hour))
		_, out := domain.Evolve(immediate, s, e)
		if out.Disposition != domain.DispIgnored {
			t.Fatal("a fourth time-out must be ignored")
		}
	})
	blanks := []*string{nil, ptr(""), ptr("   "), ptr("\t\n")}
	for _, when := range []string{"expiry", "cancel", "complete"} {
		for i, bad := range blanks {
			for _, field := range []string{"email", "fullName"} {
				t.Run("guard "+when+" "+field+" blank "+string(rune('0'+i)), func(t *testing.T) {
					h := newHistory(orderA)
					if field == "email" {
						h.email = bad
					} else {
						h.name = bad
					}
					h.checkout()
					want := "CancelOrderCommand"
					switch when {
					case "expiry":
						timeouts(h, 3)
					case "cancel":
						h.cancel()
					case "complete":
						h.charge()
						h.complete()
						want = "CompleteOrderCommand"
					}
					_, trans, _ := evolveAll(t, immediate, h.events)
					_, cmds := names(trans)
					if slices.Contains(cmds, want) {
						t.Fatalf("%s sent with a blank %s", want, field)
					}
					last := trans[len(trans)-1]
					if last.Suppressed != want || last.AccelByte == "" {
						t.Fatalf("%+v", last)
					}
				})
			}
		}
	}
	t.Run("guard reads the names the event carries", func(t *testing.T) {
		h := newHistory(orderA)
		h.checkout()
		h.charge()
		h.name = nil // the completing event has no name, the checkout had one
		h.complete()
		_, trans, _ := evolveAll(t, immediate, h.events)
		if _, cmds := names(trans); slices.Contains(cmds, "CompleteOrderCommand") {
			t.Fatal(cmds)
		}
	})
	t.Run("five orders side by side", func(t *testing.T) {
		ids := []string{
			"0198c0de-0001-7c3b-9f4e-2d6a8b1c3e5f", "0198c0de-0002-7c3b-9f4e-2d6a8b1c3e5f", "0198c0de-0003-7c3b-9f4e-2d6a8b1c3e5f",
			"0198c0de-0004-7c3b-9f4e-2d6a8b1c3e5f", "0198c0de-0005-7c3b-9f4e-2d6a8b1c3e5f",
		}
		states := map[string]domain.State{}
		places := map[string]int{}
		hs := map[string]*history{}
		for i, id := range ids {
			hs[id] = newHistory(id)
			hs[id].total = int64(1000 * (i + 1))
			hs[id].checkout()
			hs[id].checkout() // duplicates published too
		}
		// interleave the streams: each order only ever sees its own facts
		for round := 0; round < 2; round++ {
			for _, id := range ids {
				e := hs[id].events[round]
				s, out := domain.Evolve(immediate, states[id], e)
				states[id] = s
				_, cmds := names(out.Transitions)
				places[id] += count(cmds, "PlaceOrderCommand")
			}
		}
		for i, id := range ids {
			s := states[id]
			if s.Status != domain.StatusInit || places[id] != 1 || s.OrderID != id || s.Total != int64(1000*(i+1)) {
				t.Fatalf("%s: %s places=%d total=%d", id, s.Status, places[id], s.Total)
			}
		}
	})
}

func TestRestatement(t *testing.T) {
	h := newHistory(orderA)
	reach(h, domain.StatusRefunded)
	s := domain.Fold(immediate, h.events)
	e := h.add(domain.Fact{Type: domain.FactOrderRestated, Restated: &domain.Restatement{
		Status: domain.StatusRefunded, PreviousStatus: domain.StatusFulfilled, ReplayID: "r1", Reason: "fixed refund rule"}})
	got, out := domain.Evolve(immediate, s, e)
	if len(out.Transitions) != 1 {
		t.Fatal(out)
	}
	tr := out.Transitions[0]
	if tr.From != domain.StatusFulfilled || tr.To != domain.StatusRefunded || tr.AccelByte != "orderStatusUpdated" || tr.Command != "" || tr.Reason != "fixed refund rule" {
		t.Fatalf("%+v", tr)
	}
	if got.Money != s.Money || got.Status != s.Status || len(out.Flags) != 0 {
		t.Fatal("restatement changed state")
	}
	e2 := h.add(domain.Fact{Type: domain.FactOrderRestated, Restated: &domain.Restatement{Status: domain.StatusCharged, PreviousStatus: domain.StatusInit, ReplayID: "r2"}})
	_, out = domain.Evolve(immediate, got, e2)
	if len(out.Flags) != 1 || out.Transitions[0].To != domain.StatusRefunded {
		t.Fatalf("disagreeing restatement: %+v", out)
	}
}

func TestEvolveDoesNotMutateInput(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.complete() // held
	s := domain.Fold(immediate, h.events)
	applied := len(s.Applied)
	held := slices.Clone(s.Held)
	ignored := len(s.Ignored)
	e := h.charge() // releases the held fact
	s2, _ := domain.Evolve(immediate, s, e)
	if len(s.Applied) != applied || !reflect.DeepEqual(s.Held, held) || len(s.Ignored) != ignored {
		t.Fatal("Evolve mutated its input")
	}
	// Evolving the old state again gives the same result (no aliasing).
	s3, _ := domain.Evolve(immediate, s, e)
	if !reflect.DeepEqual(s2, s3) {
		t.Fatal("not deterministic from the same input")
	}
	// Two different successors of one state do not share held storage.
	a, _ := domain.Evolve(immediate, s, h.pay(domain.FactPaymentChargeback, 1))
	b, _ := domain.Evolve(immediate, s, h.pay(domain.FactOrderFulfillFailed, 0))
	if len(a.Held) != 2 || len(b.Held) != 2 || a.Held[1].Fact.Type == b.Held[1].Fact.Type {
		t.Fatal("successors share storage")
	}
}

func TestFolderMatchesEvolve(t *testing.T) {
	h := newHistory(orderA)
	reach(h, domain.StatusChargebackReversed)
	h.cancel()
	want, wantTrans, _ := evolveAll(t, immediate, h.events)
	f := domain.NewFolder(immediate, domain.State{})
	var trans []domain.Transition
	for _, e := range h.events {
		trans = append(trans, f.Apply(e).Transitions...)
	}
	if !reflect.DeepEqual(f.State(), want) || !reflect.DeepEqual(trans, wantTrans) {
		t.Fatal("Folder and Evolve disagree")
	}
	if !reflect.DeepEqual(domain.Fold(immediate, h.events), want) {
		t.Fatal("Fold and Evolve disagree")
	}
}

func TestRulesValidate(t *testing.T) {
	if err := domain.DefaultRules().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (domain.Rules{}).Validate(); err == nil || !strings.Contains(err.Error(), "placement timeout") || !strings.Contains(err.Error(), "settlement") {
		t.Fatalf("%v", err)
	}
}

func TestBadHandBuiltFactsMoveNoMoney(t *testing.T) {
	h := newHistory(orderA)
	reach(h, domain.StatusCharged)
	s := domain.Fold(immediate, h.events)
	for _, f := range []domain.Fact{
		{Type: domain.FactPaymentChargeback, ProviderRef: "p"},                              // no amount
		{Type: domain.FactPaymentChargeback, ProviderRef: "p", Amount: -5, HasAmount: true}, // negative
		{Type: domain.FactOrderRefundRequested, Amount: 5},                                  // amount without HasAmount
		{Type: domain.FactPaymentChargeback, ProviderRef: "p", Amount: 0, HasAmount: true},  // zero
		{Type: domain.FactType("SomethingElse")},                                            // unknown
		{Type: domain.FactOrderRestated},                                                    // no content
	} {
		f.OrderID, f.At = orderA, t0.Add(time.Hour)
		got, out := domain.Evolve(immediate, s, domain.Event{ID: "bad-" + string(f.Type), Fact: f})
		if out.Disposition != domain.DispIgnored || got.Money != s.Money || got.Status != s.Status {
			t.Errorf("%+v: %s %+v", f, out.Disposition, got.Money)
		}
	}
	_, out := domain.Evolve(immediate, s, domain.Event{Fact: domain.Fact{Type: domain.FactOrderCompleted, OrderID: orderA}})
	if out.Disposition != domain.DispIgnored {
		t.Error("an event without id must be ignored")
	}
}

func TestDaysSplitMoneyByTheDayOfEachFact(t *testing.T) {
	// Half past midnight at UTC+2 is the evening before in UTC.
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)) }
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	h.pay(domain.FactPaymentChargeback, 4000)
	h.pay(domain.FactPaymentChargebackReversed, 1000)
	for i, at := range []time.Time{day(1), day(4), day(3), day(3).Add(10 * time.Minute)} {
		h.events[i].Fact.At = at // the chargeback and its reversal are dated before the charge
	}
	s, _, _ := evolveAll(t, immediate, h.events)
	want := []domain.DayMove{
		{Day: "2026-03-02", Money: domain.Totals{ChargedBack: 4000, Reversed: 1000, Net: -3000}},
		{Day: "2026-03-03", Money: domain.Totals{Captured: 9999, Net: 9999}},
	}
	if !reflect.DeepEqual(s.Days, want) {
		t.Fatalf("days %+v, want %+v", s.Days, want)
	}
	if !s.CreatedAt.Equal(day(1)) {
		t.Fatalf("created at %v, want the checkout's time %v", s.CreatedAt, day(1))
	}
	if f := domain.Fold(immediate, h.events); !reflect.DeepEqual(f.Days, want) {
		t.Fatalf("Fold days %+v", f.Days)
	}
}

func TestDaysPutReleasedFactsOnTheReleasingFactsDay(t *testing.T) {
	h := newHistory(orderA)
	co := h.checkout()
	charge := h.charge()
	refund := h.pay(domain.FactOrderRefundRequested, 2000)
	co.Fact.At = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	charge.Fact.At = time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)
	refund.Fact.At = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	// The refund (dated the 2nd) and the charge arrive before the checkout.
	s, _, _ := evolveAll(t, immediate, []domain.Event{refund, charge, co})
	want := []domain.DayMove{{Day: "2026-03-01", Money: domain.Totals{Captured: 9999, Refunded: 2000, Net: 7999}}}
	if !reflect.DeepEqual(s.Days, want) {
		t.Fatalf("days %+v, want everything on the checkout's day %+v", s.Days, want)
	}
	// In date order each fact's money is on its own day.
	s, _, _ = evolveAll(t, immediate, []domain.Event{co, charge, refund})
	want = []domain.DayMove{
		{Day: "2026-03-02", Money: domain.Totals{Refunded: 2000, Net: -2000}},
		{Day: "2026-03-04", Money: domain.Totals{Captured: 9999, Net: 9999}},
	}
	if !reflect.DeepEqual(s.Days, want) {
		t.Fatalf("days %+v, want %+v", s.Days, want)
	}
}

func TestEvolveLeavesTheCallersDaysAlone(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	s, _, _ := evolveAll(t, immediate, h.events)
	before := slices.Clone(s.Days)
	refund := h.pay(domain.FactOrderRefundRequested, 100) // same day as the charge: added in place
	next, _ := domain.Evolve(immediate, s, refund)
	if !reflect.DeepEqual(s.Days, before) {
		t.Fatalf("Evolve changed its input's days: %+v, was %+v", s.Days, before)
	}
	if next.Days[0].Money.Refunded != 100 {
		t.Fatalf("refund not counted: %+v", next.Days)
	}
}
