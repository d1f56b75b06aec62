package specs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/specs"
)

// The contract's names as the design fixes them, written out by hand (the
// consumer queues are BookWorm's own). asyncapi.yaml may name nothing else
// and must name all of them; TestContractNamesAreTheCode holds the code to
// the same list.
var (
	bookWormEvents = []string{"UserCheckedOutIntegrationEvent", "BasketDeletedCompleteIntegrationEvent",
		"BasketDeletedFailedIntegrationEvent", "OrderStatusChangedToCompleteIntegrationEvent",
		"OrderStatusChangedToCancelIntegrationEvent"}
	paymentFacts = []string{"PaymentRefundedIntegrationEvent", "PaymentRefundFailedIntegrationEvent",
		"PaymentChargebackIntegrationEvent", "PaymentChargebackReversedIntegrationEvent",
		"OrderFulfillFailedIntegrationEvent", "OrderRefundRequestedIntegrationEvent"}
	commands = []string{"PlaceOrderCommand", "DeleteBasketCompleteCommand", "DeleteBasketFailedCommand",
		"CompleteOrderCommand", "CancelOrderCommand"}
	accelByteEvents = []string{"orderCreated", "orderCancelled", "orderExpired", "orderCharged", "orderFulfilled",
		"orderFulfillFailed", "orderRefundRequested", "orderRefunded", "orderRefundFailed", "orderChargeback",
		"orderChargebackReversed", "orderStatusUpdated"}
	ledgerQueue    = "finance-order-state-machine"
	consumerQueues = map[string][]string{
		"PlaceOrderCommand":           {"basket-place-order", "notification-place-order"},
		"DeleteBasketCompleteCommand": {"basket-checkout-complete"},
		"DeleteBasketFailedCommand":   {"basket-checkout-failed"},
		"CompleteOrderCommand":        {"notification-complete-order"},
		"CancelOrderCommand":          {"notification-cancel-order"},
	}
)

func inboundTypes() []string { return append(append([]string{}, bookWormEvents...), paymentFacts...) }

func namespaceOf(t string) string {
	for _, p := range paymentFacts {
		if p == t {
			return "OrderLedger.Contracts"
		}
	}
	return "BookWorm.Contracts"
}

func designNames() map[string]string {
	n := map[string]string{ledgerQueue: "queue", ledgerQueue + "_error": "queue", ledgerQueue + "_skipped": "queue",
		"orderProcessing": "topic exchange"}
	for _, t := range inboundTypes() {
		n[namespaceOf(t)+":"+t] = "fanout exchange"
	}
	for _, c := range commands {
		n["BookWorm.Contracts:"+c] = "fanout exchange"
		for _, q := range consumerQueues[c] {
			n[q] = "queue"
		}
	}
	for _, e := range accelByteEvents {
		n[e] = "routing key"
	}
	return n
}

// nonMessageSchemas have no examples of their own: shared definitions and
// the order object (covered through every AccelByte example).
var nonMessageSchemas = map[string]bool{"common": true, "AccelByteOrder": true}

func TestSchemaNamesMatchFiles(t *testing.T) {
	names, err := specs.SchemaNames()
	require.NoError(t, err)
	entries, err := fs.ReadDir(specs.FS, specs.SchemasDir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(files)
	assert.Equal(t, files, names)

	want := append(append(append(inboundTypes(), commands...), accelByteEvents...),
		"AccelByteEvent", "AccelByteOrder", "MassTransitEnvelope", "CloudEventsEnvelope", "common")
	assert.ElementsMatch(t, want, names)

	for _, n := range names {
		s, err := specs.Schema(n)
		require.NoError(t, err, n)
		require.NotNil(t, s, n)
	}
	_, err = specs.Schema("NoSuchSchema")
	require.ErrorIs(t, err, specs.ErrUnknownSchema)
	require.ErrorIs(t, specs.Validate("NoSuchSchema", []byte(`{}`)), specs.ErrUnknownSchema)
	require.Error(t, specs.Validate("UserCheckedOutIntegrationEvent", []byte(`{"orderId":`)), "malformed JSON")
}

func TestSchemaFilesDeclareDraft2020(t *testing.T) {
	names, err := specs.SchemaNames()
	require.NoError(t, err)
	for _, n := range names {
		raw, err := specs.FS.ReadFile(path.Join(specs.SchemasDir, n+".json"))
		require.NoError(t, err)
		var doc struct {
			Schema string `json:"$schema"`
			Title  string `json:"title"`
		}
		require.NoError(t, json.Unmarshal(raw, &doc), n)
		assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc.Schema, n)
		assert.Equal(t, n, doc.Title, "title names the schema")
		// Keywords whose draft-07 reading differs would make the AsyncAPI parser validate something else.
		for _, kw := range []string{`"unevaluatedProperties"`, `"unevaluatedItems"`, `"prefixItems"`, `"$dynamicRef"`, `"dependentRequired"`} {
			assert.NotContains(t, string(raw), kw, n)
		}
	}
}

