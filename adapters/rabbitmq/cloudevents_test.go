package rabbitmq_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/specs"
)

// CloudEvents 1.0 over AMQP: the core specification (cloudevents/spec.md),
// the JSON event format (formats/json-format.md) and the AMQP protocol
// binding (bindings/amqp-protocol-binding.md), version 1.0.2.

const ceType = "BookWorm.Contracts.UserCheckedOutIntegrationEvent"

// ceStructured is a structured-mode event in the shape of the JSON format's
// §3.2 example with JSON data, carrying a ledger type; extra members are
// spliced in before data.
func ceStructured(extra string) []byte {
	return []byte(`{"specversion":"1.0","type":"` + ceType + `","source":"/bookworm/ordering","subject":null,` +
		`"id":"` + ceID + `","time":"2018-04-05T17:31:00Z","comexampleextension1":"value","comexampleothervalue":5,` +
		extra + `"datacontenttype":"application/json","data":` + checkout + `}`)
}

// ceBinaryHeaders are the AMQP binding's §3.1.4 example properties under
// prefix, carrying a ledger type.
func ceBinaryHeaders(prefix string) map[string]any {
	return map[string]any{
		prefix + "specversion": "1.0",
		prefix + "type":        ceType,
		prefix + "time":        "2018-04-05T03:56:24Z",
		prefix + "id":          ceID,
		prefix + "source":      "/mycontext/subcontext",
	}
}

func with(h map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestCloudEventStructuredAccepted(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(checkout))
	cases := []struct{ name, body string }{
		{"spec example shape", string(ceStructured(""))},
		{"null optional attributes are unset", string(ceStructured(`"dataschema":null,"unsetextension":null,`))},
		{"boolean and number extensions", string(ceStructured(`"comexampleflag":true,"comexampleint":-7,`))},
		{"data_base64 is decoded", strings.Replace(string(ceStructured("")), `"data":`+checkout, `"data_base64":"`+b64+`"`, 1)},
		{"data_base64 null beside data", string(ceStructured(`"data_base64":null,`))},
		{"no datacontenttype means JSON", strings.Replace(string(ceStructured("")), `"datacontenttype":"application/json",`, "", 1)},
		{"+json datacontenttype", strings.Replace(string(ceStructured("")), `"application/json"`, `"application/vnd.bookworm+json; charset=utf-8"`, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: "application/cloudevents+json; charset=UTF-8",
				MessageID: "amqp-id", Body: []byte(c.body)})
			require.NoError(t, err)
			assert.Equal(t, domain.EnvelopeCloudEvents, m.Envelope)
			assert.Equal(t, ceID, m.MessageID, "the event id is the identity")
			assert.Equal(t, "UserCheckedOutIntegrationEvent", m.Type)
			assert.Equal(t, time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC), m.SentAt)
			assert.JSONEq(t, checkout, string(m.Body))
		})
	}
}

