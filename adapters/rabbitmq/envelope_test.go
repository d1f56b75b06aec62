package rabbitmq_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

const (
	orderID = "0198a7f4-5b2e-7c3d-9e1f-2a3b4c5d6e7f"
	mtID    = "0198a7f4-0000-7000-8000-000000000001"
	ceID    = "0198a7f4-0000-7000-8000-000000000002"
)

func mtBody(id, urn, message string) []byte {
	return []byte(`{
  "messageId": "` + id + `", "requestId": null, "correlationId": "0198a7f4-0000-7000-8000-0000000000cc",
  "conversationId": "0198a7f4-0000-7000-8000-0000000000dd", "initiatorId": null,
  "sourceAddress": "rabbitmq://localhost/ordering", "destinationAddress": "rabbitmq://localhost/BookWorm.Contracts:UserCheckedOutIntegrationEvent",
  "messageType": ["urn:message:MassTransit:Other", "` + urn + `", "urn:message:BookWorm.Chassis.EventBus:IntegrationEvent"],
  "message": ` + message + `,
  "expirationTime": null, "sentTime": "2025-08-01T10:00:00.1234567Z",
  "headers": {"MT-Activity-Id": "00-abc-def-01"}, "host": {"machineName": "m", "processId": 1}
}`)
}

const checkout = `{"orderId":"` + orderID + `","basketId":"0198a7f4-0000-7000-8000-0000000000bb","fullName":"John Doe","email":"j@x.com","totalMoney":"99.99","id":"x","creationDate":"2025-08-01T10:00:00Z"}`

func ceBody(id, typ, data string) []byte {
	return []byte(`{"topic":"` + typ + `","tenantid":null,"traceid":"trace-1","tracestate":null,"data":` + data +
		`,"id":"` + id + `","specversion":"1.0","datacontenttype":"application/json; charset=utf-8","source":"book-worm.-ordering","type":"` + typ +
		`","time":"2026-05-07T10:00:00.0000000+00:00","traceparent":"00-1-2-01"}`)
}

func TestDecodeMassTransit(t *testing.T) {
	m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{
		ContentType: "application/vnd.masstransit+json; charset=utf-8", MessageID: "amqp-id",
		Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent",
		Body:     mtBody(mtID, "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", checkout),
	})
	require.NoError(t, err)
	assert.Equal(t, domain.EnvelopeMassTransit, m.Envelope)
	assert.Equal(t, mtID, m.MessageID, "envelope id wins over the AMQP message_id")
	assert.Equal(t, "UserCheckedOutIntegrationEvent", m.Type)
	assert.Equal(t, domain.NamespaceBookWorm, m.Namespace)
	assert.Equal(t, "0198a7f4-0000-7000-8000-0000000000cc", m.CorrelationID)
	assert.Equal(t, "0198a7f4-0000-7000-8000-0000000000dd", m.ConversationID)
	assert.Equal(t, time.Date(2025, 8, 1, 10, 0, 0, 123456700, time.UTC), m.SentAt)
	assert.JSONEq(t, checkout, string(m.Body))
	assert.Equal(t, 1, m.DeliveryCount)
}

func TestDecodeCloudEvents(t *testing.T) {
	data := `{"orderId":"` + orderID + `","basketId":"b","totalMoney":100}`
	for _, typ := range []string{"BookWorm.Contracts.BasketDeletedCompleteIntegrationEvent", "OrderLedger.Contracts.BasketDeletedCompleteIntegrationEvent"} {
		m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: "application/cloudevents+json", Body: ceBody(ceID, typ, data)})
		require.NoError(t, err, typ)
		assert.Equal(t, domain.EnvelopeCloudEvents, m.Envelope)
		assert.Equal(t, ceID, m.MessageID)
		assert.Equal(t, "BasketDeletedCompleteIntegrationEvent", m.Type)
		assert.Equal(t, "trace-1", m.CorrelationID, "Wolverine's traceid is the correlation")
		assert.Equal(t, time.Date(2026, 5, 7, 10, 0, 0, 0, time.UTC), m.SentAt)
		assert.JSONEq(t, data, string(m.Body))
	}
	m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: "application/cloudevents+json",
		Body: []byte(`{"specversion":"1.0","id":"e1","type":"OrderLedger.Contracts.PaymentRefundedIntegrationEvent","source":"s","correlationid":"c1","data":{"orderId":"o"}}`)})
	require.NoError(t, err)
	assert.Equal(t, "PaymentRefundedIntegrationEvent", m.Type)
	assert.Equal(t, domain.NamespaceLedger, m.Namespace)
	assert.Equal(t, "c1", m.CorrelationID)
}

