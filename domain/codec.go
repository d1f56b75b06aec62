package domain

import (
	"fmt"
	"strconv"
	"time"
)

// The stored form of a fact (event data): a flat JSON object, camelCase,
// keys in a fixed order, money as exact decimal text plus minor units plus
// the currency they were recorded in. Minor units are authoritative;
// DecodeFact checks the text agrees with them. Example:
//
//	{"orderId":"…","basketId":"…","fullName":"John Doe","email":null,
//	 "totalMoney":"99.99","totalMoneyMinor":9999,"currency":"USD","decimals":2,
//	 "at":"2025-08-01T10:00:00.123Z"}

// EncodeFact renders f in its stored form. f must be valid.
func EncodeFact(f Fact, cur Currency) ([]byte, error) {
	if err := cur.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", f.Type, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", f.Type, err)
	}
	return appendFact(make([]byte, 0, 320), f, cur), nil
}

func appendFact(b []byte, f Fact, cur Currency) []byte {
	info, _ := infoOf(f.Type)
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
		key := info.moneyKey
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':', '"')
		b = appendMinor(b, f.Amount, cur.Decimals)
		b = append(b, '"', ',', '"')
		b = append(b, key...)
		b = append(b, `Minor":`...)
		b = strconv.AppendInt(b, f.Amount, 10)
		b = append(b, `,"currency":`...)
		b = appendString(b, cur.Code)
		b = append(b, `,"decimals":`...)
		b = strconv.AppendInt(b, int64(cur.Decimals), 10)
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
	if r := f.Restated; r != nil {
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
		b = append(b, '}')
	}
	b = append(b, `,"at":"`...)
	b = f.At.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"', '}')
}

func appendTotals(b []byte, t Totals) []byte {
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
// older binaries read newer data. Errors match ErrInvalidFact.
func DecodeFact(eventType string, data []byte) (Fact, error) {
	t := FactType(eventType)
	info, ok := infoOf(t)
	if !ok {
		return Fact{}, &ValidationError{Field: "type", Problem: fmt.Sprintf("unknown fact type %q", clip(eventType)), Err: ErrUnknownFactType}
	}
	f := Fact{Type: t}
	s := scanner{data: data}
	if s.peek() != '{' {
		return Fact{}, invalid("", "stored fact must be a JSON object")
	}
	s.pos++
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
	var (
		seen      uint32
		moneyText []byte
		decimals  int64
		at        []byte
	)
	for first := true; ; first = false {
		key, more, err := s.member(first)
		if err != nil {
			return Fact{}, invalidErr("", err)
		}
		if !more {
			break
		}
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
			switch {
			case info.moneyKey != "" && string(key) == info.moneyKey:
				bit = bMoneyText
			case info.moneyKey != "" && len(key) == len(info.moneyKey)+5 && string(key[:len(info.moneyKey)]) == info.moneyKey && string(key[len(info.moneyKey):]) == "Minor":
				bit = bMoneyMinor
			default:
				if _, err := s.value(0); err != nil {
					return Fact{}, invalidErr(string(key), err)
				}
				continue
			}
		}
		if seen&bit != 0 {
			return Fact{}, invalid(string(key), "duplicate key")
		}
		seen |= bit
		switch bit {
		case bMoneyMinor, bDecimals, bAttempt:
			n, err := s.int64()
			if err != nil {
				return Fact{}, invalidErr(string(key), err)
			}
			switch bit {
			case bMoneyMinor:
				f.Amount, f.HasAmount = n, true
			case bDecimals:
				decimals = n
			default:
				if n > 1<<31-1 || n < 0 {
					return Fact{}, invalid("attempt", "out of range")
				}
				f.Attempt = int(n)
			}
			continue
		case bRestated:
			r, err := s.restatement()
			if err != nil {
				return Fact{}, err
			}
			f.Restated = r
			continue
		}
		v, isNull, err := s.stringOrNull()
		if err != nil {
			return Fact{}, invalidErr(string(key), err)
		}
		if isNull && (bit == bName || bit == bEmail) {
			continue // null and absent are the same
		}
		if v == nil {
			return Fact{}, invalid(string(key), "must be a string")
		}
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
			moneyText = v
		case bRef:
			f.ProviderRef = string(v)
		case bReason:
			f.Reason = string(v)
		case bAt:
			at = v
		}
	}
	if err := s.end(); err != nil {
		return Fact{}, invalidErr("", err)
	}
	if seen&bMoneyText != 0 && seen&bMoneyMinor == 0 {
		return Fact{}, invalid(info.moneyKey+"Minor", "required with "+info.moneyKey)
	}
	if seen&bMoneyText != 0 {
		if seen&bDecimals == 0 {
			return Fact{}, invalid("decimals", "required with "+info.moneyKey)
		}
		if decimals < 0 || decimals > MaxDecimals {
			return Fact{}, invalid("decimals", "out of range 0..18")
		}
		v, err := parseDecimal(moneyText, int(decimals), false)
		if err != nil {
			return Fact{}, invalidErr(info.moneyKey, err)
		}
		if v != f.Amount {
			return Fact{}, invalid(info.moneyKey, "decimal text and minor units disagree")
		}
	}
	if at == nil {
		return Fact{}, invalid("at", "required")
	}
	ts, err := ParseTime(at)
	if err != nil {
		return Fact{}, invalidErr("at", err)
	}
	f.At = ts
	if err := f.Validate(); err != nil {
		return Fact{}, err
	}
	return f, nil
}

// int64 reads an integer JSON number (no fraction or exponent).
func (s *scanner) int64() (int64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, s.fail("expected an integer")
	}
	raw, err := s.number()
	if err != nil {
		return 0, err
	}
	neg := raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	var v uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, s.fail("expected an integer")
		}
		if v > (1<<63-uint64(c-'0'))/10 {
			return 0, s.fail("integer out of range")
		}
		v = v*10 + uint64(c-'0')
	}
	if neg {
		return -int64(v), nil // v <= 1<<63; -int64(1<<63) wraps to MinInt64, which is right
	}
	if v > 1<<63-1 {
		return 0, s.fail("integer out of range")
	}
	return int64(v), nil
}

func (s *scanner) restatement() (*Restatement, error) {
	if s.peek() != '{' {
		return nil, invalid("restated", "must be an object")
	}
	s.pos++
	r := &Restatement{}
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
			r.Status = Status(v)
		case 2:
			r.PreviousStatus = Status(v)
		case 16:
			r.ReplayID = string(v)
		case 32:
			r.Reason = string(v)
		}
	}
	return r, nil
}

func (s *scanner) totals() (Totals, error) {
	var t Totals
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