// Every refusal names what is wrong: the reason reaches MT-Fault-Message
// of the parked copy.
func TestCloudEventStructuredRefused(t *testing.T) {
	good := string(ceStructured(""))
	without := func(member string) string {
		i := strings.Index(good, `"`+member+`":`)
		j := i + strings.Index(good[i:], ",") + 1
		return good[:i] + good[j:]
	}
	cases := []struct{ name, ct, body, reason string }{
		{"no id", "", without("id"), "without required attribute id"},
		{"no source", "", without("source"), "without required attribute source"},
		{"no specversion", "", without("specversion"), "without required attribute specversion"},
		{"no type", "", without("type"), "without required attribute type"},
		{"empty id", "", strings.Replace(good, `"id":"`+ceID+`"`, `"id":""`, 1), "without required attribute id"},
		{"null source", "", strings.Replace(good, `"source":"/bookworm/ordering"`, `"source":null`, 1), "without required attribute source"},
		{"specversion 0.3", "", strings.Replace(good, `"1.0"`, `"0.3"`, 1), `specversion "0.3", want 1.0`},
		{"upper-case attribute", "", strings.Replace(good, `"id":`, `"Id":`, 1), `member "Id": attribute names are lower-case`},
		{"upper-case extension", "", string(ceStructured(`"traceId":"t",`)), `member "traceId"`},
		{"underscore in a name", "", string(ceStructured(`"trace_id":"t",`)), `member "trace_id"`},
		{"folded spelling of an attribute", "", string(ceStructured(`"ſource":"x",`)), `member "ſource"`},
		{"attribute of the wrong type", "", strings.Replace(good, `"id":"`+ceID+`"`, `"id":42`, 1), "attribute id must be a JSON string"},
		{"object extension", "", string(ceStructured(`"comexampleobj":{"a":1},`)), "attribute comexampleobj holds an object or an array"},
		{"data and data_base64", "", string(ceStructured(`"data_base64":"e30=",`)), "both data and data_base64"},
		{"data_base64 not base64", "", strings.Replace(good, `"data":`+checkout, `"data_base64":"{not base64}"`, 1), "data_base64 is not base64"},
		{"data_base64 not an object", "", strings.Replace(good, `"data":`+checkout, `"data_base64":"WzFd"`, 1), "data_base64: body is not a JSON object"},
		{"data_base64 a number", "", strings.Replace(good, `"data":`+checkout, `"data_base64":1`, 1), "data_base64 must be a JSON string"},
		{"no data", "", strings.Replace(good, `,"data":`+checkout, ``, 1), "data is missing or not a JSON object"},
		{"xml data", "", strings.Replace(good, `"application/json"`, `"application/xml"`, 1), `datacontenttype "application/xml" is not JSON`},
		{"time without offset", "", strings.Replace(good, `2018-04-05T17:31:00Z`, `2018-04-05T17:31:00`, 1), "not an RFC 3339 timestamp"},
		{"empty subject", "", strings.Replace(good, `"subject":null`, `"subject":""`, 1), "subject is empty"},
		{"relative dataschema", "", string(ceStructured(`"dataschema":"schemas/x.json",`)), "not an absolute URI"},
		{"control character in source", "", strings.Replace(good, `/bookworm/ordering`, `/bookworm\u0007`, 1), "source holds a control character"},
		{"source not a URI-reference", "", strings.Replace(good, `/bookworm/ordering`, `a b`, 1), "not a URI-reference"},
		{"batch format", "application/cloudevents-batch+json", "[" + good + "]", "cloudevent batch (application/cloudevents-batch+json) not accepted"},
		{"avro format", "application/cloudevents+avro", good, `format "application/cloudevents+avro" not supported`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := c.ct
			if ct == "" {
				ct = domain.ContentTypeCloudEvents
			}
			_, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: ct, MessageID: "amqp-id", Body: []byte(c.body)})
			require.ErrorIs(t, err, rabbitmq.ErrMalformed)
			assert.NotErrorIs(t, err, rabbitmq.ErrUnknownType)
			assert.Contains(t, err.Error(), c.reason)
		})
	}
}

