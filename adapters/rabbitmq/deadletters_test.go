package rabbitmq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// park puts a copy into q the way the ledger's consumer parks one: the
// original properties and headers plus the fault headers.
func (e *env) park(q, id, fromExchange string, extra amqp.Table) {
	e.t.Helper()
	h := amqp.Table{
		"traceparent":                       "00-1-2-01",
		rabbitmq.HeaderFaultMessage:         "store said no",
		rabbitmq.HeaderFaultException:       "OrderLedger.HandlerFault",
		rabbitmq.HeaderFaultTimestamp:       time.Now().UTC().Format(time.RFC3339Nano),
		rabbitmq.HeaderHostMachine:          "test",
		rabbitmq.HeaderReason:               "fault",
		rabbitmq.HeaderLedgerReason:         "invalid message",
		rabbitmq.HeaderOriginalExchange:     fromExchange,
		rabbitmq.HeaderOriginalRouting:      "",
		rabbitmq.HeaderDeliveryCount:        int64(1),
		"MT-Fault-StackTrace":               "at Somewhere()",
		"MT-Host-ProcessName":               "ledger",
		rabbitmq.HeaderOriginalQueue:        e.cfg.Queue,
		rabbitmq.HeaderDeathReason:          "rejected",
		"x-first-death-queue":               "leftover",
		"custom-header-from-the-sender-app": "kept",
	}
	for k, v := range extra {
		h[k] = v
	}
	require.NoError(e.t, e.ch.PublishWithContext(context.Background(), "", q, true, false, amqp.Publishing{
		Headers: h, ContentType: "application/json", CorrelationId: "corr-" + id, MessageId: id,
		Type: "PaymentRefundedIntegrationEvent", AppId: "shop", ReplyTo: "nobody", DeliveryMode: amqp.Persistent,
		Priority: 3, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Body: []byte(`{"orderId":"` + orderID + `","n":"` + id + `"}`),
	}))
}

