package codec_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

func sampleFacts() []domain.Fact {
	restated := &domain.Restatement{Status: domain.StatusRefunded, PreviousStatus: domain.StatusFulfilled,
		Money: domain.Totals{Captured: 9999, Refunded: 9999}, PreviousMoney: domain.Totals{Captured: 9999, Net: 9999}, ReplayID: "replay-1", Reason: "bug 42"}
	return []domain.Fact{
		{Type: domain.FactUserCheckedOut, OrderID: orderA, BasketID: basketA, FullName: ptr("Jöhn \"\\\n\u2028"), Email: ptr(""), Amount: 9999, HasAmount: true, At: t0},
		{Type: domain.FactBasketDeletedComplete, OrderID: orderA, BasketID: basketA, Amount: 0, HasAmount: true, At: t0.Add(time.Nanosecond)},
		{Type: domain.FactPaymentChargeback, OrderID: orderA, Amount: 1, HasAmount: true, ProviderRef: "dp_1", Reason: "fraud", At: t0},
		{Type: domain.FactOrderRefundRequested, OrderID: orderA, At: t0},
		{Type: domain.FactOrderFulfillFailed, OrderID: orderA, Reason: "out of stock", At: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{Type: domain.FactPlacementTimedOut, OrderID: orderA, Attempt: 2, At: t0},
		{Type: domain.FactOrderRestated, OrderID: orderA, Restated: restated, At: t0},
	}
}

func TestFactRoundTrip(t *testing.T) {
	for _, dec := range []domain.Currency{usd, {Code: "JPY", Decimals: 0}, {Code: "BTC", Decimals: 8}} {
		for _, f := range sampleFacts() {
			data, err := codec.EncodeFact(f, dec)
			if err != nil {
				t.Fatalf("%s: %v", f.Type, err)
			}
			if !json.Valid(data) {
				t.Fatalf("%s: invalid json %s", f.Type, data)
			}
			back, err := codec.DecodeFact(string(f.Type), data)
			if err != nil {
				t.Fatalf("%s: %v\n%s", f.Type, err, data)
			}
			if !reflect.DeepEqual(back, f) {
				t.Fatalf("%s:\n got %+v\nwant %+v\n%s", f.Type, back, f, data)
			}
		}
	}
	data, _ := codec.EncodeFact(sampleFacts()[0], usd)
	want := `{"orderId":"` + orderA + `","basketId":"` + basketA + `","fullName":"Jöhn \"\\\n\u2028","email":"","totalMoney":"99.99","totalMoneyMinor":9999,"currency":"USD","decimals":2,"at":"2025-08-01T10:00:00.123Z"}`
	if string(data) != want {
		t.Fatalf("stored form\n got %s\nwant %s", data, want)
	}
}

func TestDecodeFactRejects(t *testing.T) {
	good := `"orderId":"` + orderA + `","basketId":"` + basketA + `"`
	typ := string(domain.FactBasketDeletedComplete)
	cases := map[string]string{
		"text and minor disagree": `{` + good + `,"totalMoney":"1.00","totalMoneyMinor":99,"currency":"USD","decimals":2,"at":"2025-08-01T10:00:00Z"}`,
		"minor missing":           `{` + good + `,"totalMoney":"1.00","currency":"USD","decimals":2,"at":"2025-08-01T10:00:00Z"}`,
		"money missing":           `{` + good + `,"at":"2025-08-01T10:00:00Z"}`,
		"at missing":              `{` + good + `,"totalMoney":"1.00","totalMoneyMinor":100,"currency":"USD","decimals":2}`,
		"duplicate":               `{` + good + `,"totalMoney":"1.00","totalMoneyMinor":100,"totalMoneyMinor":100,"currency":"USD","decimals":2,"at":"2025-08-01T10:00:00Z"}`,
		"upper-case uuid":         `{"orderId":"` + strings.ToUpper(orderA) + `","basketId":"` + basketA + `","totalMoney":"1.00","totalMoneyMinor":100,"currency":"USD","decimals":2,"at":"2025-08-01T10:00:00Z"}`,
		"fractional minor":        `{` + good + `,"totalMoney":"1.00","totalMoneyMinor":100.0,"currency":"USD","decimals":2,"at":"2025-08-01T10:00:00Z"}`,
		"bad date":                `{` + good + `,"totalMoney":"1.00","totalMoneyMinor":100,"currency":"USD","decimals":2,"at":"2025-02-30T10:00:00Z"}`,
		"not json":                `{` + good,
	}
	for name, data := range cases {
		if _, err := codec.DecodeFact(typ, []byte(data)); !errors.Is(err, domain.ErrInvalidFact) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if _, err := codec.DecodeFact("Nope", []byte(`{}`)); !errors.Is(err, domain.ErrUnknownFactType) {
		t.Errorf("unknown type: %v", err)
	}
}
