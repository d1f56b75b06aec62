package codec_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

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
		fact, err := codec.DecodeMessage(typ, body, usd, t0)
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
		data, err := codec.EncodeFact(fact, usd)
		if err != nil {
			t.Fatal(err)
		}
		back, err := codec.DecodeFact(string(typ), data)
		if err != nil || !reflect.DeepEqual(back, fact) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, back, fact)
		}
		// the fold takes any valid fact without panicking
		domain.Fold(domain.DefaultRules(), []domain.Event{{ID: "1", Fact: fact}})
	})
}

func FuzzDecodeFact(f *testing.F) {
	for i, fact := range sampleFacts() {
		data, err := codec.EncodeFact(fact, usd)
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
		fact, err := codec.DecodeFact(string(typ), data)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidFact) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		enc, err := codec.EncodeFact(fact, usd)
		if err != nil {
			t.Fatalf("decoded fact does not encode: %v", err)
		}
		back, err := codec.DecodeFact(string(typ), enc)
		if err != nil || !reflect.DeepEqual(back, fact) {
			t.Fatalf("round trip: %v\n%+v\n%+v\n%s", err, back, fact, enc)
		}
		enc2, _ := codec.EncodeFact(back, usd)
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
		if got, want := codec.ValidJSON(data), json.Valid(data); got != want {
			t.Fatalf("ValidJSON(%q) = %v, encoding/json says %v", data, got, want)
		}
	})
}