func dlIDs(dls []rabbitmq.DeadLetterMessage) []string {
	out := make([]string, len(dls))
	for i, d := range dls {
		out[i] = d.MessageID
	}
	return out
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// TestDeadLettersBrowseKeepsEverythingInOrder: a quorum `_error` queue
// (as the topology declares it) browsed again and again holds the same
// messages in the same order; more than one return chunk is involved.
func TestDeadLettersBrowseKeepsEverythingInOrder(t *testing.T) {
	e := newEnv(t, nil)
	b := e.broker(nil)
	ctx := context.Background()
	errQ := domain.ErrorQueue(e.cfg.Queue)
	want := seq("m", 150)
	for _, id := range want {
		e.park(errQ, id, e.inbound("PaymentRefundedIntegrationEvent"), nil)
	}
	require.Eventually(t, func() bool { return e.queueLen(errQ) == len(want) }, 5*time.Second, 10*time.Millisecond)

	for round := 0; round < 3; round++ {
		got, err := b.DeadLetters(ctx, rabbitmq.DeadLetterError, 1000)
		require.NoError(t, err)
		require.Equal(t, want, dlIDs(got), "round %d: every message, in order", round)
		for i, d := range got {
			require.Equal(t, i, d.Position)
		}
	}
	head, err := b.DeadLetters(ctx, rabbitmq.DeadLetterError, 10)
	require.NoError(t, err)
	assert.Equal(t, want[:10], dlIDs(head), "a limit takes the head")
	n, err := b.DeadLetterDepth(ctx, rabbitmq.DeadLetterError)
	require.NoError(t, err)
	assert.Equal(t, len(want), n)

	// A consumer of the queue still sees them in order afterwards.
	drained := e.drain(errQ, len(want))
	for i, d := range drained {
		require.Equal(t, want[i], d.MessageId)
	}

	_, err = b.DeadLetters(ctx, "no-such-queue", 10)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")
}

// TestDeadLettersShowWhatTheLedgerParked: messages parked by a running
// consumer come back with their reason, detail, origin and everything else.
func TestDeadLettersShowWhatTheLedgerParked(t *testing.T) {
	e := newEnv(t, nil)
	b := e.broker(nil)
	ex := e.inbound("PaymentRefundedIntegrationEvent")
	e.publishRaw(ex, amqp.Publishing{ContentType: "application/json", MessageId: "bad-json", Type: "PaymentRefundedIntegrationEvent",
		Body: []byte(`{"orderId":`), Headers: amqp.Table{"traceparent": "00-1-2-01"}})
	e.publishRaw(ex, amqp.Publishing{ContentType: domain.ContentTypeMassTransit, MessageId: "unknown",
		Body: mtBody("unknown", "urn:message:BookWorm.Contracts:SomethingElseHappened", `{}`)})
	col := &collector{verdict: func(rabbitmq.Message) rabbitmq.Verdict { return rabbitmq.Verdict{Action: rabbitmq.Ack} }}
	start := time.Now()
	startConsumer(t, b, col.handle)
	errQ, skipQ := domain.ErrorQueue(e.cfg.Queue), domain.SkippedQueue(e.cfg.Queue)
	require.Eventually(t, func() bool { return e.queueLen(errQ) == 1 && e.queueLen(skipQ) == 1 }, 10*time.Second, 20*time.Millisecond)

	ctx := context.Background()
	got, err := b.DeadLetters(ctx, rabbitmq.DeadLetterError, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	d := got[0]
	assert.Equal(t, errQ, d.Queue)
	assert.Equal(t, "bad-json", d.MessageID)
	assert.Equal(t, rabbitmq.ReasonMalformed, d.Reason)
	assert.Contains(t, d.Detail, "malformed")
	assert.Equal(t, rabbitmq.ByLedger, d.By)
	assert.Equal(t, ex, d.Exchange)
	assert.True(t, d.HasOrigin)
	assert.Equal(t, "PaymentRefundedIntegrationEvent", d.Type)
	assert.Equal(t, "application/json", d.ContentType)
	assert.Equal(t, `{"orderId":`, string(d.Body))
	assert.Equal(t, "00-1-2-01", d.Headers["traceparent"])
	assert.Equal(t, int64(1), d.DeliveryCount)
	assert.WithinRange(t, d.Time, start.Add(-time.Second), time.Now().Add(time.Second))

	sk, err := b.DeadLetters(ctx, rabbitmq.DeadLetterSkipped, 0)
	require.NoError(t, err)
	require.Len(t, sk, 1)
	assert.Equal(t, skipQ, sk[0].Queue)
	assert.Equal(t, rabbitmq.ReasonUnknownType, sk[0].Reason)

	found, err := b.FindDeadLetters(ctx, rabbitmq.DeadLetterError, "bad-json")
	require.NoError(t, err)
	require.Len(t, found, 1)
	assert.Equal(t, d.Body, found[0].Body)
	none, err := b.FindDeadLetters(ctx, rabbitmq.DeadLetterError, "nope")
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Equal(t, 1, e.queueLen(errQ), "still there")
}

// TestRedriveSendsChosenBackAsTheyWere: dry run changes nothing; a chosen
// message goes back to its exchange with its own properties and headers
// and leaves the queue; unchosen ones stay, in order; refusals stay.
func TestRedriveSendsChosenBackAsTheyWere(t *testing.T) {
	e := newEnv(t, nil)
	b := e.broker(nil)
	ctx := context.Background()
	errQ := domain.ErrorQueue(e.cfg.Queue)
	// Where they came from: an exchange bound to a capture queue (not the
	// ledger queue: this test has no consumer).
	origin, capture := e.name("shop.events"), e.name("capture")
	require.NoError(t, e.ch.ExchangeDeclare(origin, "fanout", true, false, false, false, nil))
	_, err := e.ch.QueueDeclare(capture, true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, e.ch.QueueBind(capture, "", origin, false, nil))
	unbound := e.name("nobody.listens")
	require.NoError(t, e.ch.ExchangeDeclare(unbound, "fanout", true, false, false, false, nil))

	e.park(errQ, "a", origin, nil)
	e.park(errQ, "b", origin, nil)
	e.park(errQ, "", origin, amqp.Table{rabbitmq.HeaderEnvelopeID: "env-c"})
	e.park(errQ, "d", origin, nil)
	e.park(errQ, "gone", e.name("no.such.exchange"), nil)
	e.park(errQ, "returned", unbound, nil)
	require.NoError(t, e.ch.PublishWithContext(ctx, "", errQ, false, false, amqp.Publishing{MessageId: "orphan", Body: []byte("x")}))
	all := []string{"a", "b", "env-c", "d", "gone", "returned", "orphan"}
	require.Eventually(t, func() bool { return e.queueLen(errQ) == len(all) }, 5*time.Second, 10*time.Millisecond)
	state := func() []string {
		t.Helper()
		got, err := b.DeadLetters(ctx, rabbitmq.DeadLetterError, 0)
		require.NoError(t, err)
		return dlIDs(got)
	}

	res, err := b.Redrive(ctx, rabbitmq.DeadLetterError, []string{"b", "env-c"}, false, true)
	require.NoError(t, err)
	require.Len(t, res, 2)
	for _, r := range res {
		assert.True(t, r.DryRun)
		assert.NoError(t, r.Err)
		assert.Equal(t, origin, r.Exchange)
	}
	assert.Equal(t, all, state(), "dry run: all there, in order")
	assert.Zero(t, e.queueLen(capture), "dry run: nothing sent")

	res, err = b.Redrive(ctx, rabbitmq.DeadLetterError, []string{"b", "env-c", "missing"}, false, false)
	require.NoError(t, err)
	require.Len(t, res, 3)
	assert.Equal(t, "b", res[0].MessageID)
	assert.NoError(t, res[0].Err)
	assert.Equal(t, "env-c", res[1].MessageID, "matched by the recorded envelope id")
	assert.NoError(t, res[1].Err)
	assert.ErrorIs(t, res[2].Err, rabbitmq.ErrDeadLetterNotFound)
	assert.Equal(t, []string{"a", "d", "gone", "returned", "orphan"}, state(), "unchosen stay, in order")

	sent := e.drain(capture, 2)
	got := sent[0]
	assert.Equal(t, "b", got.MessageId)
	assert.Equal(t, "corr-b", got.CorrelationId)
	assert.Equal(t, "PaymentRefundedIntegrationEvent", got.Type)
	assert.Equal(t, "application/json", got.ContentType)
	assert.Equal(t, "shop", got.AppId)
	assert.Equal(t, "nobody", got.ReplyTo)
	assert.Equal(t, uint8(amqp.Persistent), got.DeliveryMode)
	assert.Equal(t, uint8(3), got.Priority)
	assert.True(t, got.Timestamp.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), "%v", got.Timestamp)
	assert.Equal(t, `{"orderId":"`+orderID+`","n":"b"}`, string(got.Body))
	assert.Equal(t, amqp.Table{"traceparent": "00-1-2-01", "custom-header-from-the-sender-app": "kept"}, got.Headers,
		"the sender's headers, no fault headers")
	assert.Empty(t, sent[1].MessageId, "an empty message id stays empty")
	assert.Equal(t, `{"orderId":"`+orderID+`","n":""}`, string(sent[1].Body))

	// Refusals stay where they are, with the reason.
	res, err = b.Redrive(ctx, rabbitmq.DeadLetterError, []string{"gone", "returned", "orphan"}, false, false)
	require.NoError(t, err)
	require.Len(t, res, 3)
	assert.ErrorIs(t, res[0].Err, rabbitmq.ErrNoExchange)
	assert.ErrorIs(t, res[1].Err, rabbitmq.ErrReturned)
	assert.ErrorIs(t, res[2].Err, rabbitmq.ErrNoOrigin)
	assert.Equal(t, []string{"a", "d", "gone", "returned", "orphan"}, state())

	// All: the rest that can go, goes.
	res, err = b.Redrive(ctx, rabbitmq.DeadLetterError, nil, true, false)
	require.NoError(t, err)
	require.Len(t, res, 5)
	var okIDs []string
	for _, r := range res {
		if r.Err == nil {
			okIDs = append(okIDs, r.MessageID)
		}
	}
	assert.Equal(t, []string{"a", "d"}, okIDs)
	assert.Equal(t, []string{"gone", "returned", "orphan"}, state())
	sent = e.drain(capture, 2)
	assert.Equal(t, []string{"a", "d"}, []string{sent[0].MessageId, sent[1].MessageId}, "in queue order")

	_, err = b.Redrive(ctx, rabbitmq.DeadLetterError, nil, false, false)
	assert.Error(t, err, "nothing chosen")
}

// TestRedriveOfABrokerDeadLetter: a quorum queue that dead-letters at its
// delivery limit writes x-death, not the ledger's headers; the message is
// found, explained and sent back to the exchange it was published to.
func TestRedriveOfABrokerDeadLetter(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) { c.DeliveryLimit = 2 })
	b := e.broker(nil)
	ctx := context.Background()
	ex := e.inbound("PaymentRefundedIntegrationEvent")
	e.publishRaw(ex, amqp.Publishing{ContentType: "application/json", MessageId: "poison", Type: "PaymentRefundedIntegrationEvent",
		Headers: amqp.Table{"traceparent": "00-9-9-01"}, Body: []byte(`{"orderId":"` + orderID + `"}`)})
	// A consumer that keeps failing it, as a crashing service would.
	errQ := domain.ErrorQueue(e.cfg.Queue)
	require.Eventually(t, func() bool {
		if d, ok, err := e.ch.Get(e.cfg.Queue, false); err == nil && ok {
			_ = d.Nack(false, true)
		}
		q, err := e.ch.QueueDeclarePassive(errQ, true, false, false, false, nil)
		return err == nil && q.Messages == 1
	}, 10*time.Second, 10*time.Millisecond, "the broker dead-letters it at the limit")

	got, err := b.DeadLetters(ctx, rabbitmq.DeadLetterError, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	d := got[0]
	assert.Equal(t, "poison", d.MessageID)
	assert.Equal(t, rabbitmq.ByBroker, d.By)
	assert.Equal(t, "delivery_limit", d.Reason)
	assert.Contains(t, d.Detail, e.cfg.Queue)
	assert.Equal(t, ex, d.Exchange)
	assert.True(t, d.HasOrigin)
	assert.False(t, d.Time.IsZero())

	res, err := b.Redrive(ctx, rabbitmq.DeadLetterError, []string{"poison"}, false, false)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.NoError(t, res[0].Err)
	assert.Zero(t, e.queueLen(errQ))
	back := e.drain(e.cfg.Queue, 1)[0]
	assert.Equal(t, "poison", back.MessageId)
	assert.Equal(t, ex, back.Exchange)
	assert.Equal(t, "00-9-9-01", back.Headers["traceparent"])
	for _, k := range []string{"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"} {
		assert.NotContains(t, back.Headers, k)
	}
	if n, ok := back.Headers["x-delivery-count"].(int64); ok {
		assert.Zero(t, n, "the quorum queue's own count starts again")
	}
}
