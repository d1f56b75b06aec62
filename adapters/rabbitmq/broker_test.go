package rabbitmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

var runID = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// env is one test's topology on the real broker, in a vhost of its own
// (deleted with everything in it when the test ends). Names still carry
// the run and the test, so that the server-side connection close finds
// this test's connection by name.
type env struct {
	t      testing.TB
	prefix string
	cfg    rabbitmq.Config
	raw    *amqp.Connection
	ch     *amqp.Channel
}

func (e *env) name(s string) string { return e.prefix + "." + s }

// inbound exchanges of a test: one per known type, renamed so runs do not
// share them, plus the type in the name so the bare decoder still finds it.
func (e *env) inbound(typ string) string {
	ns := domain.NamespaceBookWorm
	if strings.HasPrefix(typ, "Payment") || strings.HasPrefix(typ, "OrderFulfill") || strings.HasPrefix(typ, "OrderRefund") {
		ns = domain.NamespaceLedger
	}
	return e.prefix + "." + ns + ":" + typ
}

var inboundTypes = []string{"UserCheckedOutIntegrationEvent", "BasketDeletedCompleteIntegrationEvent", "PaymentRefundedIntegrationEvent"}

func newEnv(t testing.TB, mutate func(*rabbitmq.Config)) *env {
	t.Helper()
	vhostURL := testenv.Vhost(t)
	raw, err := amqp.Dial(vhostURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	ch, err := raw.Channel()
	require.NoError(t, err)
	e := &env{t: t, prefix: fmt.Sprintf("ledgertest.%s.%s", runID, sanitize(t.Name())), raw: raw, ch: ch}
	e.cfg = rabbitmq.Config{
		URL:                vhostURL,
		ConnectionName:     e.prefix,
		Queue:              e.name("finance"),
		UnroutableExchange: e.name("unroutable"),
		UnroutableQueue:    e.name("unroutable"),
		OutboundExchanges:  []rabbitmq.ExchangeSpec{{Name: e.name("orderProcessing"), Kind: "topic"}, {Name: e.name("BookWorm.Contracts:PlaceOrderCommand"), Kind: "fanout"}},
		ConsumerQueues:     []rabbitmq.QueueBinding{{Queue: e.name("basket-place-order"), Exchange: e.name("BookWorm.Contracts:PlaceOrderCommand")}},
		RetryDelay:         10 * time.Millisecond,
		RetryDelayMax:      50 * time.Millisecond,
		ReconnectMin:       50 * time.Millisecond,
		ReconnectMax:       500 * time.Millisecond,
	}
	e.cfg.InboundBindings = []rabbitmq.Binding{}
	for _, typ := range inboundTypes {
		e.cfg.InboundBindings = append(e.cfg.InboundBindings, rabbitmq.Binding{Exchange: e.inbound(typ)})
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	return e
}

func sanitize(s string) string {
	return strings.NewReplacer("/", ".", " ", "_").Replace(s)
}

func (e *env) broker(obs rabbitmq.Observer) *rabbitmq.Broker {
	e.t.Helper()
	cfg := e.cfg
	if obs != nil {
		cfg.Observer = obs
	}
	b, err := rabbitmq.New(cfg, zaptest.NewLogger(e.t))
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(e.t, b.Connect(ctx))
	require.NoError(e.t, b.DeclareTopology(ctx))
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

func (e *env) publishRaw(exchange string, p amqp.Publishing) {
	e.t.Helper()
	p.DeliveryMode = amqp.Persistent
	require.NoError(e.t, e.ch.PublishWithContext(context.Background(), exchange, "", false, false, p))
}

// drain reads n messages from a queue with basic.get, waiting up to 10s.
func (e *env) drain(queue string, n int) []amqp.Delivery {
	e.t.Helper()
	var out []amqp.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		d, ok, err := e.ch.Get(queue, true)
		require.NoError(e.t, err)
		if !ok {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		out = append(out, d)
	}
	require.Len(e.t, out, n, "messages in %s", queue)
	return out
}

func (e *env) queueLen(queue string) int {
	e.t.Helper()
	q, err := e.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(e.t, err)
	return q.Messages
}

// collector is a handler that records what it saw.
type collector struct {
	mu       sync.Mutex
	msgs     []rabbitmq.Message
	maxBatch int
	calls    int
	verdict  func(rabbitmq.Message) rabbitmq.Verdict
}

func (c *collector) handle(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.maxBatch = max(c.maxBatch, len(msgs))
	vs := make([]rabbitmq.Verdict, len(msgs))
	for i, m := range msgs {
		c.msgs = append(c.msgs, m)
		if c.verdict != nil {
			vs[i] = c.verdict(m)
		}
	}
	return vs
}

func (c *collector) byID() map[string]rabbitmq.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]rabbitmq.Message{}
	for _, m := range c.msgs {
		out[m.MessageID] = m
	}
	return out
}

func (c *collector) waitIDs(t *testing.T, ids []string) map[string]rabbitmq.Message {
	t.Helper()
	var seen map[string]rabbitmq.Message
	require.Eventually(t, func() bool {
		seen = c.byID()
		for _, id := range ids {
			if _, ok := seen[id]; !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "handler saw every message")
	return seen
}

func startConsumer(t *testing.T, b *rabbitmq.Broker, h rabbitmq.BatchHandler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "Consume returns nil when its context ends")
		case <-time.After(10 * time.Second):
			t.Error("Consume did not return after cancel")
		}
	})
}

