package domain

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// FactType names a fact: the contract's message type name, which is also
// the stored event type.
type FactType string

// The facts. The first eleven arrive over RabbitMQ; the last two the ledger
// appends itself.
const (
	FactUserCheckedOut            FactType = "UserCheckedOutIntegrationEvent"
	FactBasketDeletedComplete     FactType = "BasketDeletedCompleteIntegrationEvent"
	FactBasketDeletedFailed       FactType = "BasketDeletedFailedIntegrationEvent"
	FactOrderCompleted            FactType = "OrderStatusChangedToCompleteIntegrationEvent"
	FactOrderCancelled            FactType = "OrderStatusChangedToCancelIntegrationEvent"
	FactPaymentRefunded           FactType = "PaymentRefundedIntegrationEvent"
	FactPaymentRefundFailed       FactType = "PaymentRefundFailedIntegrationEvent"
	FactPaymentChargeback         FactType = "PaymentChargebackIntegrationEvent"
	FactPaymentChargebackReversed FactType = "PaymentChargebackReversedIntegrationEvent"
	FactOrderFulfillFailed        FactType = "OrderFulfillFailedIntegrationEvent"
	FactOrderRefundRequested      FactType = "OrderRefundRequestedIntegrationEvent"
	FactPlacementTimedOut         FactType = "PlacementTimedOut"
	FactOrderRestated             FactType = "OrderRestated"
)

// AmountRule says whether a fact type carries an amount.
type AmountRule uint8

// Amount rules.
const (
	AmountNone     AmountRule = iota // never an amount
	AmountRequired                   // always an amount
	AmountOptional                   // an amount or none (a refund request: none is the whole order)
)

type factInfo struct {
	ns       string
	moneyKey string // JSON key of the amount: "totalMoney", "amount" or ""
	amount   AmountRule
	provider bool // providerReference required
	bookworm bool // a BookWorm event: basketId and totalMoney required
}

func infoOf(t FactType) (factInfo, bool) {
	switch t {
	case FactUserCheckedOut, FactBasketDeletedComplete, FactBasketDeletedFailed, FactOrderCompleted, FactOrderCancelled:
		return factInfo{ns: NamespaceBookWorm, moneyKey: "totalMoney", amount: AmountRequired, bookworm: true}, true
	case FactPaymentRefunded, FactPaymentRefundFailed, FactPaymentChargeback, FactPaymentChargebackReversed:
		return factInfo{ns: NamespaceLedger, moneyKey: "amount", amount: AmountRequired, provider: true}, true
	case FactOrderRefundRequested:
		return factInfo{ns: NamespaceLedger, moneyKey: "amount", amount: AmountOptional}, true
	case FactOrderFulfillFailed:
		return factInfo{ns: NamespaceLedger}, true
	case FactPlacementTimedOut, FactOrderRestated:
		return factInfo{}, true
	}
	return factInfo{}, false
}

// InboundTypes returns the eleven fact types consumed over RabbitMQ.
func InboundTypes() []FactType {
	return []FactType{FactUserCheckedOut, FactBasketDeletedComplete, FactBasketDeletedFailed, FactOrderCompleted,
		FactOrderCancelled, FactPaymentRefunded, FactPaymentRefundFailed, FactPaymentChargeback,
		FactPaymentChargebackReversed, FactOrderFulfillFailed, FactOrderRefundRequested}
}

// FactTypes returns all thirteen fact types.
func FactTypes() []FactType { return append(InboundTypes(), FactPlacementTimedOut, FactOrderRestated) }

// LookupFactType resolves a type name. Besides the bare name it accepts,
// for inbound types, the namespaced forms the envelopes use:
// "BookWorm.Contracts.X" (CloudEvents, Wolverine), "BookWorm.Contracts:X"
// (MassTransit exchange) and "urn:message:BookWorm.Contracts:X"
// (MassTransit messageType). The namespace must be the type's own.
func LookupFactType(name string) (FactType, bool) {
	if t := FactType(name); t.Known() {
		return t, true
	}
	rest, _ := strings.CutPrefix(name, "urn:message:")
	for _, ns := range [...]string{NamespaceBookWorm, NamespaceLedger} {
		after, ok := strings.CutPrefix(rest, ns)
		if !ok || after == "" || (after[0] != '.' && after[0] != ':') {
			continue
		}
		if rest != name && after[0] != ':' { // the URN form uses ':' only
			continue
		}
		t := FactType(after[1:])
		if info, ok := infoOf(t); ok && info.ns == ns {
			return t, true
		}
	}
	return "", false
}

// Known reports whether t is one of the thirteen fact types.
func (t FactType) Known() bool { _, ok := infoOf(t); return ok }

// MoneyKey is the JSON key of t's amount: "totalMoney" for BookWorm events,
// "amount" for payment facts and refund requests, "" for the others.
func (t FactType) MoneyKey() string { info, _ := infoOf(t); return info.moneyKey }

// AmountRule says whether t carries an amount.
func (t FactType) AmountRule() AmountRule { info, _ := infoOf(t); return info.amount }

// Namespace is "BookWorm.Contracts" for BookWorm events,
// "OrderLedger.Contracts" for payment facts and "" for the ledger's own facts
// and unknown types.
func (t FactType) Namespace() string { info, _ := infoOf(t); return info.ns }

