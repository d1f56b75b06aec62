package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// The short forms of the chaos run (`make chaos` is the long one): the
// service is killed, or loses its broker connections, while a load runs
// in the test's own vhost; then the books are checked against the files
// and the queues. Only vhost-scoped broker commands are used here: other
// packages' tests share the broker.

const (
	chaosOrders   = 600 // Fulfilled orders, 3 facts each
	chaosLoadTime = 12 * time.Second
	chaosFaults   = 3
	// chaosPoisonEvery: the poison run makes 1% of the orders over-large.
	chaosPoisonEvery = 100
)

type chaosRun struct {
	t      *testing.T
	url    string
	dir    string
	in     *testenv.Serve
	seed   uint64
	rng    *rand.Rand
	loader *harness.Loader
	poison map[string]bool
	done   chan loadOutcome
	begin  time.Time
}

type loadOutcome struct {
	load harness.Load
	err  error
}

// startChaos starts the service and the load; every poisonEvery-th order
// is over-large (none when 0).
func startChaos(t *testing.T, poisonEvery int) *chaosRun {
	u := testenv.Vhost(t)
	dir := t.TempDir()
	in := startLedger(t, u, dir)
	require.NoError(t, harness.PrepareCapture(u))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	c := &chaosRun{t: t, url: u, dir: dir, in: in, seed: seed, rng: rand.New(rand.NewPCG(seed, 7)), done: make(chan loadOutcome, 1)}
	orders := traffic.Plan(seed, chaosOrders, []traffic.Scenario{traffic.Fulfilled})
	c.poison = traffic.Poison(orders, poisonEvery)
	c.loader = &harness.Loader{
		URL:    u,
		Orders: orders,
		Rate:   chaosOrders / chaosLoadTime.Seconds(),
		GiveUp: time.Minute,
	}
	c.begin = time.Now()
	go func() {
		l, err := c.loader.Run(context.Background())
		c.done <- loadOutcome{l, err}
	}()
	return c
}

// nextFault sleeps until a random moment of fault slot i while the load
// runs.
func (c *chaosRun) nextFault(i int) {
	slot := chaosLoadTime / (chaosFaults + 1)
	at := slot/2 + time.Duration(i)*slot + time.Duration(c.rng.Int64N(int64(slot)))
	time.Sleep(time.Until(c.begin.Add(at)))
}

// finish waits for the load and the ledger, stops it and checks the books.
func (c *chaosRun) finish(f harness.Faults) (harness.Load, harness.Report) {
	t := c.t
	out := <-c.done
	require.NoError(t, out.err)
	require.Equal(t, chaosOrders*3, out.load.Messages)
	require.NoError(t, harness.WaitQuiet(context.Background(), c.url, c.in.URL(), 90*time.Second), "logs:\n%s", c.in.Logs())
	stopLedger(t, c.in)
	rep, err := harness.Verify(context.Background(), c.url, c.dir, out.load)
	require.NoError(t, err)
	var tab bytes.Buffer
	require.NoError(t, harness.WriteTable(&tab, out.load, f, rep))
	t.Logf("\n%s", tab.String())

	assert.Equal(t, chaosOrders*3, rep.MessagesIn)
	assert.Equal(t, chaosOrders*3, rep.FactsStored, "every inbound message is a fact")
	assert.Zero(t, rep.LostFacts, "lost facts: %v", rep.Problems)
	assert.Zero(t, rep.DuplicateFacts, "duplicate facts: %v", rep.Problems)
	assert.Zero(t, rep.ForeignFacts, "foreign facts: %v", rep.Problems)
	assert.Zero(t, rep.Parked, "parked: %v", rep.Problems)
	// Fulfilled: 3 AccelByte events and 3 commands, PlaceOrderCommand to
	// two queues; a poison order only has its 3 commands (4 deliveries).
	poison := len(c.poison)
	assert.Equal(t, (chaosOrders-poison)*7+poison*4, rep.OutboundExpected)
	assert.Equal(t, poison, rep.PoisonOrders)
	assert.Equal(t, poison, rep.ParkedLanes, "exactly the poison orders are parked: %v", rep.Problems)
	assert.Zero(t, rep.PoisonUnparked, "%v", rep.Problems)
	assert.Zero(t, rep.ParkedNotPoison, "%v", rep.Problems)
	assert.Equal(t, rep.OutboundExpected, rep.OutboundDelivered, "every outbound message arrives: %v", rep.Problems)
	assert.Zero(t, rep.ChangedIDs, "a re-publish keeps its id: %v", rep.Problems)
	assert.Zero(t, rep.ReplayChanges, "read model equals a fresh replay: %v", rep.Problems)
	assert.Zero(t, rep.LifecycleLag)
	assert.Zero(t, rep.StatusDiffers, "every order ends FULFILLED")
	assert.Empty(t, rep.Failures())
	return out.load, rep
}