type countObserver struct {
	rabbitmq.NopObserver
	consumed, deadLettered, published, returned, requeued, reconnected atomic.Int64
}

func (o *countObserver) OnConsumed(string)     { o.consumed.Add(1) }
func (o *countObserver) OnDeadLettered(string) { o.deadLettered.Add(1) }
func (o *countObserver) OnPublished(string)    { o.published.Add(1) }
func (o *countObserver) OnReturned(string)     { o.returned.Add(1) }
func (o *countObserver) OnRequeued()           { o.requeued.Add(1) }
func (o *countObserver) OnReconnected()        { o.reconnected.Add(1) }

func TestTopologyIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	b := e.broker(nil)
	ctx := context.Background()
	require.NoError(t, b.DeclareTopology(ctx), "second declaration on the same connection")
	b2 := e.broker(nil)
	require.NoError(t, b2.DeclareTopology(ctx), "declaration from another instance")

	for _, q := range []string{e.cfg.Queue, domain.ErrorQueue(e.cfg.Queue), domain.SkippedQueue(e.cfg.Queue), e.cfg.UnroutableQueue, e.name("basket-place-order")} {
		assert.Equal(t, 0, e.queueLen(q), q)
	}
	// The ledger queue is quorum with the delivery limit and DLX: a
	// declaration with other arguments is refused.
	ch, err := e.raw.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(e.cfg.Queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
	require.Error(t, err)
	var aerr *amqp.Error
	require.ErrorAs(t, err, &aerr)
	assert.Equal(t, amqp.PreconditionFailed, aerr.Code)

	// Inbound exchanges are bound: a message published there lands in the queue.
	e.publishRaw(e.inbound(inboundTypes[0]), amqp.Publishing{ContentType: "application/json", MessageId: "m", Body: []byte(`{}`)})
	assert.Len(t, e.drain(e.cfg.Queue, 1), 1)
	// Consumer queues are bound to their command exchange.
	e.publishRaw(e.name("BookWorm.Contracts:PlaceOrderCommand"), amqp.Publishing{ContentType: "application/json", MessageId: "p", Body: []byte(`{}`)})
	assert.Equal(t, "p", e.drain(e.name("basket-place-order"), 1)[0].MessageId)
}