func TestExamplesValidate(t *testing.T) {
	examples, err := specs.Examples()
	require.NoError(t, err)
	require.NotEmpty(t, examples)

	perSchema := map[string]int{}
	envelopes := map[string]bool{}
	for _, ex := range examples {
		t.Run(strings.TrimPrefix(ex.Path, specs.ExamplesDir+"/"), func(t *testing.T) {
			require.NoError(t, specs.Validate(ex.Schema, ex.Body), "body")
			if ex.Envelope == specs.EnvelopeBare {
				assert.Equal(t, ex.Raw, ex.Body)
				return
			}
			require.NoError(t, specs.Validate(ex.EnvelopeSchema(), ex.Raw), "envelope")
			var env struct {
				MessageType []string `json:"messageType"`
				Type        string   `json:"type"`
			}
			require.NoError(t, json.Unmarshal(ex.Raw, &env))
			ns := namespaceOf(ex.Schema)
			switch ex.Envelope {
			case specs.EnvelopeMassTransit:
				require.NotEmpty(t, env.MessageType)
				assert.Equal(t, "urn:message:"+ns+":"+ex.Schema, env.MessageType[0], "most specific URN first")
			case specs.EnvelopeCloudEvents:
				assert.Equal(t, ns+"."+ex.Schema, env.Type)
			}
		})
		perSchema[ex.Schema]++
		envelopes[ex.Envelope+"/"+ex.Schema] = true
	}

	names, err := specs.SchemaNames()
	require.NoError(t, err)
	for _, n := range names {
		if !nonMessageSchemas[n] && n != "MassTransitEnvelope" && n != "CloudEventsEnvelope" {
			assert.Positive(t, perSchema[n], "schema %s has no example", n)
		}
	}
	for _, typ := range append(inboundTypes(), commands...) {
		assert.True(t, envelopes[specs.EnvelopeMassTransit+"/"+typ], "no MassTransit example of %s", typ)
		assert.True(t, envelopes[specs.EnvelopeCloudEvents+"/"+typ], "no CloudEvents example of %s", typ)
	}
}

// moneyKinds reports, per schema, whether its examples carry money as a JSON
// number and as a JSON string.
func TestExamplesCarryMoneyBothWays(t *testing.T) {
	examples, err := specs.Examples()
	require.NoError(t, err)
	kinds := map[string]map[string]bool{}
	for _, ex := range examples {
		var body map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(ex.Body, &body), ex.Path)
		for _, key := range []string{"totalMoney", "amount"} {
			raw, ok := body[key]
			if !ok {
				continue
			}
			if kinds[ex.Schema] == nil {
				kinds[ex.Schema] = map[string]bool{}
			}
			if raw[0] == '"' {
				kinds[ex.Schema]["string"] = true
			} else {
				kinds[ex.Schema]["number"] = true
			}
		}
	}
	for _, typ := range append(inboundTypes(), commands...) {
		if typ == "OrderFulfillFailedIntegrationEvent" {
			assert.Empty(t, kinds[typ], "OrderFulfillFailed carries no amount")
			continue
		}
		assert.True(t, kinds[typ]["number"], "%s: no example with money as a JSON number", typ)
		assert.True(t, kinds[typ]["string"], "%s: no example with money as a JSON string", typ)
	}
}