func TestDecodeBare(t *testing.T) {
	body := `{"orderId":"` + orderID + `","amount":"10.50"}`
	cases := []struct {
		name, typ, exchange string
		headers             map[string]any
	}{
		{"plain type", "PaymentChargebackIntegrationEvent", "", nil},
		{"dotted type", "OrderLedger.Contracts.PaymentChargebackIntegrationEvent", "", nil},
		{"urn type", "urn:message:OrderLedger.Contracts:PaymentChargebackIntegrationEvent", "", nil},
		{"exchange", "", "OrderLedger.Contracts:PaymentChargebackIntegrationEvent", nil},
		{"prefixed exchange", "", "eu.OrderLedger.Contracts:PaymentChargebackIntegrationEvent", nil},
		{"masstransit raw header", "", "", map[string]any{"MT-MessageType": "urn:message:OrderLedger.Contracts:PaymentChargebackIntegrationEvent"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: "application/json", Type: c.typ, Exchange: c.exchange,
				MessageID: "amqp-1", Headers: c.headers, Timestamp: time.Unix(1700000000, 0), Body: []byte(body)})
			require.NoError(t, err)
			assert.Equal(t, domain.EnvelopeBare, m.Envelope)
			assert.Equal(t, "amqp-1", m.MessageID)
			assert.Equal(t, "PaymentChargebackIntegrationEvent", m.Type)
			assert.Equal(t, time.Unix(1700000000, 0).UTC(), m.SentAt)
			assert.Equal(t, body, string(m.Body))
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := mtBody(mtID, "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", checkout)
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	cases := []struct {
		name string
		d    rabbitmq.Delivery
		want error
	}{
		{"bad json", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: []byte(`{"messageId":`)}, rabbitmq.ErrMalformed},
		{"trailing data", rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Type: "PaymentRefundedIntegrationEvent", MessageID: "1", Body: []byte(`{} {}`)}, rabbitmq.ErrMalformed},
		{"invalid utf-8", rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Type: "PaymentRefundedIntegrationEvent", MessageID: "1", Body: []byte("{\"a\":\"\xff\"}")}, rabbitmq.ErrMalformed},
		{"no message", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: []byte(`{"messageId":"1","messageType":["urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent"]}`)}, rabbitmq.ErrMalformed},
		{"message not object", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: mtBody(mtID, "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", `"x"`)}, rabbitmq.ErrMalformed},
		{"no messageType", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: []byte(`{"messageId":"1","message":{}}`)}, rabbitmq.ErrMalformed},
		{"too large", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: append(good, make([]byte, 1<<20)...)}, rabbitmq.ErrMalformed},
		{"too deep", rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Type: "PaymentRefundedIntegrationEvent", MessageID: "1", Body: []byte(deep)}, rabbitmq.ErrMalformed},
		{"wrong content type", rabbitmq.Delivery{ContentType: "text/plain", Body: good}, rabbitmq.ErrMalformed},
		{"no content type", rabbitmq.Delivery{Body: good}, rabbitmq.ErrMalformed},
		{"latin1", rabbitmq.Delivery{ContentType: "application/json; charset=iso-8859-1", Type: "PaymentRefundedIntegrationEvent", MessageID: "1", Body: []byte(`{}`)}, rabbitmq.ErrMalformed},
		{"duplicate key", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: []byte(`{"messageId":"1","messageId":"2","messageType":["urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent"],"message":{}}`)}, rabbitmq.ErrMalformed},
		{"duplicate key other case", rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Type: "PaymentRefundedIntegrationEvent", MessageID: "1", Body: []byte(`{"orderId":"a","OrderId":"b"}`)}, rabbitmq.ErrMalformed},
		{"no identity", rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Type: "PaymentRefundedIntegrationEvent", Body: []byte(`{"orderId":"a"}`)}, rabbitmq.ErrNoIdentity},
		{"cloudevents 0.3", rabbitmq.Delivery{ContentType: domain.ContentTypeCloudEvents, Body: []byte(`{"specversion":"0.3","id":"1","type":"BookWorm.Contracts.UserCheckedOutIntegrationEvent","data":{}}`)}, rabbitmq.ErrMalformed},
		{"bad sentTime", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: []byte(`{"messageId":"1","sentTime":"yesterday","messageType":["urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent"],"message":{}}`)}, rabbitmq.ErrMalformed},
		{"unknown urn", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: mtBody(mtID, "urn:message:BookWorm.Contracts:PlaceOrderCommand", `{}`)}, rabbitmq.ErrUnknownType},
		{"foreign namespace only", rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: []byte(`{"messageId":"1","messageType":["urn:message:Shop:UserCheckedOutIntegrationEvent"],"message":{}}`)}, rabbitmq.ErrUnknownType},
		{"unknown ce type", rabbitmq.Delivery{ContentType: domain.ContentTypeCloudEvents, Body: ceBody("1", "BookWorm.Contracts.Nope", `{}`)}, rabbitmq.ErrUnknownType},
		{"bare no type", rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, MessageID: "1", Exchange: "amq.fanout-ish", Body: []byte(`{}`)}, rabbitmq.ErrUnknownType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := rabbitmq.DecodeEnvelope(c.d)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			if errors.Is(c.want, rabbitmq.ErrMalformed) {
				assert.NotErrorIs(t, err, rabbitmq.ErrUnknownType)
			}
		})
	}
}

