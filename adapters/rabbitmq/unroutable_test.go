package rabbitmq_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// depthObserver records the unroutable depths the broker reported.
type depthObserver struct {
	rabbitmq.NopObserver
	mu     sync.Mutex
	depths []int
}

func (o *depthObserver) OnUnroutableDepth(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.depths = append(o.depths, n)
}

func (o *depthObserver) last() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.depths) == 0 {
		return -1
	}
	return o.depths[len(o.depths)-1]
}

// loggedBroker is env.broker with the broker's log lines kept for the
// test (and still written to the test log).
func (e *env) loggedBroker(obs rabbitmq.Observer) (*rabbitmq.Broker, *observer.ObservedLogs) {
	e.t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(zapcore.NewTee(core, zaptest.NewLogger(e.t).Core()))
	cfg := e.cfg
	if obs != nil {
		cfg.Observer = obs
	}
	b, err := rabbitmq.New(cfg, logger)
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(e.t, b.Connect(ctx))
	require.NoError(e.t, b.DeclareTopology(ctx))
	e.t.Cleanup(func() { _ = b.Close() })
	return b, logs
}

func (e *env) publishUnroutable(ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		e.publishRaw(e.cfg.UnroutableExchange, amqp.Publishing{ContentType: "application/json", MessageId: id, Body: []byte(`{}`)})
	}
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func messageIDs(ds []amqp.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.MessageId)
	}
	return out
}

func logCount(logs *observer.ObservedLogs, substr string) int {
	return logs.FilterMessageSnippet(substr).Len()
}

// TestUnroutableQueueBounded: the queue the ledger declares keeps the
// newest UnroutableMaxLength messages, the depth reaches the observer, and
// reaching the bound and falling back are each logged once.
func TestUnroutableQueueBounded(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) {
		c.UnroutableMaxLength = 5
		c.UnroutablePoll = 20 * time.Millisecond
	})
	obs := &depthObserver{}
	b, logs := e.loggedBroker(obs)
	st := b.Unroutable()
	assert.True(t, st.Bounded)
	assert.Equal(t, 5, st.MaxLength)
	assert.Equal(t, rabbitmq.DefaultUnroutableMaxAge, st.MaxAge)
	assert.Zero(t, logCount(logs, "without the length and age bound"), "a queue the ledger declared needs no policy")

	e.publishUnroutable(ids("u", 0, 8)...)
	require.Eventually(t, func() bool { return obs.last() == 5 }, 10*time.Second, 10*time.Millisecond, "the depth reaches the observer, held at the bound")
	require.Eventually(t, func() bool { return logCount(logs, "reached its bound") == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.True(t, b.Unroutable().Full)
	time.Sleep(100 * time.Millisecond) // several more reads at the bound
	assert.Equal(t, 1, logCount(logs, "reached its bound"), "logged once, not at every read")
	assert.Equal(t, ids("u", 3, 8), messageIDs(e.drain(e.cfg.UnroutableQueue, 5)), "the oldest were dropped")

	require.Eventually(t, func() bool { return logCount(logs, "below its bound again") == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.False(t, b.Unroutable().Full)
	require.Eventually(t, func() bool { return b.Unroutable().Depth == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, logCount(logs, "reached its bound"))
	assert.Equal(t, 1, logCount(logs, "below its bound again"))
}

// TestUnroutableQueueExpires: messages older than UnroutableMaxAge go.
func TestUnroutableQueueExpires(t *testing.T) {
	e := newEnv(t, func(c *rabbitmq.Config) { c.UnroutableMaxAge = 200 * time.Millisecond })
	e.broker(nil)
	e.publishUnroutable("old-1", "old-2")
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.UnroutableQueue) == 0 }, 10*time.Second, 20*time.Millisecond)
}

// TestUnroutableQueueExistingWithoutBound: a queue declared by an earlier
// version without the bound is kept and the warning carries the command
// that bounds it; the command, run as printed, does bound it.
func TestUnroutableQueueExistingWithoutBound(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Skip("rabbitmqctl not found")
	}
	e := newEnv(t, func(c *rabbitmq.Config) {
		c.UnroutableMaxLength = 4
		c.UnroutablePoll = 20 * time.Millisecond
	})
	_, err := e.ch.QueueDeclare(e.cfg.UnroutableQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(t, err, "as the previous version declared it")

	b, logs := e.loggedBroker(nil)
	warned := logs.FilterMessageSnippet("without the length and age bound").All()
	require.Len(t, warned, 1)
	cmd := warned[0].ContextMap()["command"].(string)
	assert.Equal(t, b.Unroutable().PolicyCommand, cmd)
	assert.False(t, b.Unroutable().Bounded)
	assert.Contains(t, cmd, "rabbitmqctl set_policy -p ")
	assert.Contains(t, cmd, `"max-length":4`)
	assert.Contains(t, cmd, `"overflow":"drop-head"`)
	assert.Contains(t, cmd, fmt.Sprintf(`"message-ttl":%d`, rabbitmq.DefaultUnroutableMaxAge.Milliseconds()))

	// Unbounded: above the bound the log says so and how to fix it.
	e.publishUnroutable(ids("a", 0, 6)...)
	require.Eventually(t, func() bool { return logCount(logs, "carries no bound") == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 6, e.queueLen(e.cfg.UnroutableQueue), "nothing dropped without a bound")

	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.UnroutableQueue) == 4 }, 10*time.Second, 20*time.Millisecond, "the policy bounds the queue")
	e.publishUnroutable(ids("b", 0, 3)...)
	require.Eventually(t, func() bool { return e.queueLen(e.cfg.UnroutableQueue) == 4 }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{"a-5", "b-0", "b-1", "b-2"}, messageIDs(e.drain(e.cfg.UnroutableQueue, 4)), "drop-head: the newest are kept")
}

