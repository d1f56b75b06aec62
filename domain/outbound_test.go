package domain_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// lifecycleIntents folds a history and returns every intent, in order.
func lifecycleIntents(t *testing.T, cfg domain.OutboundConfig, r domain.Rules, events []domain.Event) []domain.Outbound {
	t.Helper()
	var s domain.State
	var all []domain.Outbound
	stream := domain.StreamName(orderA)
	for _, e := range events {
		var out domain.Outcome
		s, out = domain.Evolve(r, s, e)
		for _, tr := range out.Transitions {
			o, err := intents(cfg, stream, s, tr)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, o...)
		}
	}
	return all
}

// intents is domain.Intents with the bodies rendered, as the lifecycle
// publisher sends them.
func intents(cfg domain.OutboundConfig, stream string, s domain.State, tr domain.Transition) ([]domain.Outbound, error) {
	msgs, err := domain.Intents(cfg, stream, s, tr)
	if err != nil {
		return nil, err
	}
	return msgs, codec.RenderBodies(cfg, msgs)
}

func TestIntentsAccelByteEnvelope(t *testing.T) {
	cfg := domain.DefaultOutboundConfig()
	cfg.ParentNamespace, cfg.ClientID, cfg.UserID = "studio", "c1", "u1"
	h := newHistory(orderA)
	reach(h, domain.StatusFulfilled)
	h.cancel()
	outs := lifecycleIntents(t, cfg, immediate, h.events)
	var got []string
	ids := map[string]bool{}
	for _, o := range outs {
		got = append(got, o.Name)
		if ids[o.MessageID] {
			t.Fatalf("message id %s reused", o.MessageID)
		}
		ids[o.MessageID] = true
		if !json.Valid(o.Body) {
			t.Fatalf("%s: invalid JSON %s", o.Name, o.Body)
		}
	}
	want := []string{"orderCreated", "PlaceOrderCommand", "orderCharged", "DeleteBasketCompleteCommand", "orderFulfilled",
		"CompleteOrderCommand", "orderRefundRequested", "CancelOrderCommand", "orderRefunded"}
	if !slices.Equal(got, want) {
		t.Fatalf("%v", got)
	}
	o := outs[6]
	if o.Kind != domain.KindAccelByte || o.Exchange != "orderProcessing" || o.RoutingKey != "orderRefundRequested" || o.OrderID != orderA ||
		o.CorrelationID != orderA || o.CausationID != h.events[3].ID || !o.Time.Equal(h.events[3].Fact.At) {
		t.Fatalf("%+v", o)
	}
	if o.MessageID != domain.MessageID(domain.StreamName(orderA), 3, "accelbyte:orderRefundRequested") {
		t.Fatal("message id not derived from stream, revision and kind")
	}
	var env struct {
		Payload struct {
			Order struct {
				OrderNo, Namespace, UserID                   string
				Quantity, Price, DiscountedPrice, ActualPaid int64
				Sandbox                                      bool
				Currency                                     struct {
					CurrencyCode, CurrencySymbol, CurrencyType, Namespace string
					Decimals                                              int
				}
				Status, StatusReason, PreviousStatus string
			}
			Timestamp string
		}
		ID, Name, Namespace, ParentNamespace, Timestamp, ClientID, UserID, TraceID, SessionID string
		Version                                                                               int
	}
	if err := json.Unmarshal(o.Body, &env); err != nil {
		t.Fatal(err)
	}
	ord := env.Payload.Order
	if ord.OrderNo != orderA || ord.Namespace != "bookworm" || ord.UserID != basketA || ord.Quantity != 1 || ord.Price != 9999 ||
		ord.DiscountedPrice != 9999 || ord.ActualPaid != 9999 || ord.Currency.CurrencyCode != "USD" || ord.Currency.CurrencySymbol != "$" ||
		ord.Currency.CurrencyType != "REAL" || ord.Currency.Decimals != 2 || ord.Currency.Namespace != "bookworm" ||
		ord.Status != "REFUNDING" || ord.PreviousStatus != "FULFILLED" || ord.StatusReason != domain.ReasonCancelRefund {
		t.Fatalf("order %+v", ord)
	}
	ts := h.events[3].Fact.At.Truncate(time.Second).Format(time.RFC3339)
	if env.ID != strings.ReplaceAll(o.MessageID, "-", "") || !hex32.MatchString(env.ID) || env.Version != 1 || env.Name != "orderRefundRequested" ||
		env.Namespace != "bookworm" || env.ParentNamespace != "studio" || env.Timestamp != ts || env.Payload.Timestamp != ts ||
		env.ClientID != "c1" || env.UserID != "u1" || env.TraceID != strings.ReplaceAll(orderA, "-", "") || !hex32.MatchString(env.TraceID) {
		t.Fatalf("envelope %+v", env)
	}
	// orderCreated has no previous status
	var created struct {
		Payload struct{ Order map[string]any }
	}
	if err := json.Unmarshal(outs[0].Body, &created); err != nil {
		t.Fatal(err)
	}
	if _, ok := created.Payload.Order["previousStatus"]; ok || created.Payload.Order["status"] != "INIT" {
		t.Fatal("orderCreated with a previousStatus")
	}
}

