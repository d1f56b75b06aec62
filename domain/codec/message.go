package codec

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Inbound message bodies are read in one pass of the scanner, which also
// rejects duplicate keys in any letter case (encoding/json keeps the last
// one silently); BenchmarkDecodeMessage compares it with encoding/json.

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

// maxUnknownKeys bounds the keys a message may carry besides its own:
// finding a duplicate among them is quadratic.
const maxUnknownKeys = 64

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
// (in any letter case) rejected. Errors match domain.ErrInvalidFact.
func DecodeMessage(t domain.FactType, body []byte, cur domain.Currency, at time.Time) (domain.Fact, error) {
	return DecodeMessageAt(t, body, cur, at, time.Time{})
}

// DecodeMessageAt is DecodeMessage with the full time precedence: the
// envelope time, else the body's creationDate, else receivedAt.
func DecodeMessageAt(t domain.FactType, body []byte, cur domain.Currency, envelopeAt, receivedAt time.Time) (domain.Fact, error) {
	ns := t.Namespace()
	if ns == "" {
		return domain.Fact{}, &domain.ValidationError{Field: "type", Problem: fmt.Sprintf("%q is not an inbound message type", clip(string(t))), Err: domain.ErrUnknownFactType}
	}
	if err := cur.Validate(); err != nil {
		return domain.Fact{}, fmt.Errorf("decode %s: %w", t, err)
	}
	m := message{f: domain.Fact{Type: t}, moneyKey: t.MoneyKey()}
	if err := m.scan(body); err != nil {
		return domain.Fact{}, err
	}
	if err := m.ids(ns == domain.NamespaceBookWorm); err != nil {
		return domain.Fact{}, err
	}
	if err := m.money(t.AmountRule(), cur); err != nil {
		return domain.Fact{}, err
	}
	if err := m.when(envelopeAt, receivedAt); err != nil {
		return domain.Fact{}, err
	}
	if err := m.f.Validate(); err != nil {
		return domain.Fact{}, err
	}
	return m.f, nil
}

// message is an inbound body being read: the fact so far and the raw
// values still to check.
type message struct {
	f         domain.Fact
	moneyKey  string // "totalMoney" or "amount"; "" when the type has no amount
	seen      [numKeys]bool
	orderID   []byte
	basketID  []byte
	hasOrder  bool
	hasBasket bool
	moneyRaw  []byte // the number, or the string with its quotes
	created   []byte
	currency  []byte
}

func (m *message) scan(body []byte) error {
	s := scanner{data: body}
	if s.peek() != '{' {
		return invalid("", "body must be a JSON object")
	}
	s.pos++
	var unknown [][]byte // keys the ledger does not read; a local, so the compiler keeps it on the stack
	for first := true; ; first = false {
		key, more, err := s.member(first)
		if err != nil {
			return invalidErr("", err)
		}
		if !more {
			break
		}
		if k := messageKey(key, m.moneyKey); k >= 0 {
			if err := m.member(&s, k); err != nil {
				return err
			}
			continue
		}
		if err := checkUnknown(unknown, key); err != nil {
			return err
		}
		unknown = append(unknown, bytes.Clone(key))
		if _, err := s.value(0); err != nil {
			return invalidErr(string(key), err)
		}
	}
	if err := s.end(); err != nil {
		return invalidErr("", err)
	}
	return nil
}

// member reads the value of known key k.
func (m *message) member(s *scanner, k int) error {
	name := messageKeyNames[k]
	if k == keyMoney {
		name = m.moneyKey
	}
	if m.seen[k] {
		return invalid(name, "duplicate key")
	}
	m.seen[k] = true
	if k == keyMoney {
		return m.moneyValue(s, name)
	}
	return m.text(s, k, name)
}

