package rabbitmq_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// A flag of its own: other golden tests of this package have theirs.
var updateFaults = flag.Bool("update-faults", false, "rewrite specs/golden/faults/ from what the ledger parks")

const faultsGolden = "../../specs/golden/faults"

type mtHeaderList struct {
	Host             []string `json:"host"`
	Fault            []string `json:"fault"`
	FaultReason      string   `json:"faultReason"`
	DeadLetter       []string `json:"deadLetter"`
	DeadLetterReason string   `json:"deadLetterReason"`
}

func loadMassTransitList(t *testing.T) mtHeaderList {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(faultsGolden, "masstransit.json"))
	require.NoError(t, err)
	var l mtHeaderList
	require.NoError(t, json.Unmarshal(b, &l))
	require.Len(t, l.Host, 8)
	require.NotEmpty(t, l.Fault)
	return l
}

var dotnetRoundTrip = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)

// normalized is a parked copy's headers with what differs per run and per
// host replaced by placeholders (after checking it), each value with its
// AMQP type when not a string.
func normalized(t *testing.T, e *env, d amqp.Delivery, vhost string, textual bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range d.Headers {
		if k == "x-delivery-count" {
			continue // stamped by the quorum queues, present or not by broker version
		}
		s, isString := v.(string)
		if !isString {
			s = fmt.Sprintf("%T %v", v, v)
		}
		s = strings.ReplaceAll(s, e.prefix, "<prefix>")
		switch {
		case strings.HasPrefix(k, "MT-Host-"):
			assert.NotEmpty(t, v, k)
			assert.True(t, isString, "%s is a string, as MassTransit writes it", k)
			s = "<host>"
		case k == rabbitmq.HeaderFaultTimestamp:
			assert.Regexp(t, dotnetRoundTrip, v, "MT-Fault-Timestamp in .NET's round-trip format")
			s = "<timestamp>"
		case k == rabbitmq.HeaderLedgerParkedAt:
			_, err := time.Parse(time.RFC3339Nano, s)
			assert.NoError(t, err)
			s = "<timestamp>"
		case k == rabbitmq.HeaderFaultInput:
			s = strings.Replace(s, "/"+vhost+"/", "/<vhost>/", 1)
		case textual && (k == rabbitmq.HeaderFaultMessage || k == rabbitmq.HeaderFaultStackTrace || k == rabbitmq.HeaderLedgerDetail):
			// The decoder's wording is not what this file pins down.
			assert.NotEmpty(t, v, k)
			s = "<text>"
		}
		out[k] = s
	}
	return out
}