// TestDecodeReadsNamesAsEncodingJSON pins how the one-pass decoder reads
// envelope members: as encoding/json read them into the envelope struct
// before (names matched with Unicode case folding, a later spelling
// overriding an earlier one, null leaving a string as it was), with
// duplicates under strings.ToLower refused at every level.
func TestDecodeReadsNamesAsEncodingJSON(t *testing.T) {
	urn := `["urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent"]`
	cases := []struct {
		name, ct, body string
		id             string // "" when refused
	}{
		{"names in any case", domain.ContentTypeMassTransit, `{"MESSAGEID":"1","MessageType":` + urn + `,"MESSAGE":{}}`, "1"},
		{"folded spelling overrides", domain.ContentTypeMassTransit, `{"messageId":"1","meſſageId":"2","messageType":` + urn + `,"message":{}}`, "2"},
		{"null keeps a string", domain.ContentTypeMassTransit, `{"messageId":"1","meſſageId":null,"messageType":` + urn + `,"message":{}}`, "1"},
		{"null element keeps an element", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":` + urn + `,"meſſageType":[null],"message":{}}`, "1"},
		{"null empties a list", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":` + urn + `,"meſſageType":null,"message":{}}`, ""},
		{"later message not an object", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":` + urn + `,"message":{},"meſſage":"x"}`, ""},
		{"duplicate inside the message", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":` + urn + `,"message":{"a":1,"A":2}}`, ""},
		{"escaped duplicate", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":` + urn + `,"message":{"a\u0062":1,"ab":2}}`, ""},
		{"lone surrogates are one name", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":` + urn + `,"message":{"\ud800":1,"\ud801":2}}`, ""},
		{"lone surrogate read as U+FFFD", domain.ContentTypeMassTransit, `{"messageId":"\ud800","messageType":` + urn + `,"message":{}}`, "\uFFFD"},
		{"id of the wrong type", domain.ContentTypeMassTransit, `{"messageId":1,"messageType":` + urn + `,"message":{}}`, ""},
		{"urn of the wrong type", domain.ContentTypeMassTransit, `{"messageId":"1","messageType":["x",1],"message":{}}`, ""},
		{"data_base64 null is unset", domain.ContentTypeCloudEvents, `{"specversion":"1.0","id":"1","source":"s","type":"UserCheckedOutIntegrationEvent","data":{},"data_base64":null}`, "1"},
		{"data an array", domain.ContentTypeCloudEvents, `{"specversion":"1.0","id":"1","source":"s","type":"UserCheckedOutIntegrationEvent","data":[]}`, ""},
		{"cloudevent names are exact", domain.ContentTypeCloudEvents, `{"specversion":"1.0","ID":"1","source":"s","type":"UserCheckedOutIntegrationEvent","data":{}}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: c.ct, Body: []byte(c.body)})
			if c.id == "" {
				assert.ErrorIs(t, err, rabbitmq.ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.id, m.MessageID)
			assert.Equal(t, "UserCheckedOutIntegrationEvent", m.Type)
			assert.Equal(t, "{}", string(m.Body))
		})
	}
}

func TestEncodeMassTransitRoundTrip(t *testing.T) {
	out := rabbitmq.OutboundEnvelope{
		MessageID: mtID, CorrelationID: orderID, InitiatorID: ceID, Type: "UserCheckedOutIntegrationEvent",
		SourceAddress: "rabbitmq://localhost/finance-order-state-machine", Message: json.RawMessage(checkout),
		SentTime: time.Date(2025, 8, 1, 10, 0, 0, 0, time.UTC), Headers: map[string]any{"MT-Activity-Id": "a"},
	}
	b, err := rabbitmq.EncodeMassTransit(out)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	assert.Equal(t, []any{"urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", rabbitmq.BaseTypeURN}, raw["messageType"])
	assert.Nil(t, raw["requestId"])
	assert.Contains(t, raw, "host")
	m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Body: b})
	require.NoError(t, err)
	assert.Equal(t, mtID, m.MessageID)
	assert.Equal(t, orderID, m.CorrelationID)
	assert.Equal(t, ceID, m.InitiatorID)
	assert.Equal(t, out.SentTime, m.SentAt)
	assert.JSONEq(t, checkout, string(m.Body))

	ce, err := rabbitmq.EncodeCloudEvent(out)
	require.NoError(t, err)
	m, err = rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: domain.ContentTypeCloudEvents, Body: ce})
	require.NoError(t, err)
	assert.Equal(t, mtID, m.MessageID)
	assert.Equal(t, orderID, m.CorrelationID)
	assert.Equal(t, "UserCheckedOutIntegrationEvent", m.Type)
	assert.JSONEq(t, checkout, string(m.Body))
}

func TestEncodeRejects(t *testing.T) {
	_, err := rabbitmq.EncodeMassTransit(rabbitmq.OutboundEnvelope{MessageID: "order-1/3/place", Type: "PlaceOrderCommand", Message: json.RawMessage(`{}`)})
	assert.ErrorIs(t, err, rabbitmq.ErrEnvelope, "MassTransit reads ids as Guid")
	_, err = rabbitmq.EncodeCloudEvent(rabbitmq.OutboundEnvelope{MessageID: mtID, Type: "PlaceOrderCommand", Message: json.RawMessage(`[1]`)})
	assert.ErrorIs(t, err, rabbitmq.ErrEnvelope)
}

func TestConfigValidate(t *testing.T) {
	_, err := rabbitmq.New(rabbitmq.Config{URL: "http://x", QueueType: "stream", Prefetch: 10, BatchSize: 20,
		TLS: rabbitmq.TLS{CertFile: "c.pem"}, OutboundExchanges: []rabbitmq.ExchangeSpec{{Name: "x", Kind: "direct"}}}, nil)
	require.Error(t, err)
	for _, want := range []string{"url", "queue type", "batch size", "cert file and key file", "outbound exchange"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = rabbitmq.New(rabbitmq.Config{URL: "amqp://guest:secret@localhost:5672/"}, nil)
	require.NoError(t, err)
	_, err = rabbitmq.New(rabbitmq.Config{URL: "amqp://guest:secret@local host:5672/"}, nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret", "credentials never reach an error")
	c := rabbitmq.Config{URL: "amqp://localhost/"}.WithDefaults()
	assert.Len(t, c.InboundBindings, 11)
	assert.Equal(t, "finance-order-state-machine", c.Queue)
	assert.Equal(t, rabbitmq.QueueQuorum, c.QueueType)
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(domain.ContentTypeMassTransit, "", "", "", mtBody(mtID, "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", checkout))
	f.Add(domain.ContentTypeCloudEvents, "", "", "", ceBody(ceID, "BookWorm.Contracts.OrderStatusChangedToCancelIntegrationEvent", `{"orderId":"o","totalMoney":100}`))
	f.Add("application/json; charset=utf-8", "PaymentRefundedIntegrationEvent", "m1", "", []byte(`{"orderId":"o","amount":"1.00"}`))
	f.Add(domain.ContentTypeJSON, "", "m2", "OrderLedger.Contracts:OrderFulfillFailedIntegrationEvent", []byte(`{"orderId":"o"}`))
	f.Add(domain.ContentTypeJSON, "", "m3", "", []byte(`{"a":[{"b":{"c":[1,2,{"d":null}]}}]}`))
	f.Fuzz(func(t *testing.T, ct, typ, id, exchange string, body []byte) {
		m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: ct, Type: typ, MessageID: id, Exchange: exchange, Body: body})
		if err != nil {
			if !errors.Is(err, rabbitmq.ErrMalformed) && !errors.Is(err, rabbitmq.ErrUnknownType) {
				t.Fatalf("error %v matches neither ErrMalformed nor ErrUnknownType", err)
			}
			return
		}
		if m.MessageID == "" {
			t.Fatal("accepted a message without identity")
		}
		known := false
		for _, k := range rabbitmq.KnownTypes() {
			if k == m.Namespace+":"+m.Type {
				known = true
			}
		}
		if !known {
			t.Fatalf("accepted unknown type %q:%q", m.Namespace, m.Type)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(m.Body, &obj); err != nil {
			t.Fatalf("body is not a JSON object: %v", err)
		}
	})
}