// checkUnknown rejects a key the ledger does not read when it came before
// in another letter case, or when there are too many of them.
func checkUnknown(unknown [][]byte, key []byte) error {
	for _, u := range unknown {
		if bytes.EqualFold(u, key) {
			return invalid(string(key), "duplicate key")
		}
	}
	if len(unknown) == maxUnknownKeys {
		return invalid("", fmt.Sprintf("more than %d unknown properties", maxUnknownKeys))
	}
	return nil
}

// moneyValue keeps the money token: null, a number or a decimal string.
func (m *message) moneyValue(s *scanner, name string) error {
	switch c := s.peek(); {
	case c == 'n':
		if err := s.literal("null"); err != nil {
			return invalidErr(name, err)
		}
	case c == '"':
		raw, err := s.value(0)
		if err != nil {
			return invalidErr(name, err)
		}
		m.moneyRaw = raw
	case c == '-' || c >= '0' && c <= '9':
		raw, err := s.number()
		if err != nil {
			return invalidErr(name, err)
		}
		m.moneyRaw = raw
	default:
		return invalid(name, "must be a number or a decimal string")
	}
	return nil
}

// text reads a string-or-null key.
func (m *message) text(s *scanner, k int, name string) error {
	v, isNull, err := s.stringOrNull()
	if err != nil {
		return invalidErr(name, err)
	}
	if v == nil && !isNull {
		return invalid(name, "must be a string or null")
	}
	switch k {
	case keyOrderID:
		m.orderID, m.hasOrder = v, !isNull
	case keyBasketID:
		m.basketID, m.hasBasket = v, !isNull
	case keyFullName:
		if !isNull {
			str := string(v)
			m.f.FullName = &str
		}
	case keyEmail:
		if !isNull {
			str := string(v)
			m.f.Email = &str
		}
	case keyProviderRef:
		m.f.ProviderRef = string(v)
	case keyReason:
		m.f.Reason = string(v)
	case keyCreationDate:
		m.created = v
	case keyCurrency:
		m.currency = v
	}
	return nil
}

// ids checks the order and basket ids and puts them in canonical form.
func (m *message) ids(bookworm bool) error {
	if !m.hasOrder {
		return invalid("orderId", "required")
	}
	id, ok := domain.CanonicalUUID(m.orderID)
	if !ok {
		return invalid("orderId", "must be a UUID (8-4-4-4-12 hex)")
	}
	m.f.OrderID = id
	if m.hasBasket {
		b, ok := domain.CanonicalUUID(m.basketID)
		if !ok {
			return invalid("basketId", "must be a UUID (8-4-4-4-12 hex)")
		}
		m.f.BasketID = b
	} else if bookworm {
		return invalid("basketId", "required")
	}
	return nil
}

// money converts the amount to minor units of cur and checks the
// currency, when the body names one.
func (m *message) money(rule domain.AmountRule, cur domain.Currency) error {
	if m.moneyRaw != nil {
		v, err := domain.ParseAmount(m.moneyRaw, cur.Decimals)
		if err != nil {
			return invalidErr(m.moneyKey, err)
		}
		m.f.Amount, m.f.HasAmount = v, true
	} else if rule == domain.AmountRequired {
		return invalid(m.moneyKey, "required")
	}
	if m.currency != nil && !strings.EqualFold(string(m.currency), cur.Code) {
		return invalid("currency", fmt.Sprintf("%q, the ledger keeps %s", clip(m.currency), cur.Code))
	}
	return nil
}

// when sets the fact's time: the envelope's, else creationDate, else the
// receipt time.
func (m *message) when(envelopeAt, receivedAt time.Time) error {
	switch {
	case !envelopeAt.IsZero():
		m.f.At = envelopeAt.UTC()
	case m.created != nil:
		ts, err := domain.ParseTime(m.created)
		if err != nil {
			return invalidErr("creationDate", err)
		}
		m.f.At = ts
	case !receivedAt.IsZero():
		m.f.At = receivedAt.UTC()
	default:
		return invalid("creationDate", "required when the envelope carries no time")
	}
	m.f.At = m.f.At.Round(0) // drop a monotonic reading: facts compare by instant
	return nil
}
