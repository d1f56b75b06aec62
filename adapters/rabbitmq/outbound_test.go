package rabbitmq_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// kindObserver counts OnOutboundConfirmed by kind.
type kindObserver struct {
	rabbitmq.NopObserver
	mu    sync.Mutex
	kinds map[string]int
}

func (o *kindObserver) OnOutboundConfirmed(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.kinds == nil {
		o.kinds = map[string]int{}
	}
	o.kinds[kind]++
}

func (o *kindObserver) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, n := range o.kinds {
		out[k] = n
	}
	return out
}

const (
	eventID   = "0198a7f4-0000-7000-8000-0000000000e1"
	commandID = "0198a7f4-0000-7000-8000-0000000000e2"
	causeID   = "0198a7f4-0000-7000-8000-0000000000e3"
	convID    = "0198a7f4-0000-7000-8000-0000000000e4"
	initID    = "0198a7f4-0000-7000-8000-0000000000e5"
)

// TestPublisherEnvelopes publishes what the lifecycle asks for (an
// AccelByte event and a BookWorm command) in each envelope and reads what
// the broker delivered.
func TestPublisherEnvelopes(t *testing.T) {
	at := time.Date(2025, 8, 1, 10, 0, 0, 123456700, time.UTC)
	eventBody := `{"name":"orderCreated","namespace":"bookworm","payload":{"orderNo":"` + orderID + `"}}`
	commandBody := `{"orderId":"` + orderID + `","basketId":"0198a7f4-0000-7000-8000-0000000000bb","fullName":"John Doe","email":"j@x.com","totalMoney":"99.99"}`
	for _, envelope := range []string{domain.EnvelopeMassTransit, domain.EnvelopeCloudEvents, domain.EnvelopeBare} {
		t.Run(envelope, func(t *testing.T) {
			e := newEnv(t, nil)
			obs := &kindObserver{}
			b := e.broker(obs)
			pub := rabbitmq.NewPublisher(b, rabbitmq.PublisherConfig{Envelope: envelope})
			eventEx, commandEx := e.cfg.OutboundExchanges[0].Name, e.cfg.OutboundExchanges[1].Name
			msgs := []domain.Outbound{
				{Kind: domain.KindAccelByte, Name: domain.EventOrderCreated, MessageID: eventID, Exchange: eventEx,
					RoutingKey: domain.EventOrderCreated, OrderID: orderID, CorrelationID: orderID, CausationID: causeID, Time: at, Body: []byte(eventBody)},
				{Kind: domain.KindBookWorm, Name: domain.CommandPlaceOrder, MessageID: commandID, Exchange: commandEx,
					OrderID: orderID, CorrelationID: orderID, ConversationID: convID, InitiatorID: initID, CausationID: causeID, Time: at, Body: []byte(commandBody)},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, pub.Publish(ctx, msgs))
			assert.Equal(t, map[string]int{string(domain.KindAccelByte): 1, string(domain.KindBookWorm): 1}, obs.counts())

			// Nobody is bound to the event exchange here: the event reaches
			// the unroutable queue through the alternate exchange, as it was.
			ev := e.drain(e.cfg.UnroutableQueue, 1)[0]
			assertProperties(t, ev, eventID, domain.EventOrderCreated)
			assert.Equal(t, domain.EventOrderCreated, ev.RoutingKey)
			assert.Equal(t, domain.ContentTypeJSON, ev.ContentType)
			assert.Equal(t, eventBody, string(ev.Body), "AccelByte events go as they are")

			cmd := e.drain(e.name("basket-place-order"), 1)[0]
			assertProperties(t, cmd, commandID, domain.CommandPlaceOrder)
			var env map[string]any
			switch envelope {
			case domain.EnvelopeMassTransit:
				assert.Equal(t, domain.ContentTypeMassTransit, cmd.ContentType)
				require.NoError(t, json.Unmarshal(cmd.Body, &env))
				assert.Equal(t, commandID, env["messageId"])
				assert.Equal(t, orderID, env["correlationId"])
				assert.Equal(t, convID, env["conversationId"], "the causing message's conversation")
				assert.Equal(t, initID, env["initiatorId"])
				assert.Equal(t, []any{"urn:message:" + domain.NamespaceBookWorm + ":" + domain.CommandPlaceOrder, rabbitmq.BaseTypeURN}, env["messageType"])
				assert.Equal(t, rabbitmq.InputAddressForTest(e.cfg.URL, e.cfg.Queue), env["sourceAddress"], "the ledger's queue is the source")
				assert.Equal(t, rabbitmq.InputAddressForTest(e.cfg.URL, commandEx), env["destinationAddress"])
				assert.Equal(t, at.Format(time.RFC3339Nano), env["sentTime"])
				inner, err := json.Marshal(env["message"])
				require.NoError(t, err)
				assert.JSONEq(t, commandBody, string(inner))
			case domain.EnvelopeCloudEvents:
				assert.Equal(t, domain.ContentTypeCloudEvents, cmd.ContentType)
				require.NoError(t, json.Unmarshal(cmd.Body, &env))
				assert.Equal(t, "1.0", env["specversion"])
				assert.Equal(t, commandID, env["id"])
				assert.Equal(t, domain.NamespaceBookWorm+"."+domain.CommandPlaceOrder, env["type"])
				assert.Equal(t, rabbitmq.InputAddressForTest(e.cfg.URL, e.cfg.Queue), env["source"])
				assert.Equal(t, orderID, env["correlationid"])
				assert.Equal(t, convID, env["conversationid"])
				assert.Equal(t, initID, env["initiatorid"])
				assert.Equal(t, at.Format(time.RFC3339Nano), env["time"])
				inner, err := json.Marshal(env["data"])
				require.NoError(t, err)
				assert.JSONEq(t, commandBody, string(inner))
			case domain.EnvelopeBare:
				assert.Equal(t, domain.ContentTypeJSON, cmd.ContentType)
				assert.Equal(t, commandBody, string(cmd.Body), "the command message alone")
				assert.Equal(t, convID, cmd.Headers[rabbitmq.HeaderConversationID], "MassTransit's raw JSON reads it from a header")
				assert.Equal(t, initID, cmd.Headers[rabbitmq.HeaderInitiatorID])
			}
		})
	}
}

