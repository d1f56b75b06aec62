package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// The benchmarks here weigh the hand-written codecs against encoding/json
// doing the same job, so the choice between them rests on figures.

var checkoutBody = []byte(`{"basketId":"` + basketA + `","fullName":"John Doe","email":"john.doe@example.com","orderId":"` + orderA +
	`","totalMoney":"99.99","id":"8cc9a403-12a7-5dba-a509-de2100d7d9e6","creationDate":"2025-08-01T10:00:00.123Z"}`)

func BenchmarkDecodeMessage(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.DecodeMessage(domain.FactUserCheckedOut, checkoutBody, usd, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMessageEncodingJSON decodes the same body with
// encoding/json, followed by the same checks as codec.DecodeMessage:
// "struct" is json.Unmarshal into a struct (case-insensitive keys like
// MassTransit, but a duplicate key silently wins, so it does less than the
// ledger needs); "tokens" is one pass of json.Decoder tokens that also
// rejects duplicate keys, as codec.DecodeMessage does.
func BenchmarkDecodeMessageEncodingJSON(b *testing.B) {
	want, err := codec.DecodeMessage(domain.FactUserCheckedOut, checkoutBody, usd, t0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func(domain.FactType, []byte, domain.Currency, time.Time) (domain.Fact, error)
	}{{"struct", decodeStdStruct}, {"tokens", decodeStdTokens}} {
		b.Run(c.name, func(b *testing.B) {
			got, err := c.fn(domain.FactUserCheckedOut, checkoutBody, usd, t0)
			if err != nil || !reflect.DeepEqual(got, want) {
				b.Fatalf("%v\n got %+v\nwant %+v", err, got, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(domain.FactUserCheckedOut, checkoutBody, usd, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stdMessage is an inbound body's known keys as encoding/json reads them.
type stdMessage struct {
	OrderID           *string         `json:"orderId"`
	BasketID          *string         `json:"basketId"`
	FullName          *string         `json:"fullName"`
	Email             *string         `json:"email"`
	TotalMoney        json.RawMessage `json:"totalMoney"`
	Amount            json.RawMessage `json:"amount"`
	ProviderReference string          `json:"providerReference"`
	Reason            string          `json:"reason"`
	CreationDate      *string         `json:"creationDate"`
	Currency          *string         `json:"currency"`
}

func decodeStdStruct(t domain.FactType, body []byte, cur domain.Currency, at time.Time) (domain.Fact, error) {
	var m stdMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return domain.Fact{}, err
	}
	return stdFact(t, &m, cur, at)
}

func decodeStdTokens(t domain.FactType, body []byte, cur domain.Currency, at time.Time) (domain.Fact, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return domain.Fact{}, fmt.Errorf("not an object: %v", err)
	}
	var m stdMessage
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return domain.Fact{}, err
		}
		key := tok.(string)
		for _, k := range seen {
			if strings.EqualFold(k, key) {
				return domain.Fact{}, fmt.Errorf("duplicate key %q", key)
			}
		}
		seen = append(seen, key)
		var dst any
		switch strings.ToLower(key) {
		case "orderid":
			dst = &m.OrderID
		case "basketid":
			dst = &m.BasketID
		case "fullname":
			dst = &m.FullName
		case "email":
			dst = &m.Email
		case "totalmoney":
			dst = &m.TotalMoney
		case "amount":
			dst = &m.Amount
		case "providerreference":
			dst = &m.ProviderReference
		case "reason":
			dst = &m.Reason
		case "creationdate":
			dst = &m.CreationDate
		case "currency":
			dst = &m.Currency
		default:
			dst = new(json.RawMessage)
		}
		if err := dec.Decode(dst); err != nil {
			return domain.Fact{}, err
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return domain.Fact{}, fmt.Errorf("unterminated object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return domain.Fact{}, errors.New("data after the object")
	}
	return stdFact(t, &m, cur, at)
}

// stdFact applies codec.DecodeMessage's checks after the scan (a BookWorm
// type; only what the benchmark body needs).
func stdFact(t domain.FactType, m *stdMessage, cur domain.Currency, at time.Time) (domain.Fact, error) {
	f := domain.Fact{Type: t, FullName: m.FullName, Email: m.Email, ProviderRef: m.ProviderReference, Reason: m.Reason}
	if m.OrderID == nil || m.BasketID == nil {
		return f, errors.New("ids required")
	}
	var ok bool
	if f.OrderID, ok = domain.CanonicalUUID(*m.OrderID); !ok {
		return f, errors.New("orderId")
	}
	if f.BasketID, ok = domain.CanonicalUUID(*m.BasketID); !ok {
		return f, errors.New("basketId")
	}
	money := m.TotalMoney
	if t.MoneyKey() == "amount" {
		money = m.Amount
	}
	if money != nil && string(money) != "null" {
		v, err := domain.ParseAmount(money, cur.Decimals)
		if err != nil {
			return f, err
		}
		f.Amount, f.HasAmount = v, true
	}
	if m.Currency != nil && !strings.EqualFold(*m.Currency, cur.Code) {
		return f, errors.New("currency")
	}
	f.At = at.UTC()
	if at.IsZero() && m.CreationDate != nil {
		ts, err := domain.ParseTime([]byte(*m.CreationDate))
		if err != nil {
			return f, err
		}
		f.At = ts
	}
	return f, f.Validate()
}

// BenchmarkBodies renders an AccelByte envelope and a command body by hand
// (codec.Body) and with encoding/json (HTML escaping off, the trailing
// newline cut), from the same outbound message.
func BenchmarkBodies(b *testing.B) {
	cfg := domain.DefaultOutboundConfig()
	cfg.ParentNamespace, cfg.ClientID, cfg.UserID = "studio", "c1", "u1"
	msgs := checkoutIntents(b, cfg)
	for _, o := range msgs {
		hand, err := codec.Body(cfg, o)
		if err != nil {
			b.Fatal(err)
		}
		std := stdBody(cfg, o)
		if !bytes.Equal(hand, std) {
			b.Fatalf("%s: encoding/json writes other bytes:\n%s\n%s", o.Name, hand, std)
		}
		name := "accelbyte"
		if o.Kind == domain.KindBookWorm {
			name = "command"
		}
		b.Run(name+"/hand", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Body(cfg, o); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				stdBody(cfg, o)
			}
		})
	}
}

// checkoutIntents are the messages of a checkout: orderCreated and
// PlaceOrderCommand.
func checkoutIntents(tb testing.TB, cfg domain.OutboundConfig) []domain.Outbound {
	f, err := codec.DecodeMessage(domain.FactUserCheckedOut, checkoutBody, usd, t0)
	if err != nil {
		tb.Fatal(err)
	}
	s, out := domain.Evolve(domain.DefaultRules(), domain.State{}, domain.Event{ID: domain.FactEventID("m1"), Fact: f})
	msgs, err := domain.Intents(cfg, domain.StreamName(orderA), s, out.Transitions[0])
	if err != nil || len(msgs) != 2 {
		tb.Fatalf("%v %v", msgs, err)
	}
	return msgs
}

type stdCurrency struct {
	CurrencyCode   string `json:"currencyCode"`
	CurrencySymbol string `json:"currencySymbol"`
	CurrencyType   string `json:"currencyType"`
	Namespace      string `json:"namespace"`
	Decimals       int    `json:"decimals"`
}

type stdOrder struct {
	OrderNo         string        `json:"orderNo"`
	Namespace       string        `json:"namespace"`
	UserID          string        `json:"userId,omitempty"`
	Sandbox         bool          `json:"sandbox"`
	Quantity        int           `json:"quantity"`
	Price           int64         `json:"price"`
	DiscountedPrice int64         `json:"discountedPrice"`
	Currency        stdCurrency   `json:"currency"`
	Status          domain.Status `json:"status"`
	StatusReason    string        `json:"statusReason"`
	ActualPaid      int64         `json:"actualPaid"`
	PreviousStatus  domain.Status `json:"previousStatus,omitempty"`
}

type stdEvent struct {
	Payload struct {
		Order     stdOrder `json:"order"`
		Timestamp string   `json:"timestamp"`
	} `json:"payload"`
	ID              string `json:"id"`
	Version         int    `json:"version"`
	Name            string `json:"name"`
	Namespace       string `json:"namespace"`
	ParentNamespace string `json:"parentNamespace"`
	Timestamp       string `json:"timestamp"`
	ClientID        string `json:"clientId"`
	UserID          string `json:"userId"`
	TraceID         string `json:"traceId"`
	SessionID       string `json:"sessionId"`
}

// stdPlaceOrder is PlaceOrderCommand, money as a string.
type stdPlaceOrder struct {
	BasketID     string    `json:"basketId"`
	FullName     *string   `json:"fullName"`
	Email        *string   `json:"email"`
	OrderID      string    `json:"orderId"`
	TotalMoney   string    `json:"totalMoney"`
	ID           string    `json:"id"`
	CreationDate time.Time `json:"creationDate"`
}

func stdBody(cfg domain.OutboundConfig, o domain.Outbound) []byte {
	var v any
	if o.Kind == domain.KindBookWorm {
		v = stdPlaceOrder{BasketID: o.Order.BasketID, FullName: o.Order.FullName, Email: o.Order.Email, OrderID: o.OrderID,
			TotalMoney: domain.FormatMinor(o.Order.Total, cfg.Currency.Decimals), ID: o.MessageID, CreationDate: o.Time}
	} else {
		ts := o.Time.Truncate(time.Second).Format(time.RFC3339)
		e := stdEvent{ID: strings.ReplaceAll(o.MessageID, "-", ""), Version: 1, Name: o.Name, Namespace: cfg.Namespace,
			ParentNamespace: cfg.ParentNamespace, Timestamp: ts, ClientID: cfg.ClientID, UserID: cfg.UserID,
			TraceID: strings.ReplaceAll(o.CorrelationID, "-", "")}
		e.Payload.Timestamp = ts
		e.Payload.Order = stdOrder{OrderNo: o.OrderID, Namespace: cfg.Namespace, UserID: o.Order.BasketID, Quantity: 1,
			Price: o.Order.Total, DiscountedPrice: o.Order.Total, Status: o.To, StatusReason: o.StatusReason,
			ActualPaid: o.Order.Total, PreviousStatus: o.From,
			Currency: stdCurrency{CurrencyCode: cfg.Currency.Code, CurrencySymbol: cfg.CurrencySymbol, CurrencyType: cfg.CurrencyType,
				Namespace: cfg.Namespace, Decimals: cfg.Currency.Decimals}}
		v = e
	}
	var buf bytes.Buffer
	buf.Grow(768)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
