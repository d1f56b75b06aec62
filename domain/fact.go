package domain

import (
	"bytes"
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

type amountRule uint8

const (
	amountNone amountRule = iota
	amountRequired
	amountOptional
)

type factInfo struct {
	ns       string
	moneyKey string // JSON key of the amount: "totalMoney", "amount" or ""
	amount   amountRule
	provider bool // providerReference required
	bookworm bool // a BookWorm event: basketId and totalMoney required
}

func infoOf(t FactType) (factInfo, bool) {
	switch t {
	case FactUserCheckedOut, FactBasketDeletedComplete, FactBasketDeletedFailed, FactOrderCompleted, FactOrderCancelled:
		return factInfo{ns: NamespaceBookWorm, moneyKey: "totalMoney", amount: amountRequired, bookworm: true}, true
	case FactPaymentRefunded, FactPaymentRefundFailed, FactPaymentChargeback, FactPaymentChargebackReversed:
		return factInfo{ns: NamespaceLedger, moneyKey: "amount", amount: amountRequired, provider: true}, true
	case FactOrderRefundRequested:
		return factInfo{ns: NamespaceLedger, moneyKey: "amount", amount: amountOptional}, true
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
	if t := FactType(name); t.known() {
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

func (t FactType) known() bool { _, ok := infoOf(t); return ok }

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
	maxUnknownKeys = 64 // duplicate detection is quadratic in them
)

// Validate checks f against its type's contract. Errors match ErrInvalidFact
// and are *ValidationError.
func (f Fact) Validate() error {
	info, ok := infoOf(f.Type)
	if !ok {
		return &ValidationError{Field: "type", Problem: fmt.Sprintf("unknown fact type %q", clip(string(f.Type))), Err: ErrUnknownFactType}
	}
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
	moneyKey := info.moneyKey
	if moneyKey == "" {
		moneyKey = "amount"
	}
	switch {
	case info.amount == amountRequired && !f.HasAmount:
		return invalid(moneyKey, "required")
	case info.amount == amountNone && (f.HasAmount || f.Amount != 0):
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
	if f.Type == FactOrderRestated {
		if f.Restated == nil {
			return invalid("restated", "required")
		}
		if !f.Restated.Status.Valid() {
			return invalid("restated.status", fmt.Sprintf("unknown status %q", clip(string(f.Restated.Status))))
		}
		if f.Restated.PreviousStatus != "" && !f.Restated.PreviousStatus.Valid() {
			return invalid("restated.previousStatus", fmt.Sprintf("unknown status %q", clip(string(f.Restated.PreviousStatus))))
		}
		if err := checkText("restated.replayId", f.Restated.ReplayID, maxRefBytes); err != nil {
			return err
		}
		if err := checkText("restated.reason", f.Restated.Reason, maxReasonBytes); err != nil {
			return err
		}
	} else if f.Restated != nil {
		return invalid("restated", "only for "+string(FactOrderRestated))
	}
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

// Message keys, matched case-insensitively (lower-case here).
const (
	keyOrderID = iota
	keyBasketID
	keyFullName
	keyEmail
	keyMoney
	keyProviderRef
	keyReason
	keyCreationDate
	keyCurrency
	numKeys
)

var messageKeyNames = [numKeys]string{"orderId", "basketId", "fullName", "email", "", "providerReference", "reason", "creationDate", "currency"}

func messageKey(key []byte, moneyKey string) int {
	switch len(key) {
	case 5:
		if equalFoldASCII(key, "email") {
			return keyEmail
		}
	case 6:
		if equalFoldASCII(key, "reason") {
			return keyReason
		}
		if moneyKey == "amount" && equalFoldASCII(key, "amount") {
			return keyMoney
		}
	case 7:
		if equalFoldASCII(key, "orderid") {
			return keyOrderID
		}
	case 8:
		if equalFoldASCII(key, "basketid") {
			return keyBasketID
		}
		if equalFoldASCII(key, "fullname") {
			return keyFullName
		}
		if equalFoldASCII(key, "currency") {
			return keyCurrency
		}
	case 10:
		if moneyKey == "totalMoney" && equalFoldASCII(key, "totalmoney") {
			return keyMoney
		}
	case 12:
		if equalFoldASCII(key, "creationdate") {
			return keyCreationDate
		}
	case 17:
		if equalFoldASCII(key, "providerreference") {
			return keyProviderRef
		}
	}
	return -1
}

// DecodeMessage turns an inbound message body (the BookWorm or payment JSON
// object, camelCase, keys matched case-insensitively like MassTransit) into
// a validated Fact. at is the envelope's time (MassTransit sentTime,
// CloudEvents time); when it is zero the body's creationDate is used, and
// without either the message is rejected. Use DecodeMessageAt to fall back
// to the receipt time instead. Unknown keys are ignored, duplicate keys
// (in any letter case) rejected. Errors match ErrInvalidFact.
func DecodeMessage(t FactType, body []byte, cur Currency, at time.Time) (Fact, error) {
	return DecodeMessageAt(t, body, cur, at, time.Time{})
}

// DecodeMessageAt is DecodeMessage with the full time precedence: the
// envelope time, else the body's creationDate, else receivedAt.
func DecodeMessageAt(t FactType, body []byte, cur Currency, envelopeAt, receivedAt time.Time) (Fact, error) {
	info, ok := infoOf(t)
	if !ok || info.ns == "" {
		return Fact{}, &ValidationError{Field: "type", Problem: fmt.Sprintf("%q is not an inbound message type", clip(string(t))), Err: ErrUnknownFactType}
	}
	if err := cur.Validate(); err != nil {
		return Fact{}, fmt.Errorf("decode %s: %w", t, err)
	}
	s := scanner{data: body}
	if s.peek() != '{' {
		return Fact{}, invalid("", "body must be a JSON object")
	}
	s.pos++
	var (
		seen      [numKeys]bool
		unknown   [][]byte
		f         = Fact{Type: t}
		orderID   []byte
		basketID  []byte
		moneyRaw  []byte
		hasOrder  bool
		hasBasket bool
		created   []byte
		currency  []byte
	)
	for first := true; ; first = false {
		key, more, err := s.member(first)
		if err != nil {
			return Fact{}, invalidErr("", err)
		}
		if !more {
			break
		}
		k := messageKey(key, info.moneyKey)
		if k < 0 {
			for _, u := range unknown {
				if bytes.EqualFold(u, key) {
					return Fact{}, invalid(string(key), "duplicate key")
				}
			}
			if len(unknown) == maxUnknownKeys {
				return Fact{}, invalid("", fmt.Sprintf("more than %d unknown properties", maxUnknownKeys))
			}
			unknown = append(unknown, bytes.Clone(key))
			if _, err := s.value(0); err != nil {
				return Fact{}, invalidErr(string(key), err)
			}
			continue
		}
		name := messageKeyNames[k]
		if k == keyMoney {
			name = info.moneyKey
		}
		if seen[k] {
			return Fact{}, invalid(name, "duplicate key")
		}
		seen[k] = true
		if k == keyMoney {
			switch c := s.peek(); {
			case c == 'n':
				if err := s.literal("null"); err != nil {
					return Fact{}, invalidErr(name, err)
				}
			case c == '"':
				raw, err := s.value(0)
				if err != nil {
					return Fact{}, invalidErr(name, err)
				}
				moneyRaw = raw
			case c == '-' || c >= '0' && c <= '9':
				raw, err := s.number()
				if err != nil {
					return Fact{}, invalidErr(name, err)
				}
				moneyRaw = raw
			default:
				return Fact{}, invalid(name, "must be a number or a decimal string")
			}
			continue
		}
		v, isNull, err := s.stringOrNull()
		if err != nil {
			return Fact{}, invalidErr(name, err)
		}
		if v == nil && !isNull {
			return Fact{}, invalid(name, "must be a string or null")
		}
		switch k {
		case keyOrderID:
			orderID, hasOrder = v, !isNull
		case keyBasketID:
			basketID, hasBasket = v, !isNull
		case keyFullName:
			if !isNull {
				str := string(v)
				f.FullName = &str
			}
		case keyEmail:
			if !isNull {
				str := string(v)
				f.Email = &str
			}
		case keyProviderRef:
			f.ProviderRef = string(v)
		case keyReason:
			f.Reason = string(v)
		case keyCreationDate:
			created = v
		case keyCurrency:
			currency = v
		}
	}
	if err := s.end(); err != nil {
		return Fact{}, invalidErr("", err)
	}

	if !hasOrder {
		return Fact{}, invalid("orderId", "required")
	}
	id, ok := canonicalUUID(orderID)
	if !ok {
		return Fact{}, invalid("orderId", "must be a UUID (8-4-4-4-12 hex)")
	}
	f.OrderID = id
	if hasBasket {
		b, ok := canonicalUUID(basketID)
		if !ok {
			return Fact{}, invalid("basketId", "must be a UUID (8-4-4-4-12 hex)")
		}
		f.BasketID = b
	} else if info.bookworm {
		return Fact{}, invalid("basketId", "required")
	}
	if moneyRaw != nil {
		v, err := ParseAmount(moneyRaw, cur.Decimals)
		if err != nil {
			return Fact{}, invalidErr(info.moneyKey, err)
		}
		f.Amount, f.HasAmount = v, true
	} else if info.amount == amountRequired {
		return Fact{}, invalid(info.moneyKey, "required")
	}
	if currency != nil && !strings.EqualFold(string(currency), cur.Code) {
		return Fact{}, invalid("currency", fmt.Sprintf("%q, the ledger keeps %s", clip(currency), cur.Code))
	}
	switch {
	case !envelopeAt.IsZero():
		f.At = envelopeAt.UTC()
	case created != nil:
		ts, err := ParseTime(created)
		if err != nil {
			return Fact{}, invalidErr("creationDate", err)
		}
		f.At = ts
	case !receivedAt.IsZero():
		f.At = receivedAt.UTC()
	default:
		return Fact{}, invalid("creationDate", "required when the envelope carries no time")
	}
	f.At = f.At.Round(0) // drop a monotonic reading: facts compare by instant
	if err := f.Validate(); err != nil {
		return Fact{}, err
	}
	return f, nil
}

// stringOrNull reads a string (returned) or null (isNull). For any other
// value it returns nil, false after skipping it.
func (s *scanner) stringOrNull() (v []byte, isNull bool, err error) {
	switch s.peek() {
	case '"':
		v, err = s.str()
		if v == nil && err == nil {
			v = []byte{}
		}
		return v, false, err
	case 'n':
		return nil, true, s.literal("null")
	}
	_, err = s.value(0)
	return nil, false, err
}