func TestIntentsCommands(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.basketFailed()
	for _, asStrings := range []bool{true, false} {
		cfg := domain.DefaultOutboundConfig()
		cfg.DecimalsAsStrings = asStrings
		outs := lifecycleIntents(t, cfg, immediate, h.events)
		cmds := map[string]domain.Outbound{}
		for _, o := range outs {
			if o.Kind == domain.KindBookWorm {
				cmds[o.Name] = o
			}
		}
		place := cmds["PlaceOrderCommand"]
		money := `"99.99"`
		if !asStrings {
			money = `99.99`
		}
		want := `{"basketId":"` + basketA + `","fullName":"John Doe","email":"john.doe@example.com","orderId":"` + orderA +
			`","totalMoney":` + money + `,"id":"` + place.MessageID + `","creationDate":"2025-08-01T10:01:00.123Z"}`
		if string(place.Body) != want {
			t.Fatalf("PlaceOrderCommand\n got %s\nwant %s", place.Body, want)
		}
		if place.Exchange != "BookWorm.Contracts:PlaceOrderCommand" || place.RoutingKey != "" {
			t.Fatalf("%+v", place)
		}
		failed := cmds["DeleteBasketFailedCommand"]
		want = `{"basketId":"` + basketA + `","email":"john.doe@example.com","orderId":"` + orderA + `","totalMoney":` + money +
			`,"id":"` + failed.MessageID + `","creationDate":"2025-08-01T10:02:00.123Z"}`
		if string(failed.Body) != want {
			t.Fatalf("DeleteBasketFailedCommand\n got %s\nwant %s", failed.Body, want)
		}
	}
	// null names stay null; money is exact for large totals
	h2 := newHistory(orderA)
	h2.name, h2.email = nil, nil
	h2.total = 123456789012345678
	h2.checkout()
	cfg := domain.DefaultOutboundConfig()
	cfg.DecimalsAsStrings = false
	s := domain.Fold(immediate, h2.events)
	_, err := domain.Intents(cfg, domain.StreamName(orderA), s, domain.Transition{To: domain.StatusInit, Cause: h2.events[0], AccelByte: "orderCreated"})
	if !errors.Is(err, domain.ErrAmountOverflow) {
		t.Fatalf("total beyond int32 must be refused for AccelByte: %v", err)
	}
	outs, err := intents(cfg, domain.StreamName(orderA), s, domain.Transition{To: domain.StatusInit, Cause: h2.events[0], Command: "PlaceOrderCommand"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(outs[0].Body), `"fullName":null,"email":null`) || !strings.Contains(string(outs[0].Body), `"totalMoney":1234567890123456.78,`) {
		t.Fatalf("%s", outs[0].Body)
	}
}

func TestIntentsCorrelation(t *testing.T) {
	h := newHistory(orderA)
	e := h.checkout()
	s, out := domain.Evolve(immediate, domain.State{}, e)
	tr := out.Transitions[0]
	tr.Cause.CorrelationID = "7D444840-9DC0-11D1-B245-5FFDCE74FAD2"
	outs, err := intents(domain.DefaultOutboundConfig(), domain.StreamName(orderA), s, tr)
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].CorrelationID != "7d444840-9dc0-11d1-b245-5ffdce74fad2" || !strings.Contains(string(outs[0].Body), `"traceId":"7d4448409dc011d1b2455ffdce74fad2"`) {
		t.Fatalf("%s %s", outs[0].CorrelationID, outs[0].Body)
	}
	tr.Cause.CorrelationID = "not-a-uuid"
	outs, _ = intents(domain.DefaultOutboundConfig(), domain.StreamName(orderA), s, tr)
	if outs[0].CorrelationID != orderA {
		t.Fatal(outs[0].CorrelationID)
	}
}

func TestIntentsEdgeCases(t *testing.T) {
	cfg := domain.DefaultOutboundConfig()
	if o, err := domain.Intents(cfg, "order-x", domain.State{}, domain.Transition{}); o != nil || err != nil {
		t.Fatal("a transition without messages has no intents")
	}
	if _, err := domain.Intents(cfg, "order-x", domain.State{}, domain.Transition{AccelByte: "orderCreated"}); !errors.Is(err, domain.ErrNoOrder) {
		t.Fatal(err)
	}
	bad := cfg
	bad.CurrencyType = "GOLD"
	h := newHistory(orderA)
	h.checkout()
	s := domain.Fold(immediate, h.events)
	if _, err := domain.Intents(bad, "order-x", s, domain.Transition{AccelByte: "orderCreated", Cause: h.events[0]}); err == nil {
		t.Fatal("bad config accepted")
	}
	if _, err := domain.Intents(cfg, "order-x", s, domain.Transition{Command: "FooCommand", Cause: h.events[0]}); err == nil {
		t.Fatal("unknown command accepted")
	}
}

