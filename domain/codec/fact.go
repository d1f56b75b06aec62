package codec

import (
	"fmt"
	"strconv"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// The stored form of a fact (event data): a flat JSON object, camelCase,
// keys in a fixed order, money as exact decimal text plus minor units plus
// the currency they were recorded in. Minor units are authoritative;
// DecodeFact checks the text agrees with them. Example:
//
//	{"orderId":"…","basketId":"…","fullName":"John Doe","email":null,
//	 "totalMoney":"99.99","totalMoneyMinor":9999,"currency":"USD","decimals":2,
//	 "at":"2025-08-01T10:00:00.123Z"}
//
// Replay decodes every stored fact, so the reader is hand-written on the
// scanner (see BenchmarkFoldHistory in the domain package).

// EncodeFact renders f in its stored form. f must be valid.
func EncodeFact(f domain.Fact, cur domain.Currency) ([]byte, error) {
	if err := cur.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", f.Type, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", f.Type, err)
	}
	return appendFact(make([]byte, 0, 320), f, cur), nil
}

func appendFact(b []byte, f domain.Fact, cur domain.Currency) []byte {
	b = append(b, `{"orderId":`...)
	b = appendString(b, f.OrderID)
	if f.BasketID != "" {
		b = append(b, `,"basketId":`...)
		b = appendString(b, f.BasketID)
	}
	if f.FullName != nil {
		b = append(b, `,"fullName":`...)
		b = appendString(b, *f.FullName)
	}
	if f.Email != nil {
		b = append(b, `,"email":`...)
		b = appendString(b, *f.Email)
	}
	if f.HasAmount {
		b = appendMoney(b, f.Type.MoneyKey(), f.Amount, cur)
	}
	if f.ProviderRef != "" {
		b = append(b, `,"providerReference":`...)
		b = appendString(b, f.ProviderRef)
	}
	if f.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, f.Reason)
	}
	if f.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(f.Attempt), 10)
	}
	if f.Restated != nil {
		b = appendRestatement(b, f.Restated)
	}
	b = append(b, `,"at":"`...)
	b = f.At.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"', '}')
}

// appendMoney writes the amount as text and minor units, and the currency.
func appendMoney(b []byte, key string, minor int64, cur domain.Currency) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':', '"')
	b = domain.AppendMinor(b, minor, cur.Decimals)
	b = append(b, '"', ',', '"')
	b = append(b, key...)
	b = append(b, `Minor":`...)
	b = strconv.AppendInt(b, minor, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, cur.Code)
	b = append(b, `,"decimals":`...)
	return strconv.AppendInt(b, int64(cur.Decimals), 10)
}

func appendRestatement(b []byte, r *domain.Restatement) []byte {
	b = append(b, `,"restated":{"status":`...)
	b = appendString(b, string(r.Status))
	b = append(b, `,"previousStatus":`...)
	b = appendString(b, string(r.PreviousStatus))
	b = append(b, `,"money":`...)
	b = appendTotals(b, r.Money)
	b = append(b, `,"previousMoney":`...)
	b = appendTotals(b, r.PreviousMoney)
	b = append(b, `,"replayId":`...)
	b = appendString(b, r.ReplayID)
	b = append(b, `,"reason":`...)
	b = appendString(b, r.Reason)
	return append(b, '}')
}

func appendTotals(b []byte, t domain.Totals) []byte {
	b = append(b, `{"captured":`...)
	b = strconv.AppendInt(b, t.Captured, 10)
	b = append(b, `,"refunded":`...)
	b = strconv.AppendInt(b, t.Refunded, 10)
	b = append(b, `,"chargedBack":`...)
	b = strconv.AppendInt(b, t.ChargedBack, 10)
	b = append(b, `,"reversed":`...)
	b = strconv.AppendInt(b, t.Reversed, 10)
	b = append(b, `,"net":`...)
	b = strconv.AppendInt(b, t.Net, 10)
	return append(b, '}')
}

// DecodeFact reads a stored fact of the given event type. Keys are matched
// exactly (the stored form is the ledger's own); unknown keys are skipped so
// older binaries read newer data. Errors match domain.ErrInvalidFact.
func DecodeFact(eventType string, data []byte) (domain.Fact, error) {
	f, _, err := decodeStored(eventType, data)
	return f, err
}