func TestConsumeAllEnvelopes(t *testing.T) {
	e := newEnv(t, nil)
	b := e.broker(nil)
	col := &collector{}
	startConsumer(t, b, col.handle)

	ceData := `{"orderId":"` + orderID + `","basketId":"b","totalMoney":100}`
	bare := `{"orderId":"` + orderID + `","amount":"12.34","providerReference":"r","reason":"x"}`
	e.publishRaw(e.inbound("UserCheckedOutIntegrationEvent"), amqp.Publishing{ContentType: domain.ContentTypeMassTransit, MessageId: mtID,
		Body: mtBody(mtID, "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", checkout)})
	e.publishRaw(e.inbound("BasketDeletedCompleteIntegrationEvent"), amqp.Publishing{ContentType: "application/cloudevents+json; charset=utf-8",
		Body: ceBody(ceID, "BookWorm.Contracts.BasketDeletedCompleteIntegrationEvent", ceData)})
	e.publishRaw(e.inbound("PaymentRefundedIntegrationEvent"), amqp.Publishing{ContentType: "application/json", MessageId: "bare-1",
		Type: "OrderLedger.Contracts.PaymentRefundedIntegrationEvent", CorrelationId: "corr-1", Body: []byte(bare)})
	// No type property: the type comes from the exchange name.
	e.publishRaw(e.inbound("PaymentRefundedIntegrationEvent"), amqp.Publishing{ContentType: "application/json", MessageId: "bare-2", Body: []byte(bare)})

	seen := col.waitIDs(t, []string{mtID, ceID, "bare-1", "bare-2"})
	assert.Equal(t, "UserCheckedOutIntegrationEvent", seen[mtID].Type)
	assert.Equal(t, domain.EnvelopeMassTransit, seen[mtID].Envelope)
	assert.JSONEq(t, checkout, string(seen[mtID].Body), "money as a string passes through")
	assert.Equal(t, "BasketDeletedCompleteIntegrationEvent", seen[ceID].Type)
	assert.Equal(t, domain.EnvelopeCloudEvents, seen[ceID].Envelope)
	assert.JSONEq(t, ceData, string(seen[ceID].Body), "money as a number passes through")
	assert.Equal(t, "PaymentRefundedIntegrationEvent", seen["bare-1"].Type)
	assert.Equal(t, "corr-1", seen["bare-1"].CorrelationID)
	assert.Equal(t, bare, string(seen["bare-1"].Body))
	assert.Equal(t, "PaymentRefundedIntegrationEvent", seen["bare-2"].Type)
	assert.Equal(t, e.inbound("PaymentRefundedIntegrationEvent"), seen["bare-2"].Exchange)
	assert.False(t, seen["bare-2"].Redelivered)
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 5*time.Second, 20*time.Millisecond, "all acked")
}

func TestMalformedAndUnknownAreParked(t *testing.T) {
	e := newEnv(t, nil)
	obs := &countObserver{}
	b := e.broker(obs)
	col := &collector{verdict: func(m rabbitmq.Message) rabbitmq.Verdict {
		if m.MessageID == "refused" {
			return rabbitmq.Verdict{Action: rabbitmq.DeadLetter, Reason: "invalid message", Err: errors.New("orderId is not a UUID")}
		}
		return rabbitmq.Verdict{Action: rabbitmq.Ack}
	}}
	ex := e.inbound("PaymentRefundedIntegrationEvent")
	good := func(id string) amqp.Publishing {
		return amqp.Publishing{ContentType: "application/json", MessageId: id, Body: []byte(`{"orderId":"` + orderID + `"}`)}
	}
	e.publishRaw(ex, good("good-1"))
	e.publishRaw(ex, amqp.Publishing{ContentType: "application/json", MessageId: "bad-json", Body: []byte(`{"orderId":`),
		Headers: amqp.Table{"traceparent": "00-1-2-01"}})
	e.publishRaw(ex, good("good-2"))
	e.publishRaw(ex, amqp.Publishing{ContentType: domain.ContentTypeMassTransit, MessageId: "unknown",
		Body: mtBody("unknown", "urn:message:BookWorm.Contracts:SomethingElseHappened", `{}`)})
	e.publishRaw(ex, good("refused"))
	e.publishRaw(ex, good("good-3"))
	startConsumer(t, b, col.handle)

	col.waitIDs(t, []string{"good-1", "good-2", "good-3", "refused"})
	errs := e.drain(domain.ErrorQueue(e.cfg.Queue), 2)
	byID := map[string]amqp.Delivery{}
	for _, d := range errs {
		byID[d.MessageId] = d
	}
	bad := byID["bad-json"]
	require.NotNil(t, bad.Headers, "malformed message parked in _error")
	assert.Equal(t, `{"orderId":`, string(bad.Body), "original body kept")
	assert.Equal(t, "fault", bad.Headers["MT-Reason"])
	assert.Equal(t, rabbitmq.ReasonMalformed, bad.Headers["x-ledger-reason"])
	assert.Equal(t, "OrderLedger.MalformedMessage", bad.Headers["MT-Fault-ExceptionType"])
	assert.Contains(t, bad.Headers["MT-Fault-Message"], "malformed")
	assert.Equal(t, ex, bad.Headers["x-ledger-original-exchange"])
	assert.Equal(t, "00-1-2-01", bad.Headers["traceparent"], "original headers kept")
	assert.NotEmpty(t, bad.Headers["MT-Fault-Timestamp"])
	refused := byID["refused"]
	require.NotNil(t, refused.Headers, "handler's DeadLetter verdict parked in _error")
	assert.Equal(t, "invalid message", refused.Headers["x-ledger-reason"])
	assert.Equal(t, "orderId is not a UUID", refused.Headers["MT-Fault-Message"])

	skipped := e.drain(domain.SkippedQueue(e.cfg.Queue), 1)[0]
	assert.Equal(t, "unknown", skipped.MessageId)
	assert.Equal(t, "dead-letter", skipped.Headers["MT-Reason"], "as MassTransit's dead-letter transport writes it")
	assert.Equal(t, rabbitmq.ReasonUnknownType, skipped.Headers["x-ledger-reason"])

	for id := range col.byID() {
		assert.NotContains(t, []string{"bad-json", "unknown"}, id, "handler never sees undecodable or unknown messages")
	}
	// A parked copy is in its queue before the broker's confirm reaches the
	// consumer, which reports it only then.
	require.Eventually(t, func() bool { return obs.deadLettered.Load() >= 3 }, 10*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 3, obs.deadLettered.Load())
	assert.EqualValues(t, 6, obs.consumed.Load())
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 5*time.Second, 20*time.Millisecond)
}