// Inbound reports whether t is consumed over RabbitMQ.
func (t FactType) Inbound() bool { return t.Namespace() != "" }

// Fact is one validated business fact about one order.
type Fact struct {
	Type        FactType
	OrderID     string  // lower-case canonical UUID
	BasketID    string  // BookWorm events (lower-case canonical UUID); optional elsewhere
	FullName    *string // nil = absent/null
	Email       *string
	Amount      int64 // minor units: totalMoney (BookWorm) or amount (payment facts)
	HasAmount   bool
	ProviderRef string // payment facts: providerReference
	Reason      string
	At          time.Time    // when it happened, UTC
	Attempt     int          // PlacementTimedOut: 1-based time-out number
	Restated    *Restatement // OrderRestated only
}

// Restatement is what a replay changed: the status and money the world was
// told before (Previous*) and the re-derived ones.
type Restatement struct {
	Status, PreviousStatus Status
	Money                  Totals
	PreviousMoney          Totals
	ReplayID, Reason       string
}

// Field limits. BookWorm stores fullName in 100 and email in 255 characters.
const (
	maxNameBytes   = 400
	maxEmailBytes  = 320
	maxRefBytes    = 256
	maxReasonBytes = 2000
)

// Validate checks f against its type's contract. Errors match ErrInvalidFact
// and are *ValidationError.
func (f Fact) Validate() error {
	info, ok := infoOf(f.Type)
	if !ok {
		return &ValidationError{Field: "type", Problem: fmt.Sprintf("unknown fact type %q", clip(string(f.Type))), Err: ErrUnknownFactType}
	}
	if err := checkIDs(&f, info); err != nil {
		return err
	}
	if err := checkAmount(&f, info); err != nil {
		return err
	}
	if err := checkWhen(&f); err != nil {
		return err
	}
	if err := checkRestated(&f); err != nil {
		return err
	}
	return checkTexts(&f)
}

func checkIDs(f *Fact, info factInfo) error {
	if !isCanonicalUUID(f.OrderID) {
		return invalid("orderId", "must be a lower-case canonical UUID")
	}
	if f.OrderID == nilUUID {
		return invalid("orderId", "must not be the nil UUID")
	}
	if info.bookworm && f.BasketID == "" {
		return invalid("basketId", "required")
	}
	if f.BasketID != "" && !isCanonicalUUID(f.BasketID) {
		return invalid("basketId", "must be a lower-case canonical UUID")
	}
	return nil
}

func checkAmount(f *Fact, info factInfo) error {
	moneyKey := info.moneyKey
	if moneyKey == "" {
		moneyKey = "amount"
	}
	switch {
	case info.amount == AmountRequired && !f.HasAmount:
		return invalid(moneyKey, "required")
	case info.amount == AmountNone && (f.HasAmount || f.Amount != 0):
		return invalid(moneyKey, "not allowed for "+string(f.Type))
	case !f.HasAmount && f.Amount != 0:
		return invalid(moneyKey, "set without HasAmount")
	case f.Amount < 0:
		return invalidErr(moneyKey, fmt.Errorf("%w: %d minor units", ErrNegativeAmount, f.Amount))
	case f.HasAmount && !info.bookworm && f.Amount == 0:
		return invalid(moneyKey, "must be positive")
	}
	if info.provider && strings.TrimSpace(f.ProviderRef) == "" {
		return invalid("providerReference", "required")
	}
	return nil
}

// checkWhen checks the time and the time-out attempt.
func checkWhen(f *Fact) error {
	if f.At.IsZero() {
		return invalid("at", "required")
	}
	if y := f.At.UTC().Year(); y < 1 || y > 9999 {
		return invalid("at", "year out of range 1..9999")
	}
	if f.Type == FactPlacementTimedOut {
		if f.Attempt < 1 {
			return invalid("attempt", "must be 1 or more")
		}
	} else if f.Attempt != 0 {
		return invalid("attempt", "only for "+string(FactPlacementTimedOut))
	}
	return nil
}

func checkRestated(f *Fact) error {
	if f.Type != FactOrderRestated {
		if f.Restated != nil {
			return invalid("restated", "only for "+string(FactOrderRestated))
		}
		return nil
	}
	r := f.Restated
	if r == nil {
		return invalid("restated", "required")
	}
	if !r.Status.Valid() {
		return invalid("restated.status", fmt.Sprintf("unknown status %q", clip(string(r.Status))))
	}
	if r.PreviousStatus != "" && !r.PreviousStatus.Valid() {
		return invalid("restated.previousStatus", fmt.Sprintf("unknown status %q", clip(string(r.PreviousStatus))))
	}
	if err := checkText("restated.replayId", r.ReplayID, maxRefBytes); err != nil {
		return err
	}
	return checkText("restated.reason", r.Reason, maxReasonBytes)
}

func checkTexts(f *Fact) error {
	if f.FullName != nil {
		if err := checkText("fullName", *f.FullName, maxNameBytes); err != nil {
			return err
		}
	}
	if f.Email != nil {
		if err := checkText("email", *f.Email, maxEmailBytes); err != nil {
			return err
		}
	}
	if err := checkText("providerReference", f.ProviderRef, maxRefBytes); err != nil {
		return err
	}
	return checkText("reason", f.Reason, maxReasonBytes)
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return invalid(field, fmt.Sprintf("longer than %d bytes", max))
	}
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	return nil
}