func TestCloudEventBinaryMode(t *testing.T) {
	for _, prefix := range []string{"cloudEvents:", "cloudEvents_"} {
		t.Run(prefix, func(t *testing.T) {
			m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: "application/json; charset=utf-8", MessageID: "amqp-id",
				Headers: with(ceBinaryHeaders(prefix), prefix+"correlationid", "corr-1", prefix+"conversationid", "conv-1"),
				Body:    []byte(checkout)})
			require.NoError(t, err)
			assert.Equal(t, domain.EnvelopeCloudEvents, m.Envelope)
			assert.Equal(t, ceID, m.MessageID, "cloudEvents:id wins over the AMQP message_id")
			assert.Equal(t, "UserCheckedOutIntegrationEvent", m.Type)
			assert.Equal(t, domain.NamespaceBookWorm, m.Namespace)
			assert.Equal(t, "corr-1", m.CorrelationID)
			assert.Equal(t, "conv-1", m.ConversationID)
			assert.Equal(t, time.Date(2018, 4, 5, 3, 56, 24, 0, time.UTC), m.SentAt)
			assert.Equal(t, checkout, string(m.Body), "the body is the data, as it is")
		})
	}
	t.Run("native AMQP timestamp and both prefixes agreeing", func(t *testing.T) {
		at := time.Date(2026, 5, 7, 10, 0, 0, 0, time.UTC)
		h := with(ceBinaryHeaders("cloudEvents:"), "cloudEvents:time", at, "cloudEvents_id", ceID, "cloudEvents:traceid", "trace-1",
			"cloudEvents:comexampleothervalue", int64(5), "cloudEvents:unset", nil)
		m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: "application/json", Headers: h, Body: []byte(checkout)})
		require.NoError(t, err)
		assert.Equal(t, at, m.SentAt)
		assert.Equal(t, "trace-1", m.CorrelationID)
	})
	t.Run("no content type", func(t *testing.T) {
		m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{Headers: ceBinaryHeaders("cloudEvents:"), Body: []byte(checkout)})
		require.NoError(t, err)
		assert.Equal(t, ceID, m.MessageID)
	})

	base := ceBinaryHeaders("cloudEvents:")
	cases := []struct {
		name, ct string
		headers  map[string]any
		body     string
		reason   string
	}{
		{"no id", "", with(base, "cloudEvents:id", nil), checkout, "without required attribute id (binary mode)"},
		{"no source", "", with(base, "cloudEvents:source", nil), checkout, "without required attribute source (binary mode)"},
		{"no specversion", "", with(base, "cloudEvents:specversion", nil), checkout, "without required attribute specversion"},
		{"only an id", "", map[string]any{"cloudEvents_id": ceID}, checkout, "without required attribute"},
		{"upper-case attribute", "", with(base, "cloudEvents:Subject", "x"), checkout, `property "cloudEvents:Subject": attribute names are lower-case`},
		{"id not a string", "", with(base, "cloudEvents:id", int64(7)), checkout, "cloudEvents:id must be a string"},
		{"table extension", "", with(base, "cloudEvents:comexample", map[string]any{"a": "b"}), checkout, "holds a table or an array"},
		{"prefixes disagree", "", with(base, "cloudEvents_id", "other"), checkout, "differ"},
		{"xml data", "application/xml", base, `<much wow="xml"/>`, `datacontenttype "application/xml" is not JSON`},
		{"datacontenttype property disagrees", "", with(base, "cloudEvents:datacontenttype", "application/xml"), checkout, "disagrees with content type"},
		{"data not an object", "", base, `[1]`, "binary-mode cloudevent data: body is not a JSON object"},
		{"data not JSON", "", base, `{"orderId":`, "binary-mode cloudevent data: invalid JSON"},
		{"bad time", "", with(base, "cloudEvents:time", "yesterday"), checkout, "not an RFC 3339 timestamp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := c.ct
			if ct == "" {
				ct = domain.ContentTypeJSON
			}
			_, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: ct, MessageID: "amqp-id", Headers: c.headers, Body: []byte(c.body)})
			require.ErrorIs(t, err, rabbitmq.ErrMalformed)
			assert.Contains(t, err.Error(), c.reason)
		})
	}
	_, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: domain.ContentTypeJSON,
		Headers: with(base, "cloudEvents:type", "BookWorm.Contracts.Nope"), Body: []byte(checkout)})
	assert.ErrorIs(t, err, rabbitmq.ErrUnknownType, "an unknown type is skipped, as in every envelope")
}

// The specs' CloudEvents examples of inbound types decode as they are, and
// once more in binary mode: attributes as cloudEvents: properties (the
// AMQP binding §3.1.3), data as the body, datacontenttype as the content
// type.
func TestCloudEventSpecExamplesDecode(t *testing.T) {
	examples, err := specs.Examples()
	require.NoError(t, err)
	n := 0
	for _, ex := range examples {
		if ex.Envelope != specs.EnvelopeCloudEvents || !inbound(ex.Schema) {
			continue
		}
		n++
		t.Run(ex.Path, func(t *testing.T) {
			m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: domain.ContentTypeCloudEvents, Body: ex.Raw})
			require.NoError(t, err)
			assert.Equal(t, ex.Schema, m.Type)
			assert.JSONEq(t, string(ex.Body), string(m.Body))

			var attrs map[string]any
			require.NoError(t, json.Unmarshal(ex.Raw, &attrs))
			h := map[string]any{}
			ct := domain.ContentTypeJSON
			for k, v := range attrs {
				switch k {
				case "data", "data_base64": // the body, ex.Body
				case "datacontenttype":
					ct = v.(string)
				default:
					h["cloudEvents:"+k] = v
				}
			}
			bin, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: ct, Headers: h, Body: ex.Body})
			require.NoError(t, err)
			assert.Equal(t, m.MessageID, bin.MessageID)
			assert.Equal(t, m.Type, bin.Type)
			assert.Equal(t, m.CorrelationID, bin.CorrelationID)
			assert.Equal(t, m.SentAt, bin.SentAt)
			assert.Equal(t, string(ex.Body), string(bin.Body))
		})
	}
	assert.Positive(t, n)
}

func inbound(typ string) bool {
	for _, k := range rabbitmq.KnownTypes() {
		if strings.HasSuffix(k, ":"+typ) {
			return true
		}
	}
	return false
}