// golden compares got with specs/golden/faults/<name>.json (rewritten with
// -update-faults).
func golden(t *testing.T, name string, got any) {
	t.Helper()
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the placeholders readable
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(got))
	b := []byte(buf.String())
	path := filepath.Join(faultsGolden, name+".json")
	if *updateFaults {
		require.NoError(t, os.WriteFile(path, b, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestFaultHeadersGolden ./adapters/rabbitmq/ -update-faults")
	assert.JSONEq(t, string(want), string(b), "%s differs from the golden file", path)
}

type parkedCopy struct {
	Exchange   string            `json:"exchange"`
	RoutingKey string            `json:"routingKey"`
	Headers    map[string]string `json:"headers"`
}

// The header sets of what the ledger parks, against MassTransit's list:
// `_error` copies carry every MT-Host-* and MT-Fault-* header with
// MT-Reason "fault"; `_skipped` copies the host headers and MT-Reason
// "dead-letter", no fault header; both go through the exchange named like
// their queue with the original routing key; no MT- header MassTransit
// does not write. The exact headers are in specs/golden/faults/.
func TestFaultHeadersGolden(t *testing.T) {
	mt := loadMassTransitList(t)
	e := newEnv(t, func(c *rabbitmq.Config) { c.DeliveryLimit = 2 })
	uri, err := amqp.ParseURI(e.cfg.URL)
	require.NoError(t, err)
	b := e.broker(nil)
	refusal := fmt.Errorf("refund %s: %w", "r-1", fmt.Errorf("order %s: %w", "o-1", errors.New("orderId is not a UUID")))
	startConsumer(t, b, func(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
		vs := make([]rabbitmq.Verdict, len(msgs))
		for i, m := range msgs {
			switch m.MessageID {
			case "refused":
				vs[i] = rabbitmq.Verdict{Action: rabbitmq.DeadLetter, Reason: "invalid message", Err: refusal}
			case "flaky":
				vs[i] = rabbitmq.Verdict{Action: rabbitmq.Retry, Reason: "store unavailable", Err: errors.New("store down")}
			default:
				vs[i] = rabbitmq.Verdict{Action: rabbitmq.Ack}
			}
		}
		return vs
	})
	ex := e.inbound("PaymentRefundedIntegrationEvent")
	pub := func(key string, p amqp.Publishing) {
		p.DeliveryMode = amqp.Persistent
		p.Timestamp = time.Date(2025, 8, 1, 10, 0, 0, 0, time.UTC)
		require.NoError(t, e.ch.PublishWithContext(t.Context(), ex, key, false, false, p))
	}
	pub("orders.refunded", amqp.Publishing{ContentType: "application/json", MessageId: "refused", Body: []byte(`{"orderId":"o-1"}`),
		Headers: amqp.Table{"traceparent": "00-1-2-01"}})
	pub("orders.flaky", amqp.Publishing{ContentType: "application/json", MessageId: "flaky", Body: []byte(`{"orderId":"o-1"}`)})
	pub("orders.bad", amqp.Publishing{ContentType: "application/json", MessageId: "bad-json", Body: []byte(`{"orderId":`)})
	pub("orders.other", amqp.Publishing{ContentType: domain.ContentTypeMassTransit, MessageId: "unknown",
		Body: mtBody("unknown", "urn:message:BookWorm.Contracts:SomethingElseHappened", `{}`)})

	errQ, skipQ := domain.ErrorQueue(e.cfg.Queue), domain.SkippedQueue(e.cfg.Queue)
	require.Eventually(t, func() bool { return e.queueLen(errQ) == 3 && e.queueLen(skipQ) == 1 }, 10*time.Second, 20*time.Millisecond)
	// The tooling lists them with their reasons and details, skipped too.
	list, err := b.DeadLetters(t.Context(), skipQ, 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, rabbitmq.ReasonUnknownType, list[0].Reason)
	assert.NotEmpty(t, list[0].Detail, "a skipped copy's detail comes from x-ledger-detail")
	assert.False(t, list[0].Time.IsZero(), "and its time from x-ledger-parked-at")

	byID := map[string]amqp.Delivery{}
	for _, d := range e.drain(errQ, 3) {
		byID[d.MessageId] = d
	}
	for _, d := range e.drain(skipQ, 1) {
		byID[d.MessageId] = d
	}
	require.Len(t, byID, 4)

	isMT := func(k string) bool { return strings.HasPrefix(k, "MT-") }
	known := map[string]bool{}
	for _, k := range append(append(append([]string{}, mt.Host...), mt.Fault...), mt.DeadLetter...) {
		known[k] = true
	}
	wantInput := "rabbitmq://" + strings.ToLower(uri.Host) + "/" + uri.Vhost + "/" + e.cfg.Queue
	if uri.Port != 5672 {
		wantInput = fmt.Sprintf("rabbitmq://%s:%d/%s/%s", strings.ToLower(uri.Host), uri.Port, uri.Vhost, e.cfg.Queue)
	}
	cases := []struct {
		id, queue, key, golden string
		textual                bool
	}{
		{"refused", errQ, "orders.refunded", "error-handler", false},
		{"flaky", errQ, "orders.flaky", "error-delivery-limit", false},
		{"bad-json", errQ, "orders.bad", "error-malformed", true},
		{"unknown", skipQ, "orders.other", "skipped-unknown-type", true},
	}
	for _, c := range cases {
		d := byID[c.id]
		require.NotNil(t, d.Headers, c.id)
		assert.Equal(t, c.queue, d.Exchange, "%s: moved through the exchange named like %s", c.id, c.queue)
		assert.Equal(t, c.key, d.RoutingKey, "%s: the original routing key", c.id)
		for _, k := range mt.Host {
			assert.Contains(t, d.Headers, k, "%s: host header", c.id)
		}
		for k := range d.Headers {
			if isMT(k) {
				assert.True(t, known[k], "%s: %s is no header MassTransit writes there", c.id, k)
			}
		}
		if c.queue == errQ {
			for _, k := range mt.Fault {
				assert.Contains(t, d.Headers, k, "%s: fault header", c.id)
			}
			assert.Equal(t, mt.FaultReason, d.Headers[rabbitmq.HeaderReason], c.id)
			assert.Equal(t, wantInput, d.Headers[rabbitmq.HeaderFaultInput], "%s: the queue's rabbitmq:// address", c.id)
		} else {
			for k := range d.Headers {
				assert.False(t, strings.HasPrefix(k, "MT-Fault-"), "%s: a dead-letter copy carries no fault header (%s)", c.id, k)
			}
			assert.Equal(t, mt.DeadLetterReason, d.Headers[rabbitmq.HeaderReason], c.id)
		}
		assert.NotContains(t, d.Headers, "x-death", "%s: parked by the ledger, not dead-lettered by the broker", c.id)
		// What the dead-letter tooling reads.
		assert.Equal(t, ex, d.Headers[rabbitmq.HeaderOriginalExchange], c.id)
		assert.Equal(t, c.key, d.Headers[rabbitmq.HeaderOriginalRouting], c.id)
		assert.NotEmpty(t, d.Headers[rabbitmq.HeaderLedgerReason], c.id)
		golden(t, c.golden, parkedCopy{Exchange: strings.ReplaceAll(d.Exchange, e.prefix, "<prefix>"), RoutingKey: d.RoutingKey,
			Headers: normalized(t, e, d, uri.Vhost, c.textual)})
	}
	flaky := byID["flaky"]
	assert.Equal(t, rabbitmq.ReasonDeliveryLimit, flaky.Headers[rabbitmq.HeaderLedgerReason])
	assert.Equal(t, int32(1), flaky.Headers[rabbitmq.HeaderFaultRetryCount], "one retry before the second, last delivery")
	assert.Equal(t, "00-1-2-01", byID["refused"].Headers["traceparent"], "the original's headers kept")

}

// The input address as MassTransit's RabbitMqEndpointAddress writes it,
// and the Go error chain as the stack trace.
func TestFaultHeaderValues(t *testing.T) {
	for url, want := range map[string]string{
		"amqp://guest:secret@Rabbit.example:5672/":         "rabbitmq://rabbit.example/q",
		"amqp://guest:secret@rabbit:5673/":                 "rabbitmq://rabbit:5673/q",
		"amqp://rabbit/bookworm":                           "rabbitmq://rabbit/bookworm/q",
		"amqp://rabbit/a%2Fb%20c":                          "rabbitmq://rabbit/a%2Fb%20c/q",
		"amqps://user:pw@rabbit.example/prod":              "rabbitmqs://rabbit.example/prod/q",
		"amqps://user:pw@rabbit.example:5672/prod":         "rabbitmqs://rabbit.example:5672/prod/q",
		"amqp://guest:guest@127.0.0.1:5672/ledger-test-ab": "rabbitmq://127.0.0.1/ledger-test-ab/q",
	} {
		got := rabbitmq.InputAddressForTest(url, "q")
		assert.Equal(t, want, got, url)
		assert.NotContains(t, got, "secret")
	}

	inner := errors.New("connection refused")
	err := fmt.Errorf("delivered 3 times (limit 3): %w", fmt.Errorf("append: %w", inner))
	assert.Equal(t, "   at *fmt.wrapError: delivered 3 times (limit 3)\n   at *fmt.wrapError: append\n   at *errors.errorString: connection refused",
		rabbitmq.StackTraceForTest(err))
	joined := fmt.Errorf("batch: %w", errors.Join(errors.New("a"), errors.New("b")))
	assert.Equal(t, "   at *fmt.wrapError: batch\n   at *errors.joinError\n   at *errors.errorString: a\n   at *errors.errorString: b",
		rabbitmq.StackTraceForTest(joined))
	assert.Empty(t, rabbitmq.StackTraceForTest(nil))
}

// A ledger queue declared earlier with a lower x-delivery-limit than
// delivery_limit (by an older ledger, or MassTransit): the ledger parks a
// message that keeps failing with its fault headers at the queue's limit,
// one delivery before the broker would dead-letter it with none.
func TestDeliveryLimitParkedBeforeTheBrokers(t *testing.T) {
	e := newEnv(t, nil) // delivery_limit: the default, 50
	errQ := domain.ErrorQueue(e.cfg.Queue)
	_, err := e.ch.QueueDeclare(e.cfg.Queue, true, false, false, false, amqp.Table{
		"x-queue-type": "quorum", "x-delivery-limit": int64(2),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": errQ,
	})
	require.NoError(t, err)
	b := e.broker(nil)
	info, ok := b.QueueInfo()
	require.True(t, ok)
	require.Equal(t, 2, info.DeliveryLimit)
	var attempts atomic.Int64
	startConsumer(t, b, func(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
		vs := make([]rabbitmq.Verdict, len(msgs))
		for i, m := range msgs {
			vs[i] = rabbitmq.Verdict{Action: rabbitmq.Ack}
			if m.MessageID == "poison" {
				attempts.Add(1)
				vs[i] = rabbitmq.Verdict{Action: rabbitmq.Retry, Reason: "store unavailable", Err: errors.New("store down")}
			}
		}
		return vs
	})
	e.publishRaw(e.inbound("PaymentRefundedIntegrationEvent"), amqp.Publishing{ContentType: "application/json", MessageId: "poison", Body: []byte(`{"orderId":"o"}`)})
	parked := e.drain(errQ, 1)[0]
	assert.Equal(t, "poison", parked.MessageId)
	assert.NotContains(t, parked.Headers, "x-death", "parked by the ledger, not dead-lettered by the broker")
	assert.Equal(t, rabbitmq.ReasonDeliveryLimit, parked.Headers[rabbitmq.HeaderLedgerReason])
	assert.Equal(t, "fault", parked.Headers[rabbitmq.HeaderReason])
	assert.Equal(t, "OrderLedger.DeliveryLimitExceeded", parked.Headers[rabbitmq.HeaderFaultException])
	assert.Equal(t, int64(2), parked.Headers[rabbitmq.HeaderDeliveryCount])
	assert.Equal(t, errQ, parked.Exchange)
	assert.EqualValues(t, 2, attempts.Load(), "parked at the queue's limit")
	time.Sleep(200 * time.Millisecond)
	assert.EqualValues(t, 2, attempts.Load(), "no more once parked")
	assert.Equal(t, 0, e.queueLen(errQ))
	assert.Equal(t, 0, e.queueLen(e.cfg.Queue))
}

// `_error` and `_skipped` queues of an older ledger (no exchange named
// like them, messages in them) keep working: the exchange and binding are
// added, the messages stay, a second declaration changes nothing, and new
// copies arrive through the exchange.
func TestParkingQueuesOfAnOlderLedger(t *testing.T) {
	e := newEnv(t, nil)
	errQ, skipQ := domain.ErrorQueue(e.cfg.Queue), domain.SkippedQueue(e.cfg.Queue)
	for _, q := range []string{errQ, skipQ} {
		_, err := e.ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		require.NoError(t, err)
	}
	require.NoError(t, e.ch.PublishWithContext(t.Context(), "", errQ, false, false, amqp.Publishing{MessageId: "old", Body: []byte("{}"),
		DeliveryMode: amqp.Persistent, Headers: amqp.Table{rabbitmq.HeaderFaultInput: e.cfg.Queue, rabbitmq.HeaderReason: "fault"}}))
	require.Eventually(t, func() bool { return e.queueLen(errQ) == 1 }, 5*time.Second, 20*time.Millisecond)

	b := e.broker(nil)
	require.NoError(t, b.DeclareTopology(t.Context()), "declared again: idempotent")
	for _, q := range []string{errQ, skipQ} {
		require.NoError(t, e.ch.ExchangeDeclarePassive(q, "fanout", true, false, false, false, nil), "exchange %s", q)
	}
	assert.Equal(t, 1, e.queueLen(errQ), "what the older ledger parked stays")

	startConsumer(t, b, func(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
		vs := make([]rabbitmq.Verdict, len(msgs))
		for i := range vs {
			vs[i] = rabbitmq.Verdict{Action: rabbitmq.DeadLetter, Reason: "invalid message", Err: errors.New("nope")}
		}
		return vs
	})
	e.publishRaw(e.inbound("PaymentRefundedIntegrationEvent"), amqp.Publishing{ContentType: "application/json", MessageId: "new", Body: []byte(`{"orderId":"o"}`)})
	got := e.drain(errQ, 2)
	require.Len(t, got, 2)
	ids := []string{got[0].MessageId, got[1].MessageId}
	sort.Strings(ids)
	assert.Equal(t, []string{"new", "old"}, ids)
	for _, d := range got {
		if d.MessageId == "new" {
			assert.Equal(t, errQ, d.Exchange)
			assert.True(t, strings.HasPrefix(fmt.Sprint(d.Headers[rabbitmq.HeaderFaultInput]), "rabbitmq://"))
		}
	}
}
