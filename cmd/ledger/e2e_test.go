package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
	"github.com/bookworm-ledger/ledger/specs"
)

// The end-to-end tests run the built binary against the real broker, each
// in its own virtual host, and watch what comes out.

// ledgerBin is the binary under test, built with the race detector.
var ledgerBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ledger-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ledgerBin, err = testenv.BuildLedger(context.Background(), dir, "-race")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build ledger:", err)
		return 1
	}
	return m.Run()
}

// startLedger runs `ledger serve` with env on top of a test configuration,
// waits until it is ready and stops it when t ends.
func startLedger(t *testing.T, amqpURL, dataDir string, env ...string) *testenv.Serve {
	t.Helper()
	in, err := testenv.StartServe(context.Background(), testenv.ServeOptions{
		Binary:  ledgerBin,
		AMQPURL: amqpURL,
		DataDir: dataDir,
		Env:     append([]string{"LEDGER_HTTP_TOKEN=test-token", "LEDGER_AMQP_QUEUE_TYPE=quorum"}, env...),
	})
	require.NoError(t, err)
	t.Cleanup(func() { stopLedger(t, in) })
	return in
}

// stopLedger stops the service; an unclean exit is logged, as the tests
// judge the service by what it did, not by how it exited.
func stopLedger(t *testing.T, in *testenv.Serve) {
	t.Helper()
	if err := in.Stop(); err != nil {
		t.Logf("stop ledger: %v", err)
	}
}

// restartLedger starts the service again on the same data dir and port.
func restartLedger(t *testing.T, in *testenv.Serve) time.Duration {
	t.Helper()
	d, err := in.Restart(context.Background())
	require.NoError(t, err)
	return d
}