// The bodies use only properties the JSON Schemas in specs/schemas allow
// and carry every required one (the specs package validates them fully).
func TestIntentsMatchSchemaProperties(t *testing.T) {
	load := func(name string) (props map[string]json.RawMessage, required []string, ok bool) {
		data, err := os.ReadFile(filepath.Join("../specs/schemas", name+".json"))
		if err != nil {
			return nil, nil, false
		}
		var s struct {
			Properties map[string]json.RawMessage
			Required   []string
		}
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s.Properties, s.Required, true
	}
	check := func(schema string, body map[string]json.RawMessage) {
		props, required, ok := load(schema)
		if !ok {
			t.Skipf("no schema %s yet", schema)
		}
		for k := range body {
			if _, ok := props[k]; !ok {
				t.Errorf("%s: property %q not in the schema", schema, k)
			}
		}
		for _, k := range required {
			if _, ok := body[k]; !ok {
				t.Errorf("%s: required %q missing", schema, k)
			}
		}
	}
	h := newHistory(orderA)
	reach(h, domain.StatusFulfilled)
	h.cancel()
	h2 := newHistory(orderA)
	h2.checkout()
	h2.basketFailed()
	outs := append(lifecycleIntents(t, domain.DefaultOutboundConfig(), immediate, h.events), lifecycleIntents(t, domain.DefaultOutboundConfig(), immediate, h2.events)...)
	for _, o := range outs {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(o.Body, &body); err != nil {
			t.Fatal(err)
		}
		if o.Kind == domain.KindBookWorm {
			check(o.Name, body)
			continue
		}
		check("AccelByteEvent", body)
		var payload map[string]json.RawMessage
		_ = json.Unmarshal(body["payload"], &payload)
		var order map[string]json.RawMessage
		_ = json.Unmarshal(payload["order"], &order)
		check("AccelByteOrder", order)
	}
}

// TestIntentsPropagation: the ids a MassTransit consumer of the causing
// message would send with (SendContextExtensions.TransferConsumeContextHeaders).
func TestIntentsPropagation(t *testing.T) {
	const (
		conv = "11111111-1111-4111-8111-111111111111"
		corr = "22222222-2222-4222-8222-222222222222"
		msg  = "33333333-3333-4333-8333-333333333333"
		msg2 = "44444444-4444-4444-8444-444444444444"
	)
	cfg := domain.DefaultOutboundConfig()
	stream := domain.StreamName(orderA)
	h := newHistory(orderA)
	co := h.checkout()
	co.MessageID, co.CorrelationID, co.ConversationID = msg, corr, strings.ToUpper(conv)
	f := domain.NewFolder(immediate, domain.State{})
	out := f.Apply(co)
	outs, err := intents(cfg, stream, f.State(), out.Transitions[0])
	if err != nil || len(outs) != 2 {
		t.Fatal(outs, err)
	}
	for _, o := range outs {
		if o.ConversationID != conv || o.CorrelationID != corr || o.InitiatorID != corr {
			t.Fatalf("%s: conversation %s correlation %s initiator %s", o.Name, o.ConversationID, o.CorrelationID, o.InitiatorID)
		}
	}
	if !strings.Contains(string(outs[0].Body), `"traceId":"`+strings.ReplaceAll(corr, "-", "")+`"`) {
		t.Fatalf("traceId: %s", outs[0].Body)
	}

	// A time-out carries on the checkout's conversation; its own
	// correlation (the order) is the initiator.
	to := h.timeout(1, co.Fact.At.Add(immediate.PlacementTimeout))
	to.MessageID, to.CorrelationID = to.ID, orderA
	out = f.Apply(to)
	outs, err = intents(cfg, stream, f.State(), out.Transitions[0])
	if err != nil || len(outs) != 1 {
		t.Fatal(outs, err)
	}
	if o := outs[0]; o.ConversationID != conv || o.CorrelationID != orderA || o.InitiatorID != orderA {
		t.Fatalf("time-out: %+v", o)
	}

	// No correlation, no conversation: the order correlates, nothing
	// initiates (MassTransit's rule), and a conversation derived from the
	// event starts (the same on a re-publish).
	ch := h.charge()
	ch.MessageID = msg2
	out = f.Apply(ch)
	outs, err = intents(cfg, stream, f.State(), out.Transitions[0])
	if err != nil || len(outs) != 2 {
		t.Fatal(outs, err)
	}
	for _, o := range outs {
		if o.CorrelationID != orderA || o.InitiatorID != "" || o.ConversationID != ch.Conversation() || o.ConversationID == conv {
			t.Fatalf("%s: %+v", o.Name, o)
		}
	}
	if _, ok := domain.CanonicalUUID(ch.Conversation()); !ok || ch.Conversation() != domain.NameUUID("conversation", ch.ID) {
		t.Fatal(ch.Conversation())
	}
	if out.Transitions[0].Reason != domain.ReasonCharged {
		t.Fatal(out.Transitions[0].Reason)
	}
}
