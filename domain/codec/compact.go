package codec

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// The compact stored form of a fact, for a store that keeps its own
// format (the embedded one): the same fields as the JSON form in binary,
// ids as 16 bytes. A store keeps it only for data that EncodeFact's JSON
// reproduces byte for byte (CompactFact), so AppendFactJSON gives back
// exactly what was appended; replay reads it with DecodeCompactFact,
// several times faster than the JSON.
//
//	[0]   compactVersion
//	      uvarint flags (cBasket … cRestated)
//	      16 bytes order id, [16 bytes basket id]
//	      [str full name] [str email]
//	      [varint minor units, str currency, uvarint decimals]
//	      [str provider reference] [str reason] [uvarint attempt]
//	      [str status, str previous status, 10 varint totals, str replay id, str reason]
//	      varint Unix seconds, uvarint nanoseconds of at
//
// str is uvarint length + bytes.
const compactVersion = 0x01

const (
	cBasket = 1 << iota
	cName
	cEmail
	cAmount
	cRef
	cReason
	cAttempt
	cRestated
)

var errCompact = errors.New("corrupt compact fact")

// CompactFact returns the compact form of a fact stored as data, and
// false when data is not exactly the JSON EncodeFact writes for it
// (invalid, written by another program, or by an older encoder).
func CompactFact(eventType string, data []byte) ([]byte, bool) {
	f, cur, err := decodeStored(eventType, data)
	if err != nil {
		return nil, false
	}
	if string(appendFact(make([]byte, 0, len(data)), f, cur)) != string(data) {
		return nil, false
	}
	return appendCompact(make([]byte, 0, 96), f, cur), true
}