func TestRetryThenDeliveryLimit(t *testing.T) {
	for _, qt := range []string{rabbitmq.QueueQuorum, rabbitmq.QueueClassic} {
		t.Run(qt, func(t *testing.T) {
			e := newEnv(t, func(c *rabbitmq.Config) { c.QueueType = qt; c.DeliveryLimit = 3 })
			obs := &countObserver{}
			b := e.broker(obs)
			var attempts atomic.Int64
			var counts sync.Map
			col := &collector{verdict: func(m rabbitmq.Message) rabbitmq.Verdict {
				if m.MessageID != "flaky" {
					return rabbitmq.Verdict{Action: rabbitmq.Ack}
				}
				counts.Store(attempts.Add(1), m.DeliveryCount)
				return rabbitmq.Verdict{Action: rabbitmq.Retry, Reason: "store unavailable", Err: errors.New("store down")}
			}}
			ex := e.inbound("PaymentRefundedIntegrationEvent")
			e.publishRaw(ex, amqp.Publishing{ContentType: "application/json", MessageId: "flaky", Body: []byte(`{"orderId":"o"}`)})
			e.publishRaw(ex, amqp.Publishing{ContentType: "application/json", MessageId: "fine", Body: []byte(`{"orderId":"o"}`)})
			startConsumer(t, b, col.handle)

			col.waitIDs(t, []string{"flaky", "fine"})
			parked := e.drain(domain.ErrorQueue(e.cfg.Queue), 1)[0]
			assert.Equal(t, "flaky", parked.MessageId, "dead-lettered after the delivery limit")
			n := attempts.Load()
			assert.GreaterOrEqual(t, n, int64(2), "redelivered after Retry")
			assert.LessOrEqual(t, n, int64(4), "bounded by the delivery limit")
			if qt == rabbitmq.QueueQuorum {
				second, _ := counts.Load(int64(2))
				assert.Equal(t, 2, second, "quorum queues count deliveries")
			}
			time.Sleep(300 * time.Millisecond)
			assert.Equal(t, n, attempts.Load(), "no more deliveries once parked")
			assert.Equal(t, 0, e.queueLen(e.cfg.Queue))
			assert.GreaterOrEqual(t, obs.requeued.Load(), int64(1))
		})
	}
}

func TestBatching(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) { c.BatchSize = 64; c.BatchWait = 20 * time.Millisecond })
	b := e.broker(nil)
	const n = 1500
	ids := make([]string, n)
	pubs := make([]rabbitmq.Publication, n)
	for i := range pubs {
		ids[i] = fmt.Sprintf("batch-%d", i)
		pubs[i] = rabbitmq.Publication{Exchange: e.inbound("UserCheckedOutIntegrationEvent"), MessageID: ids[i],
			ContentType: domain.ContentTypeJSON, Body: []byte(checkout)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Publish(ctx, pubs))
	col := &collector{}
	startConsumer(t, b, col.handle)
	col.waitIDs(t, ids)
	col.mu.Lock()
	defer col.mu.Unlock()
	assert.Greater(t, col.maxBatch, 1, "batches under load")
	assert.LessOrEqual(t, col.maxBatch, 64)
	assert.Less(t, col.calls, n, "fewer handler calls than messages")
	t.Logf("%d messages in %d handler calls, largest batch %d", len(col.msgs), col.calls, col.maxBatch)
}