func TestChaosKill9UnderLoad(t *testing.T) {
	t.Parallel()
	c := startChaos(t, 0)
	kill9(t, c)
}

// TestChaosPoisonKill9 is the short form of `make chaos-poison`: 1% of the
// orders can never be published to AccelByte; they are parked, every other
// order completes, and nothing is lost or duplicated across kill -9.
func TestChaosPoisonKill9(t *testing.T) {
	t.Parallel()
	c := startChaos(t, chaosPoisonEvery)
	require.Len(t, c.poison, chaosOrders/chaosPoisonEvery)
	kill9(t, c)
}

func kill9(t *testing.T, c *chaosRun) {
	t.Helper()
	var f harness.Faults
	for i := range chaosFaults {
		c.nextFault(i)
		sent := c.loader.Sent()
		require.NoError(t, c.in.Kill())
		f.Kills++
		start := time.Now()
		restartLedger(t, c.in) // same data dir, same vhost; waits for /readyz
		f.Recoveries = append(f.Recoveries, time.Since(start))
		t.Logf("kill -9 #%d after %d messages sent", f.Kills, sent)
	}
	c.finish(f)
	assert.Equal(t, chaosFaults, f.Kills)
}

const reconnectMetric = `ledger_retries_total{component="reconnect"}`

// waitReconnected waits until the service has reconnected to the broker n
// times since it started, then until it is ready. Right after the broker
// closes the connections /readyz may still answer 200 for the old one: only
// the reconnect counter says the loss was noticed and mended.
func waitReconnected(t *testing.T, in *testenv.Serve, n int) {
	t.Helper()
	if !assert.Eventually(t, func() bool {
		m, err := in.Metrics(context.Background())
		return err == nil && m[reconnectMetric] >= float64(n)
	}, 60*time.Second, 50*time.Millisecond, "reconnect #%d", n) {
		t.Fatalf("the service did not reconnect by itself; logs:\n%s", in.Logs())
	}
	_, err := in.WaitReady(context.Background(), 60*time.Second)
	require.NoError(t, err, "ready again after reconnect #%d", n)
}

func TestChaosBrokerConnectionsClosed(t *testing.T) {
	t.Parallel()
	c := startChaos(t, 0)
	vhost, err := testenv.VhostOf(c.url)
	require.NoError(t, err)
	var f harness.Faults
	for i := range chaosFaults {
		c.nextFault(i)
		start := time.Now()
		// Every connection of this vhost only: the ledger's and the loader's.
		require.NoError(t, testenv.CloseConnections(context.Background(), vhost, "chaos test"))
		f.ConnectionKills++
		waitReconnected(t, c.in, f.ConnectionKills)
		f.Recoveries = append(f.Recoveries, time.Since(start))
	}
	m, err := c.in.Metrics(context.Background())
	require.NoError(t, err)
	reconnects := m[reconnectMetric]
	load, _ := c.finish(f)
	assert.GreaterOrEqual(t, reconnects, float64(chaosFaults), "the service noticed each lost connection and reconnected")
	assert.GreaterOrEqual(t, load.Reconnects, 1, "the faults hit the loader too")
}