// decodeStored is DecodeFact that also returns the currency stored with
// the amount (zero without one).
func decodeStored(eventType string, data []byte) (domain.Fact, domain.Currency, error) {
	t := domain.FactType(eventType)
	if !t.Known() {
		return domain.Fact{}, domain.Currency{}, &domain.ValidationError{Field: "type", Problem: fmt.Sprintf("unknown fact type %q", clip(eventType)), Err: domain.ErrUnknownFactType}
	}
	sf := storedFact{f: domain.Fact{Type: t}, moneyKey: t.MoneyKey()}
	f, err := sf.read(data)
	return f, domain.Currency{Code: string(sf.currency), Decimals: int(sf.decimals)}, err
}

// read scans data into sf and finishes the fact.
func (sf *storedFact) read(data []byte) (domain.Fact, error) {
	s := scanner{data: data}
	if s.peek() != '{' {
		return domain.Fact{}, invalid("", "stored fact must be a JSON object")
	}
	s.pos++
	for first := true; ; first = false {
		key, more, err := s.member(first)
		if err != nil {
			return domain.Fact{}, invalidErr("", err)
		}
		if !more {
			break
		}
		if err := sf.member(&s, key); err != nil {
			return domain.Fact{}, err
		}
	}
	if err := s.end(); err != nil {
		return domain.Fact{}, invalidErr("", err)
	}
	return sf.finish()
}

// The stored keys, one bit each, to find duplicates.
const (
	bOrder = 1 << iota
	bBasket
	bName
	bEmail
	bMoneyText
	bMoneyMinor
	bCurrency
	bDecimals
	bRef
	bReason
	bAttempt
	bRestated
	bAt
)

// storedFact is a stored fact being read.
type storedFact struct {
	f         domain.Fact
	moneyKey  string // "totalMoney", "amount" or "" (the type has no amount)
	seen      uint32
	moneyText []byte
	currency  []byte
	decimals  int64
	at        []byte
}

// member reads the value of one key.
func (sf *storedFact) member(s *scanner, key []byte) error {
	var bit uint32
	switch string(key) {
	case "orderId":
		bit = bOrder
	case "basketId":
		bit = bBasket
	case "fullName":
		bit = bName
	case "email":
		bit = bEmail
	case "currency":
		bit = bCurrency
	case "decimals":
		bit = bDecimals
	case "providerReference":
		bit = bRef
	case "reason":
		bit = bReason
	case "attempt":
		bit = bAttempt
	case "restated":
		bit = bRestated
	case "at":
		bit = bAt
	default:
		mk := sf.moneyKey
		switch {
		case mk != "" && string(key) == mk:
			bit = bMoneyText
		case mk != "" && len(key) == len(mk)+5 && string(key[:len(mk)]) == mk && string(key[len(mk):]) == "Minor":
			bit = bMoneyMinor
		default:
			if _, err := s.value(0); err != nil {
				return invalidErr(string(key), err)
			}
			return nil
		}
	}
	if sf.seen&bit != 0 {
		return invalid(string(key), "duplicate key")
	}
	sf.seen |= bit
	switch bit {
	case bMoneyMinor, bDecimals, bAttempt:
		return sf.integer(s, key, bit)
	case bRestated:
		r, err := s.restatement()
		if err != nil {
			return err
		}
		sf.f.Restated = r
		return nil
	}
	return sf.text(s, key, bit)
}

func (sf *storedFact) integer(s *scanner, key []byte, bit uint32) error {
	n, err := s.int64()
	if err != nil {
		return invalidErr(string(key), err)
	}
	switch bit {
	case bMoneyMinor:
		sf.f.Amount, sf.f.HasAmount = n, true
	case bDecimals:
		sf.decimals = n
	default:
		if n > 1<<31-1 || n < 0 {
			return invalid("attempt", "out of range")
		}
		sf.f.Attempt = int(n)
	}
	return nil
}

func (sf *storedFact) text(s *scanner, key []byte, bit uint32) error {
	v, isNull, err := s.stringOrNull()
	if err != nil {
		return invalidErr(string(key), err)
	}
	if isNull && (bit == bName || bit == bEmail) {
		return nil // null and absent are the same
	}
	if v == nil {
		return invalid(string(key), "must be a string")
	}
	f := &sf.f
	switch bit {
	case bOrder:
		f.OrderID = string(v)
	case bBasket:
		f.BasketID = string(v)
	case bName:
		str := string(v)
		f.FullName = &str
	case bEmail:
		str := string(v)
		f.Email = &str
	case bMoneyText:
		sf.moneyText = v
	case bCurrency:
		sf.currency = v
	case bRef:
		f.ProviderRef = string(v)
	case bReason:
		f.Reason = string(v)
	case bAt:
		sf.at = v
	}
	return nil
}