func TestPublishConfirmsAndUnroutable(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) { c.ConfirmWindow = 64 })
	obs := &countObserver{}
	b := e.broker(obs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 2000
	pubs := make([]rabbitmq.Publication, n)
	for i := range pubs {
		pubs[i] = rabbitmq.Publication{Exchange: e.name("BookWorm.Contracts:PlaceOrderCommand"), MessageID: fmt.Sprintf("cmd-%04d", i),
			CorrelationID: orderID, Type: "PlaceOrderCommand", ContentType: domain.ContentTypeMassTransit,
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Headers: map[string]any{"MT-Activity-Id": "a", "nested": map[string]any{"k": 1}}}
	}
	// Concurrent callers share the confirm window.
	var wg sync.WaitGroup
	for part := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, b.Publish(ctx, pubs[part*n/4:(part+1)*n/4]))
		}()
	}
	wg.Wait()
	assert.EqualValues(t, n, obs.published.Load())
	got := e.drain(e.name("basket-place-order"), n)
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.MessageId] = true
		assert.Equal(t, uint8(amqp.Persistent), d.DeliveryMode)
		assert.Equal(t, domain.ContentTypeMassTransit, d.ContentType)
		assert.Equal(t, orderID, d.CorrelationId)
	}
	assert.Len(t, seen, n, "every id arrived, intact")

	// Nobody bound to orderProcessing: parked via the alternate exchange.
	err := b.Publish(ctx, []rabbitmq.Publication{{Exchange: e.name("orderProcessing"), RoutingKey: "orderCreated", MessageID: "ev-1", Body: []byte(`{}`)}})
	require.NoError(t, err)
	parked := e.drain(e.cfg.UnroutableQueue, 1)[0]
	assert.Equal(t, "ev-1", parked.MessageId)
	assert.Equal(t, "orderCreated", parked.RoutingKey)
}

func TestPublishReturnedAndMissingExchange(t *testing.T) {
	e := newEnv(t, nil)
	obs := &countObserver{}
	b := e.broker(obs)
	noAE := e.name("no-alternate")
	require.NoError(t, e.ch.ExchangeDeclare(noAE, "fanout", true, false, false, false, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	good := rabbitmq.Publication{Exchange: e.name("BookWorm.Contracts:PlaceOrderCommand"), MessageID: "ok-1", Body: []byte(`{}`)}
	err := b.Publish(ctx, []rabbitmq.Publication{good, {Exchange: noAE, MessageID: "lost-1", Body: []byte(`{}`)}, {Exchange: noAE, MessageID: "lost-2", Body: []byte(`{}`)}})
	var perr *rabbitmq.PublishError
	require.ErrorAs(t, err, &perr)
	assert.ErrorIs(t, err, rabbitmq.ErrReturned)
	require.Len(t, perr.Failures, 2)
	assert.ElementsMatch(t, []string{"lost-1", "lost-2"}, []string{perr.Failures[0].MessageID, perr.Failures[1].MessageID})
	assert.EqualValues(t, 2, obs.returned.Load())
	assert.Equal(t, "ok-1", e.drain(e.name("basket-place-order"), 1)[0].MessageId, "the rest of the call was delivered")

	missing := e.name("does-not-exist")
	err = b.Publish(ctx, []rabbitmq.Publication{{Exchange: missing, MessageID: "nx-1", Body: []byte(`{}`)}, good})
	require.ErrorAs(t, err, &perr)
	assert.ErrorIs(t, err, rabbitmq.ErrNoExchange)
	require.Len(t, perr.Failures, 1)
	assert.Equal(t, "nx-1", perr.Failures[0].MessageID)
	assert.Equal(t, "ok-1", e.drain(e.name("basket-place-order"), 1)[0].MessageId, "published again on a fresh channel")

	// The publisher recovers from the closed channel.
	require.NoError(t, b.Publish(ctx, []rabbitmq.Publication{good}))
	e.drain(e.name("basket-place-order"), 1)
}

// closeServerSide asks the broker to close our connection, as a broker
// restart or an operator would; false if rabbitmqctl is not usable.
func closeServerSide(t *testing.T, connName string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testenv.Ctl(ctx, "list_connections", "--no-table-headers", "pid", "client_properties")
	if err != nil {
		t.Logf("%v", err)
		return false
	}
	pidRe := regexp.MustCompile(`^<[^>]+>`)
	closed := false
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, `"`+connName+`"`) {
			continue
		}
		pid := pidRe.FindString(strings.TrimSpace(line))
		if pid == "" {
			continue
		}
		if _, err := testenv.Ctl(ctx, "close_connection", pid, "ledger reconnect test"); err != nil {
			t.Logf("%v", err)
			return false
		}
		closed = true
	}
	return closed
}