func TestSeedExamplesPresent(t *testing.T) {
	examples, err := specs.Examples()
	require.NoError(t, err)
	var bookworm, accelbyte []string
	for _, ex := range examples {
		switch base := path.Base(ex.Path); {
		case base == "seed.json":
			bookworm = append(bookworm, ex.Schema)
		case strings.HasPrefix(base, "seed-"):
			require.Equal(t, "AccelByteEvent", ex.Schema)
			accelbyte = append(accelbyte, strings.TrimSuffix(strings.TrimPrefix(base, "seed-"), ".json"))
		}
	}
	// Seed 000 has nine example values (none for OrderStatusChangedToCancel); seed 003 one per event.
	assert.ElementsMatch(t, []string{"UserCheckedOutIntegrationEvent", "BasketDeletedCompleteIntegrationEvent",
		"BasketDeletedFailedIntegrationEvent", "OrderStatusChangedToCompleteIntegrationEvent", "PlaceOrderCommand",
		"DeleteBasketCompleteCommand", "DeleteBasketFailedCommand", "CompleteOrderCommand", "CancelOrderCommand"}, bookworm)
	assert.ElementsMatch(t, accelByteEvents, accelbyte)
}

// mutate decodes an example file, applies change and re-encodes it.
func mutate(t *testing.T, file string, change func(m map[string]any)) []byte {
	t.Helper()
	raw, err := specs.FS.ReadFile(path.Join(specs.ExamplesDir, file))
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	change(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func obj(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

func set(key string, v any) func(map[string]any) { return func(m map[string]any) { m[key] = v } }
func del(key string) func(map[string]any)        { return func(m map[string]any) { delete(m, key) } }
func in(keys []string, f func(map[string]any)) func(map[string]any) {
	return func(m map[string]any) { f(obj(m, keys...)) }
}

func TestNegativeCases(t *testing.T) {
	order := []string{"payload", "order"}
	cases := []struct {
		name, schema, file string
		change             func(map[string]any)
	}{
		{"missing orderId", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", del("orderId")},
		{"missing basketId", "BasketDeletedCompleteIntegrationEvent", "BasketDeletedCompleteIntegrationEvent/string-money.json", del("basketId")},
		{"missing totalMoney", "OrderStatusChangedToCancelIntegrationEvent", "OrderStatusChangedToCancelIntegrationEvent/number-money.json", del("totalMoney")},
		{"float-like money string", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/string-money.json", set("totalMoney", "1e3")},
		{"money with two dots", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/string-money.json", set("totalMoney", "12.5.3")},
		{"money with a space", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/string-money.json", set("totalMoney", " 12.50")},
		{"money with a trailing dot", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/string-money.json", set("totalMoney", "12.")},
		{"negative money string", "BasketDeletedFailedIntegrationEvent", "BasketDeletedFailedIntegrationEvent/string-money.json", set("totalMoney", "-1.00")},
		{"negative money number", "BasketDeletedFailedIntegrationEvent", "BasketDeletedFailedIntegrationEvent/number-money.json", set("totalMoney", json.Number("-1"))},
		{"money as boolean", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("totalMoney", true)},
		{"money as null", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("totalMoney", nil)},
		{"orderId not a UUID", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("orderId", "order-42")},
		{"orderId without hyphens", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("orderId", "0198c0de5a1e7c3b9f4e2d6a8b1c3e5f")},
		{"orderId nil UUID", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("orderId", "00000000-0000-0000-0000-000000000000")},
		{"orderId wrong type", "OrderStatusChangedToCompleteIntegrationEvent", "OrderStatusChangedToCompleteIntegrationEvent/string-money.json", set("orderId", json.Number("42"))},
		{"id not a UUID", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("id", "123")},
		{"creationDate not a date-time", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("creationDate", "yesterday")},
		{"fullName wrong type", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("fullName", json.Number("7"))},
		{"email wrong type", "OrderStatusChangedToCancelIntegrationEvent", "OrderStatusChangedToCancelIntegrationEvent/string-money.json", set("email", []any{"a@b"})},
		{"refund without amount", "PaymentRefundedIntegrationEvent", "PaymentRefundedIntegrationEvent/number-amount.json", del("amount")},
		{"refund without providerReference", "PaymentRefundedIntegrationEvent", "PaymentRefundedIntegrationEvent/number-amount.json", del("providerReference")},
		{"chargeback with empty providerReference", "PaymentChargebackIntegrationEvent", "PaymentChargebackIntegrationEvent/number-amount.json", set("providerReference", "")},
		{"chargeback reversed zero amount", "PaymentChargebackReversedIntegrationEvent", "PaymentChargebackReversedIntegrationEvent/string-amount.json", set("amount", "0.00")},
		{"refund failed zero number", "PaymentRefundFailedIntegrationEvent", "PaymentRefundFailedIntegrationEvent/number-amount.json", set("amount", json.Number("0"))},
		{"refund failed float-like amount", "PaymentRefundFailedIntegrationEvent", "PaymentRefundFailedIntegrationEvent/string-amount.json", set("amount", "1e3")},
		{"refund requested missing orderId", "OrderRefundRequestedIntegrationEvent", "OrderRefundRequestedIntegrationEvent/whole-order.json", del("orderId")},
		{"fulfil failed reason wrong type", "OrderFulfillFailedIntegrationEvent", "OrderFulfillFailedIntegrationEvent/with-reason.json", set("reason", json.Number("5"))},
		{"payment currency not a code", "PaymentRefundedIntegrationEvent", "PaymentRefundedIntegrationEvent/string-amount.json", set("currency", "dollars")},

		{"command missing orderId", "PlaceOrderCommand", "PlaceOrderCommand/ledger-bare.json", del("orderId")},
		{"command missing id", "CompleteOrderCommand", "CompleteOrderCommand/ledger-bare.json", del("id")},
		{"command missing creationDate", "DeleteBasketCompleteCommand", "DeleteBasketCompleteCommand/ledger-bare.json", del("creationDate")},
		{"command unknown property", "DeleteBasketCompleteCommand", "DeleteBasketCompleteCommand/ledger-bare.json", set("orderID", "0198c0de-5a1e-7c3b-9f4e-2d6a8b1c3e5f")},
		{"command float-like money", "CancelOrderCommand", "CancelOrderCommand/ledger-string-money.json", set("totalMoney", "1e3")},
		{"command id not a UUID", "PlaceOrderCommand", "PlaceOrderCommand/ledger-bare.json", set("id", "not-a-uuid")},
		{"command basketId on DeleteBasketComplete", "DeleteBasketCompleteCommand", "DeleteBasketCompleteCommand/ledger-bare.json", set("basketId", "0198c0dd-1f2e-7a4b-8c6d-0e1f2a3b4c5d")},

		{"AccelByte wrong name", "orderCreated", "orderCreated/ledger.json", set("name", "orderCharged")},
		{"AccelByte wrong status", "orderCreated", "orderCreated/ledger.json", in(order, set("status", "CHARGED"))},
		{"AccelByte refund requested wrong status", "orderRefundRequested", "orderRefundRequested/ledger.json", in(order, set("status", "CHARGED"))},
		{"AccelByte status updated unknown status", "orderStatusUpdated", "orderStatusUpdated/ledger.json", in(order, set("status", "PAID"))},
		{"AccelByte price as string", "orderCharged", "orderCharged/ledger.json", in(order, set("price", "9999"))},
		{"AccelByte price as float", "orderCharged", "orderCharged/ledger.json", in(order, set("price", json.Number("99.99")))},
		{"AccelByte price above int32", "orderCharged", "orderCharged/ledger.json", in(order, set("actualPaid", json.Number("2147483648")))},
		{"AccelByte missing order", "orderCancelled", "orderCancelled/ledger.json", in([]string{"payload"}, del("order"))},
		{"AccelByte missing orderNo", "orderCancelled", "orderCancelled/ledger.json", in(order, del("orderNo"))},
		{"AccelByte order unknown property", "orderExpired", "orderExpired/ledger.json", in(order, set("total", json.Number("9999")))},
		{"AccelByte currency type", "orderRefunded", "orderRefunded/ledger.json", in(append(order, "currency"), set("currencyType", "GOLD"))},
		{"AccelByte missing id", "orderFulfilled", "orderFulfilled/ledger.json", del("id")},
		{"AccelByte timestamp", "orderFulfilled", "orderFulfilled/ledger.json", set("timestamp", "2025-08-01 12:30")},
		{"AccelByte seed version as string", "AccelByteEvent", "AccelByteEvent/seed-orderCreated.json", set("version", "0")},
		{"AccelByte seed sandbox as string", "AccelByteEvent", "AccelByteEvent/seed-orderCreated.json", in(order, set("sandbox", "true"))},

		{"MassTransit missing messageType", "MassTransitEnvelope", "envelopes/masstransit/UserCheckedOutIntegrationEvent.json", del("messageType")},
		{"MassTransit messageType not an array", "MassTransitEnvelope", "envelopes/masstransit/UserCheckedOutIntegrationEvent.json", set("messageType", "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent")},
		{"MassTransit messageType not a URN", "MassTransitEnvelope", "envelopes/masstransit/UserCheckedOutIntegrationEvent.json", set("messageType", []any{"BookWorm.Contracts:UserCheckedOutIntegrationEvent"})},
		{"MassTransit message not an object", "MassTransitEnvelope", "envelopes/masstransit/UserCheckedOutIntegrationEvent.json", set("message", "{}")},
		{"MassTransit messageId not a UUID", "MassTransitEnvelope", "envelopes/masstransit/PlaceOrderCommand.json", set("messageId", "42")},
		{"CloudEvents spec version", "CloudEventsEnvelope", "envelopes/cloudevents/PaymentChargebackIntegrationEvent.json", set("specversion", "0.3")},
		{"CloudEvents missing id", "CloudEventsEnvelope", "envelopes/cloudevents/PaymentChargebackIntegrationEvent.json", del("id")},
		{"CloudEvents type without namespace", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", set("type", "UserCheckedOutIntegrationEvent")},
		{"CloudEvents missing data", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", del("data")},
		{"CloudEvents time", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", set("time", "10:00")},
		{"CloudEvents missing source", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", del("source")},
		{"CloudEvents upper-case attribute name", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", set("traceId", "t")},
		{"CloudEvents data and data_base64", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", set("data_base64", "e30=")},
		{"CloudEvents object extension", "CloudEventsEnvelope", "envelopes/cloudevents/UserCheckedOutIntegrationEvent.json", set("comexample", map[string]any{"a": "b"})},
		{"CloudEvents data_base64 not a string", "CloudEventsEnvelope", "envelopes/cloudevents/PaymentRefundedIntegrationEvent.data-base64.json", set("data_base64", json.Number("1"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			original, err := specs.FS.ReadFile(path.Join(specs.ExamplesDir, tc.file))
			require.NoError(t, err)
			require.NoError(t, specs.Validate(tc.schema, original), "the unmodified example must pass")
			err = specs.Validate(tc.schema, mutate(t, tc.file, tc.change))
			require.Error(t, err)
			var ve *jsonschema.ValidationError
			assert.True(t, errors.As(err, &ve), "want a schema violation, got %v", err)
		})
	}
}

// Positive edge cases the schemas must not reject (no stricter than the seeds and BookWorm).
func TestLenientCases(t *testing.T) {
	cases := []struct {
		name, schema, file string
		change             func(map[string]any)
	}{
		{"upper-case UUID", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("orderId", "0198C0DE-5A1E-7C3B-9F4E-2D6A8B1C3E5F")},
		{"integer money", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("totalMoney", json.Number("100"))},
		{"integer money string", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/string-money.json", set("totalMoney", "100")},
		{"zero total", "BasketDeletedCompleteIntegrationEvent", "BasketDeletedCompleteIntegrationEvent/string-money.json", set("totalMoney", "0.00")},
		{"unknown inbound property", "BasketDeletedCompleteIntegrationEvent", "BasketDeletedCompleteIntegrationEvent/string-money.json", set("buyerName", "x")},
		{"null email", "BasketDeletedFailedIntegrationEvent", "BasketDeletedFailedIntegrationEvent/number-money.json", set("email", nil)},
		{".NET 7-digit fraction", "UserCheckedOutIntegrationEvent", "UserCheckedOutIntegrationEvent/number-money.json", set("creationDate", "2025-08-01T10:00:00.1234567+00:00")},
		{"no fullName", "CompleteOrderCommand", "CompleteOrderCommand/ledger-bare.json", del("fullName")},
		{"AccelByte extra envelope property", "orderCharged", "orderCharged/ledger.json", set("timestampUnixNano", json.Number("1754042401000000000"))},
		{"AccelByte without optional envelope members", "orderCharged", "orderCharged/ledger.json", func(m map[string]any) {
			for _, k := range []string{"parentNamespace", "clientId", "userId", "traceId", "sessionId"} {
				delete(m, k)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, specs.Validate(tc.schema, mutate(t, tc.file, tc.change)))
		})
	}
}

func loadAsyncAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := specs.FS.ReadFile(specs.AsyncAPIPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	return doc
}

func amqpBinding(t *testing.T, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	b, _ := m["bindings"].(map[string]any)
	a, ok := b["amqp"].(map[string]any)
	require.True(t, ok, "no amqp binding")
	return a
}

func TestAsyncAPINamesAreDesignNames(t *testing.T) {
	doc := loadAsyncAPI(t)
	assert.Equal(t, "2.6.0", doc["asyncapi"])
	want := designNames()
	seen := map[string]bool{}
	note := func(name, where string) {
		_, ok := want[name]
		assert.True(t, ok, "%s names %q, which is not a contract name", where, name)
		seen[name] = true
	}
	channels := doc["channels"].(map[string]any)
	for name, ch := range channels {
		note(name, "channel")
		b := amqpBinding(t, ch)
		switch b["is"] {
		case "routingKey":
			ex := b["exchange"].(map[string]any)
			exName := ex["name"].(string)
			note(exName, "channel "+name+" exchange")
			assert.Equal(t, true, ex["durable"], "%s durable", exName)
			switch want[name] {
			case "fanout exchange":
				assert.Equal(t, name, exName, "a fanout channel is its exchange")
				assert.Equal(t, "fanout", ex["type"], exName)
			case "routing key":
				assert.Equal(t, "orderProcessing", exName)
				assert.Equal(t, "topic", ex["type"])
			default:
				t.Errorf("channel %s: routingKey binding on a %s", name, want[name])
			}
		case "queue":
			q := b["queue"].(map[string]any)
			assert.Equal(t, name, q["name"], "queue channel named after its queue")
			assert.Equal(t, "queue", want[name], name)
			assert.Equal(t, true, q["durable"], name)
			bound, _ := b["x-bindings"].([]any)
			for _, x := range bound {
				note(x.(map[string]any)["exchange"].(string), "queue "+name+" x-bindings")
			}
		default:
			t.Errorf("channel %s: amqp binding is %v", name, b["is"])
		}
	}
	for name := range want {
		assert.True(t, seen[name], "contract name %q missing from asyncapi.yaml", name)
	}

	// The ledger queue: quorum, bound to all eleven consumed exchanges.
	lq := amqpBinding(t, channels[ledgerQueue])
	assert.Equal(t, "quorum", lq["x-arguments"].(map[string]any)["x-queue-type"])
	var bound []string
	for _, x := range lq["x-bindings"].([]any) {
		bound = append(bound, x.(map[string]any)["exchange"].(string))
	}
	var consumed []string
	for _, typ := range inboundTypes() {
		consumed = append(consumed, namespaceOf(typ)+":"+typ)
	}
	assert.ElementsMatch(t, consumed, bound)
	for cmd, queues := range consumerQueues {
		for _, q := range queues {
			xb := amqpBinding(t, channels[q])["x-bindings"].([]any)
			require.Len(t, xb, 1, q)
			assert.Equal(t, "BookWorm.Contracts:"+cmd, xb[0].(map[string]any)["exchange"], q)
		}
	}

	// Direction (AsyncAPI 2: publish = the ledger consumes, subscribe = the ledger sends).
	for _, typ := range inboundTypes() {
		ch := channels[namespaceOf(typ)+":"+typ].(map[string]any)
		assert.Contains(t, ch, "publish", typ)
		assert.NotContains(t, ch, "subscribe", typ)
	}
	for _, name := range append(append([]string{ledgerQueue + "_error", ledgerQueue + "_skipped"}, accelByteEvents...), prefixed("BookWorm.Contracts:", commands)...) {
		ch := channels[name].(map[string]any)
		assert.Contains(t, ch, "subscribe", name)
		assert.NotContains(t, ch, "publish", name)
	}
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// collectRefs gathers every "$ref" string value in v.
func collectRefs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				*out = append(*out, s)
				continue
			}
			collectRefs(e, out)
		}
	case []any:
		for _, e := range x {
			collectRefs(e, out)
		}
	}
}

func TestAsyncAPIReferencesEveryFile(t *testing.T) {
	doc := loadAsyncAPI(t)
	var refs []string
	collectRefs(doc, &refs)
	require.NotEmpty(t, refs)

	referenced := map[string]bool{} // FS paths
	var queue []string
	for _, r := range refs {
		file, _, _ := strings.Cut(r, "#")
		if file == "" {
			continue // internal to asyncapi.yaml: the parser resolves those
		}
		p := path.Clean(file)
		_, err := fs.Stat(specs.FS, p)
		require.NoError(t, err, "asyncapi.yaml refers to %s", r)
		if !referenced[p] {
			referenced[p] = true
			queue = append(queue, p)
		}
	}
	// Follow schema-to-schema references.
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if !strings.HasPrefix(p, specs.SchemasDir+"/") {
			continue
		}
		raw, err := specs.FS.ReadFile(p)
		require.NoError(t, err)
		var sch any
		require.NoError(t, json.Unmarshal(raw, &sch))
		var inner []string
		collectRefs(sch, &inner)
		for _, r := range inner {
			file, _, _ := strings.Cut(r, "#")
			if file == "" {
				continue
			}
			q := path.Join(path.Dir(p), file)
			_, err := fs.Stat(specs.FS, q)
			require.NoError(t, err, "%s refers to %s", p, r)
			if !referenced[q] {
				referenced[q] = true
				queue = append(queue, q)
			}
		}
	}

	names, err := specs.SchemaNames()
	require.NoError(t, err)
	for _, n := range names {
		assert.True(t, referenced[path.Join(specs.SchemasDir, n+".json")], "schema %s is not referenced by asyncapi.yaml", n)
	}
	// Every example is attached to a message, so the AsyncAPI parser checks it against the payload too.
	examples, err := specs.Examples()
	require.NoError(t, err)
	for _, ex := range examples {
		assert.True(t, referenced[ex.Path], "example %s is not referenced by asyncapi.yaml", ex.Path)
	}
}

// TestAsyncAPIParser runs the official AsyncAPI parser (specs/validate).
func TestAsyncAPIParser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: install Node.js and run `make specs-deps` to validate asyncapi.yaml with @asyncapi/parser")
	}
	if _, err := os.Stat(filepath.Join("validate", "node_modules", "@asyncapi", "parser")); err != nil {
		t.Skip("specs/validate/node_modules missing: run `make specs-deps` to validate asyncapi.yaml with @asyncapi/parser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "validate.mjs", "../asyncapi.yaml")
	cmd.Dir = "validate"
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "AsyncAPI parser:\n%s", out)
	assert.Contains(t, string(out), "valid AsyncAPI 2.6.0")
	assert.NotContains(t, string(out), "\nerror ")
	t.Logf("%s", out)
}

// TestContractNamesAreTheCode holds the names declared once in domain to
// the list the documents are checked against, so neither can drift.
func TestContractNamesAreTheCode(t *testing.T) {
	var inbound []string
	for _, ft := range domain.InboundTypes() {
		inbound = append(inbound, string(ft))
		assert.Equal(t, namespaceOf(string(ft))+":"+string(ft), domain.InboundExchange(ft))
	}
	assert.ElementsMatch(t, inboundTypes(), inbound)
	assert.ElementsMatch(t, commands, domain.Commands())
	assert.ElementsMatch(t, accelByteEvents, domain.AccelByteEvents())
	assert.Equal(t, ledgerQueue, domain.DefaultQueue)
	assert.Equal(t, ledgerQueue+"_error", domain.ErrorQueue(domain.DefaultQueue))
	assert.Equal(t, ledgerQueue+"_skipped", domain.SkippedQueue(domain.DefaultQueue))
	assert.Equal(t, "orderProcessing", domain.AccelByteExchange)
	got := map[string][]string{}
	for _, q := range domain.ConsumerQueues() {
		assert.Equal(t, "BookWorm.Contracts:"+q.Command, domain.CommandExchange(q.Command))
		got[q.Command] = append(got[q.Command], q.Queue)
	}
	assert.Equal(t, consumerQueues, got)
	assert.Equal(t, "order-", domain.StreamPrefix)
}