func appendCompact(b []byte, f domain.Fact, cur domain.Currency) []byte {
	var flags uint64
	for _, c := range [...]struct {
		on  bool
		bit uint64
	}{{f.BasketID != "", cBasket}, {f.FullName != nil, cName}, {f.Email != nil, cEmail}, {f.HasAmount, cAmount},
		{f.ProviderRef != "", cRef}, {f.Reason != "", cReason}, {f.Attempt != 0, cAttempt}, {f.Restated != nil, cRestated}} {
		if c.on {
			flags |= c.bit
		}
	}
	b = append(b, compactVersion)
	b = binary.AppendUvarint(b, flags)
	b = appendUUID(b, f.OrderID)
	if flags&cBasket != 0 {
		b = appendUUID(b, f.BasketID)
	}
	if f.FullName != nil {
		b = appendStr(b, *f.FullName)
	}
	if f.Email != nil {
		b = appendStr(b, *f.Email)
	}
	if f.HasAmount {
		b = binary.AppendVarint(b, f.Amount)
		b = appendStr(b, cur.Code)
		b = binary.AppendUvarint(b, uint64(cur.Decimals))
	}
	if f.ProviderRef != "" {
		b = appendStr(b, f.ProviderRef)
	}
	if f.Reason != "" {
		b = appendStr(b, f.Reason)
	}
	if f.Attempt != 0 {
		b = binary.AppendUvarint(b, uint64(f.Attempt))
	}
	if r := f.Restated; r != nil {
		b = appendStr(b, string(r.Status))
		b = appendStr(b, string(r.PreviousStatus))
		for _, t := range [...]domain.Totals{r.Money, r.PreviousMoney} {
			for _, v := range [...]int64{t.Captured, t.Refunded, t.ChargedBack, t.Reversed, t.Net} {
				b = binary.AppendVarint(b, v)
			}
		}
		b = appendStr(b, r.ReplayID)
		b = appendStr(b, r.Reason)
	}
	at := f.At.UTC()
	return binary.AppendUvarint(binary.AppendVarint(b, at.Unix()), uint64(at.Nanosecond()))
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendUUID appends the 16 bytes of a canonical UUID (CompactFact only
// sees validated ones).
func appendUUID(b []byte, s string) []byte {
	var id [16]byte
	j := 0
	for i := 0; i < len(s) && j < 16; i++ {
		if s[i] == '-' {
			continue
		}
		id[j] = unhex(s[i])<<4 | unhex(s[i+1])
		i++
		j++
	}
	return append(b, id[:]...)
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// DecodeCompactFact reads a compact stored fact of the given event type.
// Errors match domain.ErrInvalidFact. The fact is not validated again:
// CompactFact only gave a compact form to a valid fact, and the ids it
// reads back are canonical by construction; what a damaged record can
// break (version, flags, lengths, the time) is checked here.
func DecodeCompactFact(eventType string, b []byte) (domain.Fact, error) {
	f, _, err := decodeCompact(eventType, b)
	if err != nil {
		return domain.Fact{}, err
	}
	return f, nil
}

// AppendFactJSON appends the JSON stored form of a compact fact: the
// bytes CompactFact was given.
func AppendFactJSON(dst []byte, eventType string, b []byte) ([]byte, error) {
	f, cur, err := decodeCompact(eventType, b)
	if err != nil {
		return dst, err
	}
	return appendFact(dst, f, cur), nil
}

func decodeCompact(eventType string, b []byte) (domain.Fact, domain.Currency, error) {
	t := domain.FactType(eventType)
	if !t.Known() {
		return domain.Fact{}, domain.Currency{}, invalidErr("type", domain.ErrUnknownFactType)
	}
	r := creader{NewReader(b, errCompact)}
	if r.Byte() != compactVersion {
		return domain.Fact{}, domain.Currency{}, invalidErr("", errCompact)
	}
	f := domain.Fact{Type: t}
	var cur domain.Currency
	flags := r.Uvarint()
	// The fact's strings share one allocation: ids first, then the texts.
	var tmp [256]byte
	buf := r.uuids(tmp[:0], 1+int(flags&cBasket))
	var name, email, ref, reason []byte
	if flags&cName != 0 {
		name = r.Bytes()
	}
	if flags&cEmail != 0 {
		email = r.Bytes()
	}
	if flags&cAmount != 0 {
		f.Amount, f.HasAmount = r.Varint(), true
		cur.Code = r.currency()
		cur.Decimals = int(r.Uvarint())
	}
	if flags&cRef != 0 {
		ref = r.Bytes()
	}
	if flags&cReason != 0 {
		reason = r.Bytes()
	}
	if flags&cAttempt != 0 {
		f.Attempt = int(r.Uvarint())
	}
	if flags&cRestated != 0 {
		f.Restated = r.restatement()
	}
	sec, ns := r.Varint(), r.Uvarint()
	if !r.Done() || ns >= 1e9 || f.Amount < 0 || cur.Decimals < 0 || cur.Decimals > domain.MaxDecimals {
		return domain.Fact{}, cur, invalidErr("", errCompact)
	}
	f.At = time.Unix(sec, int64(ns)).UTC()
	all := string(append(append(append(append(buf, name...), email...), ref...), reason...))
	f.OrderID, all = all[:36], all[36:]
	if flags&cBasket != 0 {
		f.BasketID, all = all[:36], all[36:]
	}
	if flags&(cName|cEmail) != 0 {
		texts := &struct{ name, email string }{}
		if flags&cName != 0 {
			texts.name, all = all[:len(name)], all[len(name):]
			f.FullName = &texts.name
		}
		if flags&cEmail != 0 {
			texts.email, all = all[:len(email)], all[len(email):]
			f.Email = &texts.email
		}
	}
	f.ProviderRef, all = all[:len(ref)], all[len(ref):]
	f.Reason = all
	return f, cur, nil
}

// creader reads a compact fact.
type creader struct{ Reader }

func (r *creader) str() string { return string(r.Bytes()) }

// currency interns the usual code.
func (r *creader) currency() string {
	b := r.Bytes()
	if string(b) == "USD" {
		return "USD"
	}
	return string(b)
}

const hexDigits = "0123456789abcdef"

// uuids appends n 16-byte ids to dst as canonical UUIDs (36 bytes
// each).
func (r *creader) uuids(dst []byte, n int) []byte {
	if len(r.b)-r.off < 16*n {
		r.Fail()
		return append(dst, make([]byte, 36*n)...)
	}
	for k := range n {
		for i, c := range r.b[r.off+16*k : r.off+16*k+16] {
			if i == 4 || i == 6 || i == 8 || i == 10 {
				dst = append(dst, '-')
			}
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
		}
	}
	r.off += 16 * n
	return dst
}

func (r *creader) restatement() *domain.Restatement {
	rs := &domain.Restatement{Status: domain.Status(r.str()), PreviousStatus: domain.Status(r.str())}
	for _, t := range [...]*domain.Totals{&rs.Money, &rs.PreviousMoney} {
		*t = domain.Totals{Captured: r.Varint(), Refunded: r.Varint(), ChargedBack: r.Varint(), Reversed: r.Varint(), Net: r.Varint()}
	}
	rs.ReplayID, rs.Reason = r.str(), r.str()
	return rs
}
