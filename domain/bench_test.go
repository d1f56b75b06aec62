package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

type storedEvent struct {
	id, typ string
	data    []byte
}

// benchHistory is a 10-fact order history in its stored form: checkout,
// a placement time-out, charge, completion, chargeback and reversal, a
// refund (immediate), a provider result the settlement ignores, a late
// completion and a restatement.
func benchHistory(b *testing.B) []storedEvent {
	h := newHistory(orderA)
	co := h.checkout()
	h.timeout(1, co.Fact.At.Add(30*time.Minute))
	h.charge()
	h.complete()
	h.pay(domain.FactPaymentChargeback, 4000)
	h.pay(domain.FactPaymentChargebackReversed, 4000)
	h.pay(domain.FactOrderRefundRequested, 0)
	h.pay(domain.FactPaymentRefunded, 9999)
	h.complete()
	h.add(domain.Fact{Type: domain.FactOrderRestated, Restated: &domain.Restatement{Status: domain.StatusRefunded,
		PreviousStatus: domain.StatusFulfilled, Money: domain.Totals{Captured: 9999, Refunded: 9999}, ReplayID: "r1", Reason: "fix"}})
	var out []storedEvent
	for _, e := range h.events {
		data, err := codec.EncodeFact(e.Fact, usd)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, storedEvent{e.ID, string(e.Fact.Type), data})
	}
	if s := domain.Fold(immediate, h.events); s.Status != domain.StatusRefunded || len(s.Ignored) != 2 {
		b.Fatalf("bench history ends %s with %d ignored", s.Status, len(s.Ignored))
	}
	return out
}

// plainFact is what encoding/json needs for the same data (reference only:
// no validation, no exact money check, no case rules).
type plainFact struct {
	OrderID           string  `json:"orderId"`
	BasketID          string  `json:"basketId"`
	FullName          *string `json:"fullName"`
	Email             *string `json:"email"`
	TotalMoney        string  `json:"totalMoney"`
	TotalMoneyMinor   int64   `json:"totalMoneyMinor"`
	Amount            string  `json:"amount"`
	AmountMinor       int64   `json:"amountMinor"`
	Currency          string  `json:"currency"`
	Decimals          int     `json:"decimals"`
	ProviderReference string  `json:"providerReference"`
	Reason            string  `json:"reason"`
	Attempt           int     `json:"attempt"`
	Restated          *struct {
		Status, PreviousStatus string
		Money, PreviousMoney   map[string]int64
		ReplayID, Reason       string
	} `json:"restated"`
	At time.Time `json:"at"`
}

// BenchmarkFoldHistory: decode the stored history and fold it, against the
// floor of decoding alone, measured in the same run. Target: fold+decode
// <= 1.2x the floor.
func BenchmarkFoldHistory(b *testing.B) {
	hist := benchHistory(b)
	n := float64(len(hist))
	events := make([]domain.Event, len(hist))
	decode := func(b *testing.B) {
		for i, se := range hist {
			f, err := codec.DecodeFact(se.typ, se.data)
			if err != nil {
				b.Fatal(err)
			}
			events[i] = domain.Event{ID: se.id, Revision: uint64(i), Fact: f}
		}
	}
	foldOnce := func(b *testing.B) {
		decode(b)
		if s := domain.Fold(immediate, events); s.Status != domain.StatusRefunded {
			b.Fatal(s.Status)
		}
	}
	folderOnce := func(b *testing.B) {
		fo := domain.NewFolder(immediate, domain.State{})
		for i, se := range hist {
			f, err := codec.DecodeFact(se.typ, se.data)
			if err != nil {
				b.Fatal(err)
			}
			fo.Apply(domain.Event{ID: se.id, Revision: uint64(i), Fact: f})
		}
	}
	evolveOnce := func(b *testing.B) {
		var s domain.State
		for i, se := range hist {
			f, err := codec.DecodeFact(se.typ, se.data)
			if err != nil {
				b.Fatal(err)
			}
			s, _ = domain.Evolve(immediate, s, domain.Event{ID: se.id, Revision: uint64(i), Fact: f})
		}
	}
	jsonOnce := func(b *testing.B) {
		for _, se := range hist {
			var p plainFact
			if err := json.Unmarshal(se.data, &p); err != nil {
				b.Fatal(err)
			}
		}
	}
	perFact := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/fact")
	}
	// Separate runs give the allocation counts.
	for _, c := range []struct {
		name string
		fn   func(*testing.B)
	}{{"floor=decode", decode}, {"decode+Fold", foldOnce}, {"decode+Folder.Apply", folderOnce}, {"decode+Evolve", evolveOnce}, {"reference=encoding-json", jsonOnce}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn(b)
			}
			perFact(b)
		})
	}
	// The ratios come from one run that alternates the floor with each
	// variant, so a busy machine slows both alike.
	b.Run("ratios", func(b *testing.B) {
		variants := []func(*testing.B){decode, foldOnce, folderOnce, evolveOnce, jsonOnce}
		spent := make([]time.Duration, len(variants))
		for b.Loop() {
			for k, fn := range variants {
				start := time.Now()
				fn(b)
				spent[k] += time.Since(start)
			}
		}
		floor := float64(spent[0])
		b.ReportMetric(floor/float64(b.N)/n, "floor-ns/fact")
		b.ReportMetric(float64(spent[1])/floor, "Fold-x-floor")
		b.ReportMetric(float64(spent[2])/floor, "Folder-x-floor")
		b.ReportMetric(float64(spent[3])/floor, "Evolve-x-floor")
		b.ReportMetric(float64(spent[4])/floor, "encjson-x-floor")
	})
}

// BenchmarkIntents: the messages of a checkout, bodies rendered.
func BenchmarkIntents(b *testing.B) {
	h := newHistory(orderA)
	e := h.checkout()
	s, out := domain.Evolve(immediate, domain.State{}, e)
	cfg := domain.DefaultOutboundConfig()
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := domain.Intents(cfg, "order-"+orderA, s, out.Transitions[0])
		if err != nil {
			b.Fatal(err)
		}
		if err := codec.RenderBodies(cfg, msgs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFoldDecoded: the fold alone over the decoded bench history (no
// decoding), so the fold's own cost and allocations show, in each mode.
func BenchmarkFoldDecoded(b *testing.B) {
	hist := benchHistory(b)
	events := make([]domain.Event, len(hist))
	for i, se := range hist {
		f, err := codec.DecodeFact(se.typ, se.data)
		if err != nil {
			b.Fatal(err)
		}
		events[i] = domain.Event{ID: se.id, Revision: uint64(i), Fact: f}
	}
	n := float64(len(events))
	modes := []struct {
		name string
		fn   func()
	}{
		{"Fold", func() { domain.Fold(immediate, events) }},
		{"Folder.Fold", func() {
			fo := domain.NewFolder(immediate, domain.State{})
			for _, e := range events {
				fo.Fold(e)
			}
		}},
		{"Folder.Apply", func() {
			fo := domain.NewFolder(immediate, domain.State{})
			for _, e := range events {
				fo.Apply(e)
			}
		}},
		{"Evolve", func() {
			var s domain.State
			for _, e := range events {
				s, _ = domain.Evolve(immediate, s, e)
			}
		}},
	}
	for _, c := range modes {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/fact")
		})
	}
}
