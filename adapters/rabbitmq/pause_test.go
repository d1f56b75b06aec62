package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

type pauseObserver struct {
	countObserver
	paused, resumed atomic.Int64
}

func (o *pauseObserver) OnPaused(p bool) {
	if p {
		o.paused.Add(1)
	} else {
		o.resumed.Add(1)
	}
}

var _ rabbitmq.PauseObserver = (*pauseObserver)(nil)

// flakyStore is the test's handler: Wait while down (as the ingest
// handler does when the store is unavailable), else store once per id.
type flakyStore struct {
	down atomic.Bool

	mu          sync.Mutex
	stored      map[string]int
	storedMsg   map[string]rabbitmq.Message
	seenWhileDn map[string]bool
	calls       int
}

func newFlakyStore() *flakyStore {
	s := &flakyStore{stored: map[string]int{}, storedMsg: map[string]rabbitmq.Message{}, seenWhileDn: map[string]bool{}}
	s.down.Store(true)
	return s
}

func (s *flakyStore) handle(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	vs := make([]rabbitmq.Verdict, len(msgs))
	for i, m := range msgs {
		if s.down.Load() {
			s.seenWhileDn[m.MessageID] = true
			vs[i] = rabbitmq.Verdict{Action: rabbitmq.Wait, Reason: "store unavailable", Err: errors.New("store down")}
			continue
		}
		if s.stored[m.MessageID] == 0 {
			s.storedMsg[m.MessageID] = m
		}
		s.stored[m.MessageID]++
		vs[i] = rabbitmq.Verdict{Action: rabbitmq.Ack}
	}
	return vs
}

func (s *flakyStore) waitStored(t *testing.T, ids []string) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, id := range ids {
			if s.stored[id] == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "every message stored")
}

func (s *flakyStore) handlerCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (e *env) publishFacts(n int, prefix string) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%02d", prefix, i)
		e.publishRaw(e.inbound("PaymentRefundedIntegrationEvent"), amqp.Publishing{ContentType: "application/json", MessageId: ids[i],
			Timestamp: time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC), Body: []byte(`{"orderId":"` + orderID + `"}`)})
	}
	return ids
}

// A store outage far longer than the delivery limit × the retry delay
// allows: consuming pauses (Paused says why), the held deliveries are not
// counted, nothing new is handled, nothing reaches _error, and consuming
// resumes by itself with every message stored once.
func TestWaitPausesWithoutCountingDeliveries(t *testing.T) {
	for _, qt := range []string{rabbitmq.QueueQuorum, rabbitmq.QueueClassic} {
		t.Run(qt, func(t *testing.T) {
			e := newEnv(t, func(c *rabbitmq.Config) {
				c.QueueType = qt
				c.DeliveryLimit = 2
				c.Prefetch = 4
				c.BatchSize = 2
				c.RetryDelay = 10 * time.Millisecond
				c.RetryDelayMax = 40 * time.Millisecond
			})
			obs := &pauseObserver{}
			b := e.broker(obs)
			store := newFlakyStore()
			ids := e.publishFacts(10, "fact")
			startConsumer(t, b, store.handle)

			require.Eventually(t, func() bool { _, _, p := b.Paused(); return p }, 10*time.Second, 10*time.Millisecond)
			reason, since, _ := b.Paused()
			assert.Contains(t, reason, "store down")
			assert.False(t, since.IsZero())
			// Many rounds, far beyond what 2 deliveries would allow.
			require.Eventually(t, func() bool { return store.handlerCalls() > 10 }, 10*time.Second, 10*time.Millisecond)
			assert.Equal(t, 6, e.queueLen(e.cfg.Queue), "the prefetch bounds what is taken; the rest waits in the queue")
			assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)), "nothing dead-lettered during the outage")
			store.mu.Lock()
			assert.LessOrEqual(t, len(store.seenWhileDn), 2, "only the first batch is tried while the store is down")
			store.mu.Unlock()
			assert.EqualValues(t, 0, obs.requeued.Load(), "a wait is never nacked")
			assert.EqualValues(t, 1, obs.paused.Load())

			store.down.Store(false)
			store.waitStored(t, ids)
			require.Eventually(t, func() bool { _, _, p := b.Paused(); return !p }, 10*time.Second, 10*time.Millisecond)
			require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 10*time.Second, 20*time.Millisecond)
			time.Sleep(200 * time.Millisecond)
			store.mu.Lock()
			defer store.mu.Unlock()
			for _, id := range ids {
				assert.Equal(t, 1, store.stored[id], "%s stored once", id)
				assert.Equal(t, 1, store.storedMsg[id].DeliveryCount, "%s never returned to the queue", id)
			}
			assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)))
			assert.EqualValues(t, 1, obs.paused.Load(), "paused once")
			assert.EqualValues(t, 1, obs.resumed.Load(), "resumed once")
		})
	}
}