func TestUnroutableBoundValidated(t *testing.T) {
	for _, c := range []struct {
		cfg  rabbitmq.Config
		want string
	}{
		{rabbitmq.Config{UnroutableMaxLength: -1}, "unroutable_max_length -1"},
		{rabbitmq.Config{UnroutableMaxAge: time.Microsecond}, "unroutable_max_age 1µs"},
		{rabbitmq.Config{UnroutableMaxAge: 100 * 24 * time.Hour}, "unroutable_max_age 2400h0m0s"},
	} {
		c.cfg.URL = "amqp://127.0.0.1/"
		err := c.cfg.WithDefaults().Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
	d := rabbitmq.Config{}.WithDefaults()
	assert.Equal(t, rabbitmq.DefaultUnroutableMaxLength, d.UnroutableMaxLength)
	assert.Equal(t, rabbitmq.DefaultUnroutableMaxAge, d.UnroutableMaxAge)
}

// shortQueue names the ledger queue as in production: the broker's 406
// text (which inspect reads) is cut at 255 bytes, and the test names are
// long. The vhost is the test's own, so the name is still unique.
func shortQueue(c *rabbitmq.Config) { c.Queue = "finance" }

// TestLedgerQueueFound: what the topology finds for the ledger queue, and
// logs, in the cases an operator meets.
func TestLedgerQueueFound(t *testing.T) {
	t.Run("created", func(t *testing.T) {
		e := newEnv(t, shortQueue)
		b, logs := e.loggedBroker(nil)
		info, ok := b.QueueInfo()
		require.True(t, ok)
		assert.Equal(t, e.cfg.Queue, info.Name)
		assert.False(t, info.Existed)
		assert.Equal(t, rabbitmq.QueueQuorum, info.Type)
		assert.Equal(t, rabbitmq.DefaultDeliveryLimit, info.DeliveryLimit)
		assert.True(t, info.DeadLetter)
		assert.Equal(t, "", info.DeadLetterExchange)
		assert.Equal(t, domain.ErrorQueue(e.cfg.Queue), info.DeadLetterRoutingKey)
		assert.Empty(t, info.Differs)
		line := logs.FilterMessage("ledger queue").All()
		require.Len(t, line, 1)
		assert.Equal(t, zapcore.InfoLevel, line[0].Level)
		assert.Equal(t, "50", line[0].ContextMap()["delivery_limit"])
	})
	t.Run("classic as MassTransit declares it", func(t *testing.T) {
		e := newEnv(t, shortQueue)
		_, err := e.ch.QueueDeclare(e.cfg.Queue, true, false, false, false, nil)
		require.NoError(t, err)
		b, logs := e.loggedBroker(nil)
		info, _ := b.QueueInfo()
		assert.True(t, info.Existed)
		assert.Equal(t, rabbitmq.QueueClassic, info.Type)
		assert.Zero(t, info.DeliveryLimit, "classic queues keep no delivery count")
		assert.False(t, info.DeadLetter)
		assert.Empty(t, info.Args)
		assert.Equal(t, []string{"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-delivery-limit", "x-queue-type"}, info.Differs)
		line := logs.FilterMessage("ledger queue").All()
		require.Len(t, line, 1)
		m := line[0].ContextMap()
		assert.Equal(t, "classic", m["type"])
		assert.Equal(t, "none", m["delivery_limit"])
		assert.Contains(t, m["ledger"], "the ledger counts deliveries itself")

		// Declared again after a reconnect: logged only when it changes.
		require.NoError(t, b.DeclareTopology(context.Background()))
		assert.Equal(t, 1, logs.FilterMessage("ledger queue").Len())
	})
	t.Run("quorum with another limit and no dead-letter exchange", func(t *testing.T) {
		e := newEnv(t, shortQueue)
		_, err := e.ch.QueueDeclare(e.cfg.Queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(20), "x-max-length": int64(1000)})
		require.NoError(t, err)
		b, logs := e.loggedBroker(nil)
		info, _ := b.QueueInfo()
		assert.True(t, info.Existed)
		assert.Equal(t, rabbitmq.QueueQuorum, info.Type)
		assert.Equal(t, 20, info.DeliveryLimit)
		assert.False(t, info.DeadLetter)
		assert.Equal(t, int64(1000), info.Args["x-max-length"], "arguments the ledger does not set are found too")
		line := logs.FilterMessage("ledger queue").All()
		require.Len(t, line, 1)
		assert.Equal(t, zapcore.WarnLevel, line[0].Level, "the broker would drop at its limit")
		assert.True(t, strings.Contains(line[0].ContextMap()["ledger"].(string), "drops a message after 20 deliveries"))
	})
	t.Run("classic with names too long for the broker's text", func(t *testing.T) {
		e := newEnv(t, func(c *rabbitmq.Config) { c.Queue = e0name(c.Queue) })
		_, err := e.ch.QueueDeclare(e.cfg.Queue, true, false, false, false, nil)
		require.NoError(t, err)
		b, _ := e.loggedBroker(nil)
		info, _ := b.QueueInfo()
		assert.Equal(t, rabbitmq.QueueClassic, info.Type, "found by dropping what the queue does not have")
		assert.Zero(t, info.DeliveryLimit)
		assert.False(t, info.DeadLetter)
	})
	t.Run("quorum with names too long for the broker's text", func(t *testing.T) {
		e := newEnv(t, func(c *rabbitmq.Config) { c.Queue = e0name(c.Queue) })
		_, err := e.ch.QueueDeclare(e.cfg.Queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(20)})
		require.NoError(t, err)
		b, logs := e.loggedBroker(nil)
		info, _ := b.QueueInfo()
		assert.True(t, info.Existed)
		assert.Equal(t, "unknown", info.Type, "the value cannot be read: kept, and said so")
		assert.Equal(t, 1, logCount(logs, "could not read"))
	})
}

// e0name makes a queue name long enough that the broker's 406 text is cut
// before the queue's current value.
func e0name(base string) string { return base + "." + strings.Repeat("x", 120) }