func TestReconnectLosesNothing(t *testing.T) {
	e := newEnv(t, nil)
	obs := &countObserver{}
	b := e.broker(obs)
	col := &collector{}
	startConsumer(t, b, col.handle)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const rounds, per = 6, 200
	var ids []string
	for r := range rounds {
		pubs := make([]rabbitmq.Publication, per)
		for i := range pubs {
			id := fmt.Sprintf("rc-%d-%d", r, i)
			ids = append(ids, id)
			pubs[i] = rabbitmq.Publication{Exchange: e.inbound("BasketDeletedCompleteIntegrationEvent"), MessageID: id, ContentType: "application/json", Body: []byte(`{"orderId":"o"}`)}
		}
		done := make(chan error, 1)
		go func() { done <- b.Publish(ctx, pubs) }()
		switch r {
		case 2:
			rabbitmq.CloseConnForTest(b) // client-side drop while publishing
		case 4:
			if !closeServerSide(t, e.cfg.ConnectionName) {
				t.Log("rabbitmqctl unavailable; dropping from the client side")
				rabbitmq.CloseConnForTest(b)
			}
		}
		require.NoError(t, <-done, "publish survives the drop")
	}
	col.waitIDs(t, ids)
	// A publisher may use the new connection before the supervisor reports
	// the reconnect.
	require.Eventually(t, func() bool { return obs.reconnected.Load() >= 2 }, 10*time.Second, 10*time.Millisecond, "reconnected twice")
	require.Eventually(t, b.Connected, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 10*time.Second, 20*time.Millisecond, "all acked after reconnects")
	assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)))
}

func TestTopologyToleratesExchangeWithoutAlternate(t *testing.T) {
	e := newEnv(t, nil)
	// A MassTransit service declared the command exchange first, without
	// the alternate-exchange argument.
	shared := e.cfg.OutboundExchanges[1].Name
	require.NoError(t, e.ch.ExchangeDeclare(shared, "fanout", true, false, false, false, nil))
	b := e.broker(nil) // DeclareTopology must still succeed
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Bound consumer queue: delivered.
	require.NoError(t, b.Publish(ctx, []rabbitmq.Publication{{Exchange: shared, MessageID: "c-1", Body: []byte(`{}`)}}))
	assert.Equal(t, "c-1", e.drain(e.name("basket-place-order"), 1)[0].MessageId)

	// And the other way round: a plain declaration of an exchange the
	// ledger declared with the argument. Logged, not asserted: it is the
	// broker's equivalence rule, documented for operators.
	ch, err := e.raw.Channel()
	require.NoError(t, err)
	err = ch.ExchangeDeclare(e.cfg.OutboundExchanges[0].Name, "topic", true, false, false, false, nil)
	t.Logf("plain redeclare of an exchange declared with alternate-exchange: %v", err)
}

func TestConnectGivesUpWithContext(t *testing.T) {
	b, err := rabbitmq.New(rabbitmq.Config{URL: "amqp://guest:guest@127.0.0.1:1/", ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond}, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = b.Connect(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotContains(t, err.Error(), "guest:guest")
	assert.False(t, b.Connected())
	pctx, pcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer pcancel()
	err = b.Publish(pctx, []rabbitmq.Publication{{Exchange: "x", MessageID: "1", Body: []byte(`{}`)}})
	assert.ErrorIs(t, err, context.DeadlineExceeded, "publish during an outage waits until ctx is done")
	require.NoError(t, b.Close())
	assert.ErrorIs(t, b.Consume(context.Background(), func(context.Context, []rabbitmq.Message) []rabbitmq.Verdict { return nil }), rabbitmq.ErrClosed)
}
