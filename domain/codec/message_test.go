package codec_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

func TestDecodeMessageValid(t *testing.T) {
	env := time.Date(2025, 8, 1, 10, 0, 1, 0, time.FixedZone("x", 3600))
	cases := []struct {
		name string
		typ  domain.FactType
		body string
		at   time.Time
		want domain.Fact
	}{
		{"checkout number money", domain.FactUserCheckedOut,
			`{"orderId":"` + strings.ToUpper(orderA) + `","basketId":"` + basketA + `","fullName":"John Doe","email":"john.doe@example.com","totalMoney":99.99,"id":"x","creationDate":"2025-08-01T10:00:00.123Z"}`,
			time.Time{},
			domain.Fact{Type: domain.FactUserCheckedOut, OrderID: orderA, BasketID: basketA, FullName: ptr("John Doe"), Email: ptr("john.doe@example.com"), Amount: 9999, HasAmount: true, At: t0}},
		{"keys in any case, string money, envelope time wins", domain.FactBasketDeletedComplete,
			`{"OrderId":"` + orderA + `","BASKETID":"` + basketA + `","TotalMoney":"100","creationDate":"2020-01-01T00:00:00Z"}`,
			env,
			domain.Fact{Type: domain.FactBasketDeletedComplete, OrderID: orderA, BasketID: basketA, Amount: 10000, HasAmount: true, At: env.UTC()}},
		{"nulls are absent", domain.FactOrderCancelled,
			`{"orderId":"` + orderA + `","basketId":"` + basketA + `","fullName":null,"email":null,"totalMoney":"0.50","creationDate":"2025-08-01T10:00:00.1234567+00:00"}`,
			time.Time{},
			domain.Fact{Type: domain.FactOrderCancelled, OrderID: orderA, BasketID: basketA, Amount: 50, HasAmount: true, At: time.Date(2025, 8, 1, 10, 0, 0, 123456700, time.UTC)}},
		{"creation date without offset is UTC", domain.FactBasketDeletedFailed,
			`{"orderId":"` + orderA + `","basketId":"` + basketA + `","email":"","totalMoney":1,"creationDate":"2025-08-01T10:00:00"}`,
			time.Time{},
			domain.Fact{Type: domain.FactBasketDeletedFailed, OrderID: orderA, BasketID: basketA, Email: ptr(""), Amount: 100, HasAmount: true, At: time.Date(2025, 8, 1, 10, 0, 0, 0, time.UTC)}},
		{"refund, unknown keys ignored", domain.FactPaymentRefunded,
			`{"orderId":"` + orderA + `","amount":"99.99","providerReference":"re_1","reason":"settled","extra":{"a":[1,2,{"b":null}]},"currency":"usd"}`,
			env,
			domain.Fact{Type: domain.FactPaymentRefunded, OrderID: orderA, Amount: 9999, HasAmount: true, ProviderRef: "re_1", Reason: "settled", At: env.UTC()}},
		{"refund request without amount", domain.FactOrderRefundRequested,
			`{"orderId":"` + orderA + `","reason":"customer request"}`, env,
			domain.Fact{Type: domain.FactOrderRefundRequested, OrderID: orderA, Reason: "customer request", At: env.UTC()}},
		{"fulfil failed ignores an amount key", domain.FactOrderFulfillFailed,
			`{"orderId":"` + orderA + `","amount":"abc"}`, env,
			domain.Fact{Type: domain.FactOrderFulfillFailed, OrderID: orderA, At: env.UTC()}},
		{"escapes in strings", domain.FactUserCheckedOut,
			`{"orderId":"` + orderA + `","basketId":"` + basketA + `","fullName":"J\u00f6hn \"D\"","totalMoney":1}`, env,
			domain.Fact{Type: domain.FactUserCheckedOut, OrderID: orderA, BasketID: basketA, FullName: ptr(`Jöhn "D"`), Amount: 100, HasAmount: true, At: env.UTC()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := codec.DecodeMessage(c.typ, []byte(c.body), usd, c.at)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDecodeMessageInvalid(t *testing.T) {
	env := t0
	o, b := `"orderId":"`+orderA+`"`, `"basketId":"`+basketA+`"`
	cases := []struct {
		name  string
		typ   domain.FactType
		body  string
		field string
		cause error
	}{
		{"not an object", domain.FactUserCheckedOut, `[1]`, "", nil},
		{"trailing data", domain.FactUserCheckedOut, `{` + o + `,` + b + `,"totalMoney":1} x`, "", nil},
		{"broken json", domain.FactUserCheckedOut, `{` + o + `,`, "", nil},
		{"missing order", domain.FactUserCheckedOut, `{` + b + `,"totalMoney":1}`, "orderId", nil},
		{"null order", domain.FactUserCheckedOut, `{"orderId":null,` + b + `,"totalMoney":1}`, "orderId", nil},
		{"order not a uuid", domain.FactUserCheckedOut, `{"orderId":"123",` + b + `,"totalMoney":1}`, "orderId", nil},
		{"order a number", domain.FactUserCheckedOut, `{"orderId":5,` + b + `,"totalMoney":1}`, "orderId", nil},
		{"nil order", domain.FactUserCheckedOut, `{"orderId":"00000000-0000-0000-0000-000000000000",` + b + `,"totalMoney":1}`, "orderId", nil},
		{"missing basket", domain.FactUserCheckedOut, `{` + o + `,"totalMoney":1}`, "basketId", nil},
		{"basket not a uuid", domain.FactBasketDeletedComplete, `{` + o + `,"basketId":"{` + basketA + `}","totalMoney":1}`, "basketId", nil},
		{"missing total", domain.FactBasketDeletedComplete, `{` + o + `,` + b + `}`, "totalMoney", nil},
		{"null total", domain.FactBasketDeletedComplete, `{` + o + `,` + b + `,"totalMoney":null}`, "totalMoney", nil},
		{"negative total", domain.FactOrderCompleted, `{` + o + `,` + b + `,"totalMoney":-1}`, "totalMoney", domain.ErrNegativeAmount},
		{"exponent total", domain.FactOrderCompleted, `{` + o + `,` + b + `,"totalMoney":1e2}`, "totalMoney", domain.ErrMalformedAmount},
		{"too precise", domain.FactOrderCompleted, `{` + o + `,` + b + `,"totalMoney":"1.001"}`, "totalMoney", domain.ErrTooPrecise},
		{"bool total", domain.FactOrderCompleted, `{` + o + `,` + b + `,"totalMoney":true}`, "totalMoney", nil},
		{"duplicate key", domain.FactUserCheckedOut, `{` + o + `,` + b + `,"totalMoney":1,"totalMoney":2}`, "totalMoney", nil},
		{"duplicate key other case", domain.FactUserCheckedOut, `{` + o + `,` + b + `,"totalMoney":1,"OrderID":"` + orderA + `"}`, "orderId", nil},
		{"duplicate unknown key", domain.FactUserCheckedOut, `{` + o + `,` + b + `,"totalMoney":1,"id":"a","ID":"b"}`, "ID", nil},
		{"name not a string", domain.FactUserCheckedOut, `{` + o + `,` + b + `,"totalMoney":1,"fullName":1}`, "fullName", nil},
		{"refund without amount", domain.FactPaymentRefunded, `{` + o + `,"providerReference":"r"}`, "amount", nil},
		{"refund of zero", domain.FactPaymentChargeback, `{` + o + `,"amount":0,"providerReference":"r"}`, "amount", nil},
		{"refund without provider", domain.FactPaymentRefundFailed, `{` + o + `,"amount":1}`, "providerReference", nil},
		{"blank provider", domain.FactPaymentChargebackReversed, `{` + o + `,"amount":1,"providerReference":"  "}`, "providerReference", nil},
		{"other currency", domain.FactPaymentRefunded, `{` + o + `,"amount":1,"providerReference":"r","currency":"EUR"}`, "currency", nil},
		{"own fact type", domain.FactPlacementTimedOut, `{` + o + `}`, "type", domain.ErrUnknownFactType},
		{"unknown type", domain.FactType("Nope"), `{` + o + `}`, "type", domain.ErrUnknownFactType},
		{"too many unknown keys", domain.FactOrderFulfillFailed, `{` + o + manyKeys(70) + `}`, "", nil},
		{"overlong name", domain.FactUserCheckedOut, `{` + o + `,` + b + `,"totalMoney":1,"fullName":"` + strings.Repeat("x", 500) + `"}`, "fullName", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := codec.DecodeMessage(c.typ, []byte(c.body), usd, env)
			var ve *domain.ValidationError
			if !errors.Is(err, domain.ErrInvalidFact) || !errors.As(err, &ve) {
				t.Fatalf("got %v, want a ValidationError", err)
			}
			if ve.Field != c.field {
				t.Errorf("field %q, want %q (%v)", ve.Field, c.field, err)
			}
			if c.cause != nil && !errors.Is(err, c.cause) {
				t.Errorf("%v does not match %v", err, c.cause)
			}
		})
	}
}

func TestDecodeMessageTime(t *testing.T) {
	body := []byte(`{"orderId":"` + orderA + `"}`)
	if _, err := codec.DecodeMessage(domain.FactOrderFulfillFailed, body, usd, time.Time{}); err == nil {
		t.Fatal("no envelope time and no creationDate: want an error")
	}
	recv := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := codec.DecodeMessageAt(domain.FactOrderFulfillFailed, body, usd, time.Time{}, recv)
	if err != nil || !f.At.Equal(recv) {
		t.Fatalf("receipt time fallback: %v %v", f.At, err)
	}
	withDate := []byte(`{"orderId":"` + orderA + `","creationDate":"2025-08-01T10:00:00.123Z"}`)
	f, err = codec.DecodeMessageAt(domain.FactOrderFulfillFailed, withDate, usd, time.Time{}, recv)
	if err != nil || !f.At.Equal(t0) {
		t.Fatalf("creationDate before receipt time: %v %v", f.At, err)
	}
	bad := []byte(`{"orderId":"` + orderA + `","creationDate":"yesterday"}`)
	if _, err := codec.DecodeMessage(domain.FactOrderFulfillFailed, bad, usd, time.Time{}); !errors.Is(err, domain.ErrInvalidFact) {
		t.Fatalf("bad creationDate: %v", err)
	}
	if _, err := codec.DecodeMessage(domain.FactOrderFulfillFailed, bad, usd, recv); err != nil {
		t.Fatalf("bad but unused creationDate: %v", err)
	}
}

// The example messages written for the specs must all decode.
func TestDecodeSpecExamples(t *testing.T) {
	dirs, _ := filepath.Glob("../../specs/examples/*IntegrationEvent")
	if len(dirs) == 0 {
		t.Skip("no spec examples yet")
	}
	n := 0
	for _, dir := range dirs {
		typ, ok := domain.LookupFactType(filepath.Base(dir))
		if !ok {
			t.Errorf("%s: unknown type", dir)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, file := range files {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := codec.DecodeMessageAt(typ, body, usd, time.Time{}, t0)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			data, err := codec.EncodeFact(f, usd)
			if err != nil {
				t.Errorf("%s: encode: %v", file, err)
				continue
			}
			back, err := codec.DecodeFact(string(typ), data)
			if err != nil || !reflect.DeepEqual(back, f) {
				t.Errorf("%s: round trip: %v\n%+v\n%+v", file, err, back, f)
			}
			n++
		}
	}
	t.Logf("%d examples decoded", n)
}