func getJSON(t *testing.T, in *testenv.Serve, path string, out any) int {
	t.Helper()
	resp, err := http.Get(in.URL() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// watcher collects everything the ledger publishes in a vhost.
type watcher struct {
	mu   sync.Mutex
	msgs []amqp.Delivery
}

var commandQueues = map[string]string{
	"basket-place-order":          "PlaceOrderCommand",
	"basket-checkout-complete":    "DeleteBasketCompleteCommand",
	"basket-checkout-failed":      "DeleteBasketFailedCommand",
	"notification-complete-order": "CompleteOrderCommand",
	"notification-cancel-order":   "CancelOrderCommand",
}

func watch(t *testing.T, amqpURL string) *watcher {
	_, ch := testenv.Dial(t, amqpURL)
	w := &watcher{}
	feeds := []<-chan amqp.Delivery{testenv.Capture(t, ch, "orderProcessing", "#")}
	for q := range commandQueues {
		d, err := ch.Consume(q, "", true, false, false, false, nil)
		require.NoError(t, err, "consume %s (the ledger declares it)", q)
		feeds = append(feeds, d)
	}
	for _, f := range feeds {
		go func() {
			for d := range f {
				w.mu.Lock()
				w.msgs = append(w.msgs, d)
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// names returns, for one order, the sorted names of the AccelByte events
// and the BookWorm commands seen so far.
func (w *watcher) forOrder(orderID string) (events, commands []string, all []amqp.Delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.msgs {
		if !bytes.Contains(d.Body, []byte(orderID)) {
			continue
		}
		all = append(all, d)
		if d.Exchange == "orderProcessing" {
			events = append(events, d.RoutingKey)
		} else {
			commands = append(commands, strings.TrimPrefix(d.Exchange, "BookWorm.Contracts:"))
		}
	}
	sort.Strings(events)
	sort.Strings(commands)
	return events, commands, all
}

func publish(t *testing.T, amqpURL string, wires ...traffic.Wire) {
	t.Helper()
	_, ch := testenv.Dial(t, amqpURL)
	require.NoError(t, ch.Confirm(false))
	for _, w := range wires {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), w.Exchange, "", true, false, amqp.Publishing{
			ContentType: w.ContentType, MessageId: w.MessageID, Type: w.Type, DeliveryMode: amqp.Persistent, Body: w.Body,
		})
		require.NoError(t, err)
		require.True(t, dc.Wait(), "broker nacked %s", w.MessageID)
	}
}

func sorted(s ...string) []string { sort.Strings(s); return s }

// expected lists what each scenario must cause downstream (immediate refund
// settlement, the default for BookWorm).
var expected = map[traffic.Scenario]struct{ events, commands []string }{
	traffic.Fulfilled:        {sorted("orderCreated", "orderCharged", "orderFulfilled"), sorted("PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand")},
	traffic.CancelledEarly:   {sorted("orderCreated", "orderCancelled"), sorted("PlaceOrderCommand", "CancelOrderCommand")},
	traffic.BasketFailed:     {sorted("orderCreated", "orderCancelled"), sorted("PlaceOrderCommand", "DeleteBasketFailedCommand")},
	traffic.Refunded:         {sorted("orderCreated", "orderCharged", "orderFulfilled", "orderRefundRequested", "orderRefunded"), sorted("PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand")},
	traffic.CancelledCharged: {sorted("orderCreated", "orderCharged", "orderRefundRequested", "orderRefunded"), sorted("PlaceOrderCommand", "DeleteBasketCompleteCommand", "CancelOrderCommand")},
	traffic.Chargeback:       {sorted("orderCreated", "orderCharged", "orderFulfilled", "orderChargeback"), sorted("PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand")},
	traffic.ChargebackWon:    {sorted("orderCreated", "orderCharged", "orderFulfilled", "orderChargeback", "orderChargebackReversed"), sorted("PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand")},
	traffic.FulfillFailed:    {sorted("orderCreated", "orderCharged", "orderFulfillFailed", "orderFulfilled"), sorted("PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand")},
	traffic.Expired:          {sorted("orderCreated", "orderExpired"), sorted("PlaceOrderCommand", "PlaceOrderCommand", "PlaceOrderCommand", "CancelOrderCommand")},
}

// runLifecycle publishes one order of every scenario in the given envelope
// mix, then checks every order's outbound messages and final status.
func runLifecycle(t *testing.T, amqpURL string, in *testenv.Serve) {
	w := watch(t, amqpURL)
	plan := []traffic.Order{}
	for i, s := range traffic.Scenarios {
		o := traffic.Plan(uint64(1000+i), 1, []traffic.Scenario{s})[0]
		plan = append(plan, o)
	}
	envs := []traffic.Envelope{traffic.MassTransit, traffic.CloudEvents, traffic.Bare}
	// Step by step, so each order's facts arrive in its story's order.
	for step := 0; step < 5; step++ {
		var wires []traffic.Wire
		for i, o := range plan {
			if step < len(o.Steps) {
				wire, err := traffic.Encode(o.Steps[step], envs[(i+step)%len(envs)], traffic.MessageID(o.ID, step), time.Now())
				require.NoError(t, err)
				wires = append(wires, wire)
			}
		}
		publish(t, amqpURL, wires...)
		time.Sleep(150 * time.Millisecond)
	}

	for _, o := range plan {
		want := expected[o.Scenario]
		require.Eventually(t, func() bool {
			ev, cmds, _ := w.forOrder(o.ID)
			return assert.ObjectsAreEqual(want.events, ev) && assert.ObjectsAreEqual(want.commands, cmds)
		}, 30*time.Second, 100*time.Millisecond, "scenario %s: order %s", o.Scenario, o.ID)
		var sum map[string]any
		require.Eventually(t, func() bool {
			return getJSON(t, in, "/api/orders/"+o.ID, &sum) == 200 && sum["status"] == traffic.FinalStatus[o.Scenario]
		}, 15*time.Second, 100*time.Millisecond, "scenario %s: read model says %v", o.Scenario, sum["status"])
	}
	// Give stragglers a moment, then check nothing extra arrived and every
	// message keeps to the contract.
	time.Sleep(500 * time.Millisecond)
	for _, o := range plan {
		want := expected[o.Scenario]
		ev, cmds, all := w.forOrder(o.ID)
		assert.Equal(t, want.events, ev, "scenario %s events", o.Scenario)
		assert.Equal(t, want.commands, cmds, "scenario %s commands", o.Scenario)
		for _, d := range all {
			checkContract(t, d)
		}
	}
}

// checkContract validates one outbound message against specs/.
func checkContract(t *testing.T, d amqp.Delivery) {
	t.Helper()
	require.NotEmpty(t, d.MessageId, "every outbound message has an id: %s", testenv.Describe(d))
	assert.Equal(t, uint8(amqp.Persistent), d.DeliveryMode, "persistent: %s", testenv.Describe(d))
	if d.Exchange == "orderProcessing" {
		assert.NoError(t, specs.Validate(d.RoutingKey, d.Body), "AccelByte %s body", d.RoutingKey)
		return
	}
	cmd := strings.TrimPrefix(d.Exchange, "BookWorm.Contracts:")
	assert.Equal(t, domain.ContentTypeMassTransit, d.ContentType)
	var env struct {
		MessageID   string          `json:"messageId"`
		MessageType []string        `json:"messageType"`
		Message     json.RawMessage `json:"message"`
	}
	require.NoError(t, json.Unmarshal(d.Body, &env))
	assert.Equal(t, d.MessageId, env.MessageID)
	assert.Contains(t, env.MessageType, "urn:message:BookWorm.Contracts:"+cmd)
	assert.NoError(t, specs.Validate("MassTransitEnvelope", d.Body), "%s envelope", cmd)
	assert.NoError(t, specs.Validate(cmd, env.Message), "%s message", cmd)
	var m map[string]any
	require.NoError(t, json.Unmarshal(env.Message, &m))
	_, isString := m["totalMoney"].(string)
	assert.True(t, isString, "MassTransit writes decimals as strings: %s", env.Message)
}

func TestLifecycleEndToEndEmbedded(t *testing.T) {
	t.Parallel()
	u := testenv.Vhost(t)
	in := startLedger(t, u, t.TempDir(), "LEDGER_RULES_PLACEMENT_TIMEOUT=1s")
	runLifecycle(t, u, in)
}

func TestRedeliveryAppendsOnceAndPublishesOnce(t *testing.T) {
	t.Parallel()
	u := testenv.Vhost(t)
	in := startLedger(t, u, t.TempDir())
	w := watch(t, u)
	o := traffic.Plan(42, 1, []traffic.Scenario{traffic.Fulfilled})[0]
	for step := range o.Steps {
		// The same message three times: twice in one envelope, once in another.
		id := traffic.MessageID(o.ID, step)
		a, err := traffic.Encode(o.Steps[step], traffic.MassTransit, id, time.Now())
		require.NoError(t, err)
		b, err := traffic.Encode(o.Steps[step], traffic.CloudEvents, id, time.Now())
		require.NoError(t, err)
		publish(t, u, a, a, b)
		time.Sleep(100 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		ev, cmds, _ := w.forOrder(o.ID)
		return len(ev) == 3 && len(cmds) == 3
	}, 20*time.Second, 100*time.Millisecond)

	// The metrics saw it: three facts, six redeliveries, six messages out.
	// The last redeliveries may still be on their way when the watcher has
	// seen everything: wait for the counters to settle on these values.
	want := map[string]float64{
		`ledger_messages_published_total{kind="bookworm"}`:  3,
		"ledger_facts_appended_total":                       3,
		"ledger_facts_duplicate_total":                      6,
		"ledger_messages_consumed_total":                    9,
		`ledger_messages_published_total{kind="accelbyte"}`: 3,
	}
	counters := func() map[string]float64 {
		m, err := in.Metrics(context.Background())
		if err != nil {
			return map[string]float64{"scrape error: " + err.Error(): 0}
		}
		got := map[string]float64{}
		for k := range want {
			got[k] = m[k]
		}
		return got
	}
	assert.Eventually(t, func() bool { return maps.Equal(want, counters()) }, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, want, counters())

	// Restart the service: the publisher must not emit anything new, and a
	// re-publish after a crash would carry the same ids.
	stopLedger(t, in)
	restartLedger(t, in)
	time.Sleep(time.Second)
	ev, cmds, all := w.forOrder(o.ID)
	assert.Equal(t, expected[traffic.Fulfilled].events, ev)
	assert.Equal(t, expected[traffic.Fulfilled].commands, cmds)
	ids := map[string]int{}
	for _, d := range all {
		ids[d.MessageId]++
	}
	for id, n := range ids {
		assert.Equal(t, 1, n, "message %s delivered %d times", id, n)
	}
	var sum map[string]any
	require.Equal(t, 200, getJSON(t, in, "/api/orders/"+o.ID, &sum))
	assert.EqualValues(t, 3, sum["facts"], "three distinct facts stored, not nine")
}

func TestLifecycleEndToEndEventStoreDB(t *testing.T) {
	t.Parallel()
	srv := esdbtest.MustStart(t)
	u := testenv.Vhost(t)
	in := startLedger(t, u, t.TempDir(), "LEDGER_STORE=esdb", "LEDGER_ESDB_URL="+srv.ConnectionString(), "LEDGER_RULES_PLACEMENT_TIMEOUT=1s")
	runLifecycle(t, u, in)
}

func TestReplayAndAuditThroughRunningServer(t *testing.T) {
	t.Parallel()
	u := testenv.Vhost(t)
	dir := t.TempDir()
	in := startLedger(t, u, dir)
	w := watch(t, u)
	o := traffic.Plan(7, 1, []traffic.Scenario{traffic.Refunded})[0]
	for step := range o.Steps {
		wire, err := traffic.Encode(o.Steps[step], traffic.MassTransit, traffic.MessageID(o.ID, step), time.Now())
		require.NoError(t, err)
		publish(t, u, wire)
		time.Sleep(100 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		ev, _, _ := w.forOrder(o.ID)
		return len(ev) == len(expected[traffic.Refunded].events)
	}, 20*time.Second, 100*time.Millisecond)

	// The store belongs to the running service: the tools find it and go
	// through its HTTP API instead.
	tool := func(args ...string) (string, error) {
		cmd := exec.Command(ledgerBin, args...)
		cmd.Env = append(os.Environ(), "LEDGER_DATA_DIR="+dir, "LEDGER_AMQP_URL="+u)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := tool("replay", "--dry-run")
	require.NoError(t, err, out) // found the running server by itself
	assert.Contains(t, out, "0 changed")

	out, err = tool("replay", "--server", in.URL(), "--token", "wrong")
	require.Error(t, err)
	assert.Contains(t, out, "401")

	out, err = tool("replay", "--server", in.URL(), "--token", "test-token")
	require.NoError(t, err, out)
	assert.Contains(t, out, "0 changed; 0 restated")

	out, err = tool("audit", o.ID, "--server", in.URL())
	require.NoError(t, err, out)
	assert.Contains(t, out, "status REFUNDED")
	assert.Contains(t, out, "orderRefunded")

	// The service keeps working after the swap.
	o2 := traffic.Plan(8, 1, []traffic.Scenario{traffic.CancelledEarly})[0]
	for step := range o2.Steps {
		wire, err := traffic.Encode(o2.Steps[step], traffic.Bare, traffic.MessageID(o2.ID, step), time.Now())
		require.NoError(t, err)
		publish(t, u, wire)
	}
	var sum map[string]any
	require.Eventually(t, func() bool {
		return getJSON(t, in, "/api/orders/"+o2.ID, &sum) == 200 && sum["status"] == "CLOSED"
	}, 20*time.Second, 100*time.Millisecond)
}