func assertProperties(t *testing.T, d amqp.Delivery, id, name string) {
	t.Helper()
	assert.Equal(t, id, d.MessageId)
	assert.Equal(t, name, d.Type)
	assert.Equal(t, orderID, d.CorrelationId)
	assert.Equal(t, uint8(amqp.Persistent), d.DeliveryMode)
	assert.Equal(t, causeID, d.Headers[rabbitmq.HeaderCausationID])
	assert.Equal(t, orderID, d.Headers[rabbitmq.HeaderOrderID])
	assert.Equal(t, time.Date(2025, 8, 1, 10, 0, 0, 0, time.UTC), d.Timestamp.UTC(), "AMQP timestamps have whole seconds")
}

// TestPublisherFailures: a call that cannot be encoded sends nothing; a
// refusal names the refused messages, and only the others are reported
// confirmed.
func TestPublisherFailures(t *testing.T) {
	e := newEnv(t, nil)
	obs := &kindObserver{}
	b := e.broker(obs)
	pub := rabbitmq.NewPublisher(b, rabbitmq.PublisherConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	good := domain.Outbound{Kind: domain.KindBookWorm, Name: domain.CommandPlaceOrder, MessageID: commandID,
		Exchange: e.cfg.OutboundExchanges[1].Name, OrderID: orderID, CorrelationID: orderID, Body: []byte(`{}`)}
	notUUID := good
	notUUID.MessageID = "order-1/3/place"
	err := pub.Publish(ctx, []domain.Outbound{good, notUUID})
	require.ErrorIs(t, err, rabbitmq.ErrEnvelope, "MassTransit reads ids as Guid")
	assert.Equal(t, 0, e.queueLen(e.name("basket-place-order")), "nothing of a call that cannot be encoded is sent")

	missing := good
	missing.MessageID, missing.Exchange = eventID, e.name("does-not-exist")
	err = pub.Publish(ctx, []domain.Outbound{good, missing})
	var refused *domain.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.ErrorIs(t, err, rabbitmq.ErrNoExchange)
	require.Len(t, refused.Refusals, 1)
	assert.Equal(t, eventID, refused.Refusals[0].MessageID)
	assert.True(t, refused.Refusals[0].Permanent, "a missing exchange needs a fix")
	assert.Equal(t, map[string]int{string(domain.KindBookWorm): 1}, obs.counts(), "only the confirmed one")

	require.NoError(t, pub.Publish(ctx, []domain.Outbound{good}))
	assert.Equal(t, map[string]int{string(domain.KindBookWorm): 2}, obs.counts())
}

// TestPublisherRefusals: against the real broker, a returned message (no
// queue bound, no alternate exchange) is a permanent refusal and a nacked
// one (a full queue that rejects publishes) is not; the rest of the call
// is confirmed and delivered.
func TestPublisherRefusals(t *testing.T) {
	e := newEnv(t, nil)
	obs := &kindObserver{}
	pub := rabbitmq.NewPublisher(e.broker(obs), rabbitmq.PublisherConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unbound, full := e.name("unbound"), e.name("full")
	require.NoError(t, e.ch.ExchangeDeclare(unbound, "fanout", true, false, false, false, nil))
	require.NoError(t, e.ch.ExchangeDeclare(full, "fanout", true, false, false, false, nil))
	_, err := e.ch.QueueDeclare(e.name("full-q"), true, false, false, false,
		amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	require.NoError(t, err)
	require.NoError(t, e.ch.QueueBind(e.name("full-q"), "", full, false, nil))

	good := domain.Outbound{Kind: domain.KindBookWorm, Name: domain.CommandPlaceOrder, MessageID: commandID,
		Exchange: e.cfg.OutboundExchanges[1].Name, OrderID: orderID, CorrelationID: orderID, Body: []byte(`{}`)}
	returned, nacked := good, good
	returned.MessageID, returned.Exchange = eventID, unbound
	nacked.MessageID, nacked.Exchange = causeID, full
	err = pub.Publish(ctx, []domain.Outbound{returned, good, nacked})
	var refused *domain.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.ErrorIs(t, err, rabbitmq.ErrReturned)
	assert.ErrorIs(t, err, rabbitmq.ErrNacked)
	byID := map[string]domain.Refusal{}
	for _, r := range refused.Refusals {
		byID[r.MessageID] = r
	}
	require.Len(t, byID, 2)
	assert.True(t, byID[eventID].Permanent, "returned: permanent")
	assert.False(t, byID[causeID].Permanent, "nacked: may pass next time")
	assert.Equal(t, map[string]int{string(domain.KindBookWorm): 1}, obs.counts())
	assert.Equal(t, commandID, e.drain(e.name("basket-place-order"), 1)[0].MessageId, "the confirmed one was delivered")
}

func TestPublisherConfig(t *testing.T) {
	for _, ok := range []string{"", domain.EnvelopeMassTransit, domain.EnvelopeCloudEvents, domain.EnvelopeBare} {
		assert.NoError(t, rabbitmq.PublisherConfig{Envelope: ok}.Validate(), ok)
	}
	err := rabbitmq.PublisherConfig{Envelope: "xml"}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `envelope "xml"`)

	// Not validated: nothing is sent, and the problem says why.
	b, err := rabbitmq.New(rabbitmq.Config{URL: "amqp://guest:guest@127.0.0.1:1/"}, nil)
	require.NoError(t, err)
	defer b.Close()
	err = rabbitmq.NewPublisher(b, rabbitmq.PublisherConfig{Envelope: "xml"}).Publish(context.Background(),
		[]domain.Outbound{{Kind: domain.KindBookWorm, Name: domain.CommandPlaceOrder, MessageID: commandID, Body: []byte(`{}`)}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `envelope "xml"`)
}
