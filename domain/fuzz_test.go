package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

var plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{`100`, `99.99`, `"99.99"`, `"1.500"`, `1e3`, `"NaN"`, `"Infinity"`, `"+1"`, `""`, `" 1"`, `"0x1F"`,
		`-1`, `-0`, `"92233720368547758.07"`, `"92233720368547758.08"`, `0.000000000000000001`, `"1,5"`, `"١٢"`, `1.`, `.1`, `"\u0031"`} {
		f.Add(s, uint8(2))
	}
	f.Add(`123`, uint8(0))
	f.Add(`1.5`, uint8(18))
	f.Fuzz(func(t *testing.T, raw string, d uint8) {
		dec := int(d % 19)
		v, err := domain.ParseAmount([]byte(raw), dec)
		text := raw
		quoted := len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"'
		if quoted {
			text = raw[1 : len(raw)-1]
		}
		if !plainDecimal.MatchString(text) {
			if err == nil {
				t.Fatalf("%q accepted as %d", raw, v)
			}
			return
		}
		if !quoted && len(text) > 1 && (text[0] == '0' && text[1] != '.' || len(text) > 2 && text[:2] == "-0" && text[2] != '.') {
			if !errors.Is(err, domain.ErrMalformedAmount) {
				t.Fatalf("JSON number with a leading zero %q: %v", raw, err)
			}
			return
		}
		// Reference: exact rational arithmetic.
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			t.Fatalf("big.Rat refused %q", text)
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(dec)), nil)))
		switch {
		case r.Sign() < 0:
			if !errors.Is(err, domain.ErrNegativeAmount) {
				t.Fatalf("%q: want negative, got %d %v", raw, v, err)
			}
		case !r.IsInt():
			if !errors.Is(err, domain.ErrTooPrecise) {
				t.Fatalf("%q: want too precise, got %d %v", raw, v, err)
			}
		case r.Num().Cmp(big.NewInt(math.MaxInt64)) > 0:
			if !errors.Is(err, domain.ErrAmountOverflow) {
				t.Fatalf("%q: want overflow, got %d %v", raw, v, err)
			}
		default:
			if err != nil || v != r.Num().Int64() {
				t.Fatalf("%q (%d decimals) = %d, %v; want %s", raw, dec, v, err, r.Num())
			}
			back, err := domain.ParseDecimal(domain.FormatMinor(v, dec), dec)
			if err != nil || back != v {
				t.Fatalf("format/parse %d: %d %v", v, back, err)
			}
		}
	})
}

func fuzzType(i uint8) domain.FactType {
	types := domain.FactTypes()
	return types[int(i)%len(types)]
}

func FuzzDecodeMessage(f *testing.F) {
	o, b := `"orderId":"`+orderA+`"`, `"basketId":"`+basketA+`"`
	seeds := []string{
		`{` + o + `,` + b + `,"fullName":"John Doe","email":"john.doe@example.com","totalMoney":99.99,"id":"x","creationDate":"2025-08-01T10:00:00.123Z"}`,
		`{` + o + `,` + b + `,"totalMoney":"100","FULLNAME":null}`,
		`{` + o + `,"amount":"1.00","providerReference":"r","reason":"\u00e9\ud83d\ude00"}`,
		`{` + o + `,` + b + `,"totalMoney":1,"totalmoney":2}`,
		`{` + o + `,` + b + `,"totalMoney":1e2}`,
		`{"orderId":"` + orderA + `\u0000"}`,
		`{` + o + `,"x":[1,{"y":[true,false,null]}],"amount":5,"providerReference":"p"}`,
		`[]`, `{`, `{"a":1}x`, "{\"orderId\":\"\xff\"}",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, body []byte, ti uint8) {
		typ := fuzzType(ti)
		fact, err := domain.DecodeMessage(typ, body, usd, t0)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidFact) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if err := fact.Validate(); err != nil {
			t.Fatalf("decoded fact invalid: %v", err)
		}
		data, err := domain.EncodeFact(fact, usd)
		if err != nil {
			t.Fatal(err)
		}
		back, err := domain.DecodeFact(string(typ), data)
		if err != nil || !reflect.DeepEqual(back, fact) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, back, fact)
		}
		// the fold takes any valid fact without panicking
		domain.Fold(domain.DefaultRules(), []domain.Event{{ID: "1", Fact: fact}})
	})
}

func FuzzDecodeFact(f *testing.F) {
	for i, fact := range sampleFacts() {
		data, err := domain.EncodeFact(fact, usd)
		if err != nil {
			f.Fatal(err)
		}
		for k, typ := range domain.FactTypes() {
			if typ == fact.Type {
				f.Add(data, uint8(k))
			}
		}
		f.Add(data, uint8(i))
	}
	f.Add([]byte(`{"orderId":"`+orderA+`","at":"2025-08-01T10:00:00+02:00","amount":"1.0","amountMinor":100,"decimals":2,"providerReference":"x"}`), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, ti uint8) {
		typ := fuzzType(ti)
		fact, err := domain.DecodeFact(string(typ), data)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidFact) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		enc, err := domain.EncodeFact(fact, usd)
		if err != nil {
			t.Fatalf("decoded fact does not encode: %v", err)
		}
		back, err := domain.DecodeFact(string(typ), enc)
		if err != nil || !reflect.DeepEqual(back, fact) {
			t.Fatalf("round trip: %v\n%+v\n%+v\n%s", err, back, fact, enc)
		}
		enc2, _ := domain.EncodeFact(back, usd)
		if string(enc2) != string(enc) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
		if !back.At.Equal(fact.At) || back.At.Location() != time.UTC {
			t.Fatal("time not UTC")
		}
	})
}

// The hand-written scanner accepts exactly what encoding/json accepts.
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `""`, `"\ud800"`, `"\u00"`, `1.`, `-`, `-0`, `01`, `1e+`, `1E5`, `[1,]`, `{"a":1,}`, `{"a" 1}`,
		`nul`, `true false`, " \t\n\r1 ", "\"\x01\"", `"\/\b\f\n\r\t"`, `[[[[[]]]]]`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := domain.ValidJSON(data), json.Valid(data); got != want {
			t.Fatalf("ValidJSON(%q) = %v, encoding/json says %v", data, got, want)
		}
	})
}