// finish checks that the money text agrees with the minor units, reads the
// time and validates the fact.
func (sf *storedFact) finish() (domain.Fact, error) {
	mk := sf.moneyKey
	if sf.seen&bMoneyText != 0 {
		if sf.seen&bMoneyMinor == 0 {
			return domain.Fact{}, invalid(mk+"Minor", "required with "+mk)
		}
		if sf.seen&bDecimals == 0 {
			return domain.Fact{}, invalid("decimals", "required with "+mk)
		}
		if sf.decimals < 0 || sf.decimals > domain.MaxDecimals {
			return domain.Fact{}, invalid("decimals", "out of range 0..18")
		}
		v, err := domain.ParseDecimal(sf.moneyText, int(sf.decimals))
		if err != nil {
			return domain.Fact{}, invalidErr(mk, err)
		}
		if v != sf.f.Amount {
			return domain.Fact{}, invalid(mk, "decimal text and minor units disagree")
		}
	}
	if sf.at == nil {
		return domain.Fact{}, invalid("at", "required")
	}
	ts, err := domain.ParseTime(sf.at)
	if err != nil {
		return domain.Fact{}, invalidErr("at", err)
	}
	sf.f.At = ts
	if err := sf.f.Validate(); err != nil {
		return domain.Fact{}, err
	}
	return sf.f, nil
}

func (s *scanner) restatement() (*domain.Restatement, error) {
	if s.peek() != '{' {
		return nil, invalid("restated", "must be an object")
	}
	s.pos++
	r := &domain.Restatement{}
	var seen uint8
	for first := true; ; first = false {
		key, more, err := s.member(first)
		if err != nil {
			return nil, invalidErr("restated", err)
		}
		if !more {
			break
		}
		var bit uint8
		switch string(key) {
		case "status":
			bit = 1
		case "previousStatus":
			bit = 2
		case "money":
			bit = 4
		case "previousMoney":
			bit = 8
		case "replayId":
			bit = 16
		case "reason":
			bit = 32
		default:
			if _, err := s.value(0); err != nil {
				return nil, invalidErr("restated."+string(key), err)
			}
			continue
		}
		if seen&bit != 0 {
			return nil, invalid("restated."+string(key), "duplicate key")
		}
		seen |= bit
		if bit == 4 || bit == 8 {
			t, err := s.totals()
			if err != nil {
				return nil, invalidErr("restated."+string(key), err)
			}
			if bit == 4 {
				r.Money = t
			} else {
				r.PreviousMoney = t
			}
			continue
		}
		v, _, err := s.stringOrNull()
		if err != nil || v == nil {
			return nil, invalid("restated."+string(key), "must be a string")
		}
		switch bit {
		case 1:
			r.Status = domain.Status(v)
		case 2:
			r.PreviousStatus = domain.Status(v)
		case 16:
			r.ReplayID = string(v)
		case 32:
			r.Reason = string(v)
		}
	}
	return r, nil
}

func (s *scanner) totals() (domain.Totals, error) {
	var t domain.Totals
	if s.peek() != '{' {
		return t, s.fail("expected an object")
	}
	s.pos++
	var seen uint8
	for first := true; ; first = false {
		key, more, err := s.member(first)
		if err != nil {
			return t, err
		}
		if !more {
			return t, nil
		}
		var dst *int64
		var bit uint8
		switch string(key) {
		case "captured":
			dst, bit = &t.Captured, 1
		case "refunded":
			dst, bit = &t.Refunded, 2
		case "chargedBack":
			dst, bit = &t.ChargedBack, 4
		case "reversed":
			dst, bit = &t.Reversed, 8
		case "net":
			dst, bit = &t.Net, 16
		default:
			if _, err := s.value(0); err != nil {
				return t, err
			}
			continue
		}
		if seen&bit != 0 {
			return t, fmt.Errorf("%w: duplicate key %q", errSyntax, key)
		}
		seen |= bit
		if *dst, err = s.int64(); err != nil {
			return t, err
		}
	}
}
