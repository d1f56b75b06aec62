package domain_test

import (
	"errors"
	"testing"

	"github.com/bookworm-ledger/ledger/domain"
)

// A total outside int32 fails only the AccelByte message: the command is
// built, and the error names the message that cannot be.
func TestIntentsOverInt32KeepsTheCommand(t *testing.T) {
	h := newHistory(orderA)
	h.total = 3_000_000_000 // 30,000,000.00 USD
	h.checkout()
	s := domain.Fold(immediate, h.events)
	tr := domain.Transition{To: domain.StatusInit, Cause: h.events[0], AccelByte: "orderCreated", Command: domain.CommandPlaceOrder}
	outs, err := domain.Intents(domain.DefaultOutboundConfig(), domain.StreamName(orderA), s, tr)
	if !errors.Is(err, domain.ErrAmountOverflow) {
		t.Fatalf("want ErrAmountOverflow, got %v", err)
	}
	var ue *domain.UnbuildableError
	if !errors.As(err, &ue) || ue.Kind != domain.KindAccelByte || ue.Name != "orderCreated" || ue.OrderID != orderA || ue.MessageID == "" {
		t.Fatalf("%#v", ue)
	}
	if len(outs) != 1 || outs[0].Name != domain.CommandPlaceOrder || outs[0].Order.Total != 3_000_000_000 {
		t.Fatalf("%+v", outs)
	}

	// Both unbuildable: two errors joined, nothing built.
	tr.Command = "NoSuchCommand"
	outs, err = domain.Intents(domain.DefaultOutboundConfig(), domain.StreamName(orderA), s, tr)
	j, ok := err.(interface{ Unwrap() []error })
	if len(outs) != 0 || !ok || len(j.Unwrap()) != 2 {
		t.Fatalf("%v %v", outs, err)
	}

	// A whole-transition problem stays a plain error.
	_, err = domain.Intents(domain.DefaultOutboundConfig(), "order-x", domain.State{}, tr)
	if !errors.Is(err, domain.ErrNoOrder) || errors.As(err, &ue) {
		t.Fatal(err)
	}
}