// Binary mode through the real broker, the consumer and the ingester on a
// real store: the event id de-duplicates whatever the AMQP message_id, the
// prefix or the content mode; invalid events are parked with their reason.
func TestCloudEventsThroughBrokerAndIngest(t *testing.T) {
	e := newEnv(t, nil)
	obs := &countObserver{}
	b := e.broker(obs)
	log, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = log.Close() })
	in := &ingest.Ingester{Log: log, Currency: domain.DefaultCurrency()}

	ex := e.inbound("UserCheckedOutIntegrationEvent")
	at := time.Date(2026, 5, 7, 10, 0, 0, 0, time.UTC)
	binary := amqp.Table{}
	for k, v := range ceBinaryHeaders("cloudEvents:") {
		binary[k] = v
	}
	binary["cloudEvents:time"] = at // a native AMQP timestamp
	underscore := amqp.Table{}
	for k, v := range ceBinaryHeaders("cloudEvents_") {
		underscore[k] = v
	}
	e.publishRaw(ex, amqp.Publishing{ContentType: "application/json; charset=utf-8", MessageId: "amqp-1", Headers: binary, Body: []byte(checkout)})
	e.publishRaw(ex, amqp.Publishing{ContentType: domain.ContentTypeJSON, MessageId: "amqp-2", Headers: underscore, Body: []byte(checkout)})
	e.publishRaw(ex, amqp.Publishing{ContentType: domain.ContentTypeCloudEvents, Body: ceStructured("")})
	noSource := amqp.Table{}
	for k, v := range binary {
		noSource[k] = v
	}
	delete(noSource, "cloudEvents:source")
	noSource["cloudEvents:id"] = "no-source"
	e.publishRaw(ex, amqp.Publishing{ContentType: domain.ContentTypeJSON, Headers: noSource, Body: []byte(checkout)})
	e.publishRaw(ex, amqp.Publishing{ContentType: "application/cloudevents-batch+json", MessageId: "batch",
		Body: []byte("[" + string(ceStructured("")) + "]")})
	e.publishRaw(ex, amqp.Publishing{ContentType: domain.ContentTypeCloudEvents, MessageId: "upper",
		Body: []byte(strings.Replace(string(ceStructured("")), `"source":`, `"Source":`, 1))})
	startConsumer(t, b, rabbitmq.IngestHandler(in))

	parked := e.drain(domain.ErrorQueue(e.cfg.Queue), 3)
	reasons := map[string]string{}
	for _, d := range parked {
		key := d.MessageId
		if key == "" {
			key, _ = d.Headers["cloudEvents:id"].(string)
		}
		assert.Equal(t, rabbitmq.ReasonMalformed, d.Headers[rabbitmq.HeaderLedgerReason], key)
		reasons[key], _ = d.Headers[rabbitmq.HeaderFaultMessage].(string)
	}
	assert.Contains(t, reasons["no-source"], "cloudevent without required attribute source (binary mode)")
	assert.Contains(t, reasons["batch"], "cloudevent batch (application/cloudevents-batch+json) not accepted")
	assert.Contains(t, reasons["upper"], `cloudevent member "Source": attribute names are lower-case letters and digits only`)

	require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 10*time.Second, 20*time.Millisecond, "all settled")
	evs, err := log.ReadStream(context.Background(), domain.StreamName(orderID), 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1, "one event id for the three copies of one event")
	meta, err := codec.DecodeMetadata(evs[0].Metadata)
	require.NoError(t, err)
	assert.Equal(t, ceID, meta.MessageID)
	assert.Equal(t, domain.EnvelopeCloudEvents, meta.Envelope)
	assert.EqualValues(t, 6, obs.consumed.Load())
}

// The binary-mode examples of asyncapi.yaml (headers, and a bare example
// file as the body) decode to their type with their cloudEvents:id.
func TestCloudEventAsyncAPIBinaryExamplesDecode(t *testing.T) {
	raw, err := specs.FS.ReadFile(specs.AsyncAPIPath)
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Messages map[string]struct {
				Name     string `yaml:"name"`
				Examples []struct {
					Headers map[string]string `yaml:"headers"`
					Payload struct {
						Ref string `yaml:"$ref"`
					} `yaml:"payload"`
				} `yaml:"examples"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	n := 0
	for id, msg := range doc.Components.Messages {
		if !strings.HasSuffix(id, ".cloudevents-binary") {
			continue
		}
		for _, ex := range msg.Examples {
			n++
			body, err := specs.FS.ReadFile(strings.TrimPrefix(ex.Payload.Ref, "./"))
			require.NoError(t, err, id)
			h := map[string]any{}
			for k, v := range ex.Headers {
				h[k] = v
			}
			m, err := rabbitmq.DecodeEnvelope(rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Headers: h, Body: body})
			require.NoError(t, err, id)
			assert.Equal(t, msg.Name, m.Type, id)
			assert.Equal(t, ex.Headers["cloudEvents:id"], m.MessageID, id)
		}
	}
	assert.Len(t, rabbitmq.KnownTypes(), n, "one binary-mode example per inbound type")
}