// Held longer than HoldMax (the stand-in for RabbitMQ's consumer_timeout)
// the deliveries are re-published and the originals acked; the copies are
// judged as the originals (exchange, type, timestamp) and stored once.
func TestHeldDeliveriesRepublishedBeforeConsumerTimeout(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) {
		c.DeliveryLimit = 2
		c.RetryDelay = 10 * time.Millisecond
		c.RetryDelayMax = 40 * time.Millisecond
		c.HoldMax = 150 * time.Millisecond
	})
	b := e.broker(nil)
	store := newFlakyStore()
	ids := e.publishFacts(3, "held")
	startConsumer(t, b, store.handle)
	require.Eventually(t, func() bool { _, _, p := b.Paused(); return p }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(1200 * time.Millisecond) // several hold periods
	_, _, paused := b.Paused()
	assert.True(t, paused, "still paused across re-publishes")
	assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)))

	store.down.Store(false)
	store.waitStored(t, ids)
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	store.mu.Lock()
	defer store.mu.Unlock()
	for i, id := range ids {
		m := store.storedMsg[id]
		assert.Equal(t, 1, store.stored[id], "%s stored once", id)
		assert.Equal(t, e.inbound("PaymentRefundedIntegrationEvent"), m.Exchange, "the original exchange")
		assert.Equal(t, "PaymentRefundedIntegrationEvent", m.Type, "the type still read from the original exchange")
		assert.Equal(t, time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC), m.SentAt, "the original timestamp")
		assert.Contains(t, m.Headers, rabbitmq.HeaderHeld, "a re-published copy")
		assert.Equal(t, 1, m.DeliveryCount, "the copy starts with a fresh count")
	}
	assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)))
}

// Connection losses during an outage return the held deliveries, and a
// quorum queue counts each return: the ledger re-publishes a held delivery
// before the broker's own limit strikes.
func TestHeldDeliveriesSurviveConnectionLosses(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) {
		c.DeliveryLimit = 3
		c.RetryDelay = 10 * time.Millisecond
		c.RetryDelayMax = 40 * time.Millisecond
	})
	obs := &pauseObserver{}
	b := e.broker(obs)
	store := newFlakyStore()
	ids := e.publishFacts(2, "lost")
	startConsumer(t, b, store.handle)
	for range 6 {
		require.Eventually(t, func() bool { _, _, p := b.Paused(); return p }, 10*time.Second, 10*time.Millisecond)
		time.Sleep(150 * time.Millisecond)
		before := obs.reconnected.Load()
		rabbitmq.CloseConnForTest(b)
		require.Eventually(t, func() bool { return obs.reconnected.Load() > before }, 10*time.Second, 10*time.Millisecond)
	}
	if !assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)), "six returns, limit 3: nothing dead-lettered") {
		for _, d := range e.drain(domain.ErrorQueue(e.cfg.Queue), 2) {
			t.Logf("%s %v", d.MessageId, d.Headers)
		}
	}
	store.down.Store(false)
	store.waitStored(t, ids)
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.Queue) == 0 }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 0, e.queueLen(domain.ErrorQueue(e.cfg.Queue)))
}

// The queue decides: a ledger queue that already exists as a classic queue
// (as MassTransit declares it) keeps no delivery count, yet a message
// that keeps failing (here: the handler panics) is dead-lettered at the
// delivery limit by the ledger's own count, whatever queue_type says.
func TestDeliveryLimitWhenTheQueueKeepsNoCount(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) { c.DeliveryLimit = 3 })
	_, err := e.ch.QueueDeclare(e.cfg.Queue, true, false, false, false, nil) // classic, no arguments
	require.NoError(t, err)
	b := e.broker(nil)
	var attempts atomic.Int64
	startConsumer(t, b, func(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
		vs := make([]rabbitmq.Verdict, len(msgs))
		for i, m := range msgs {
			if m.MessageID == "poison" {
				attempts.Add(1)
				panic("handler bug")
			}
			vs[i] = rabbitmq.Verdict{Action: rabbitmq.Ack}
		}
		return vs
	})
	ex := e.inbound("PaymentRefundedIntegrationEvent")
	e.publishRaw(ex, amqp.Publishing{ContentType: "application/json", MessageId: "poison", Body: []byte(`{"orderId":"o"}`)})
	parked := e.drain(domain.ErrorQueue(e.cfg.Queue), 1)[0]
	assert.Equal(t, "poison", parked.MessageId)
	assert.Equal(t, rabbitmq.ReasonDeliveryLimit, parked.Headers[rabbitmq.HeaderLedgerReason])
	assert.True(t, strings.Contains(fmt.Sprint(parked.Headers[rabbitmq.HeaderFaultMessage]), "handler bug"), parked.Headers[rabbitmq.HeaderFaultMessage])
	assert.EqualValues(t, 3, attempts.Load(), "three deliveries, then parked")
	time.Sleep(200 * time.Millisecond)
	assert.EqualValues(t, 3, attempts.Load(), "no more once parked")
	assert.Equal(t, 0, e.queueLen(e.cfg.Queue))
}
