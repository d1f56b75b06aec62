package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// The short form of `make chaos-ha`: three instances on one store (the
// in-process esdbtest server) and the test's own vhost; under load the
// leader is killed twice and cut off from the broker once. Nothing may be
// lost or doubled, everything must arrive, no two instances may lead at
// once and every failover must come within the bound. The waits are
// generous: three race-built instances share a small machine.
const (
	haOrders   = 300 // Fulfilled orders, 3 facts each
	haLoadTime = 30 * time.Second
)

func TestChaosHAFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := esdbtest.MustStart(t)
	u := testenv.Vhost(t)
	c, err := harness.StartCluster(ctx, harness.ClusterOptions{
		Binary: ledgerBin, AMQPURL: u, ESDBURL: srv.ConnectionString(), Dir: t.TempDir(), Instances: 3,
		Env: []string{"LEDGER_AMQP_QUEUE_TYPE=quorum"}, ReadyTimeout: 2 * time.Minute,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Logf("stop: %v", err)
		}
	})
	logs := func() string {
		var b bytes.Buffer
		for _, in := range c.Instances {
			b.WriteString("--- " + in.Name + "\n" + in.LogTail(40) + "\n")
		}
		return b.String()
	}
	first, err := c.WaitLeader(ctx, 2*time.Minute)
	require.NoError(t, err, "first leader; logs:\n%s", logs())
	// Every follower names the leader (from the shared checkpoint's
	// writer) and says it follows.
	for _, in := range c.Instances {
		if in == first {
			continue
		}
		require.Eventually(t, func() bool {
			var info struct {
				Instance string `json:"instance"`
				Role     struct {
					Leading bool   `json:"leading"`
					Leader  string `json:"leader"`
				} `json:"role"`
			}
			resp, err := http.Get(in.URL() + "/api/info")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			return json.NewDecoder(resp.Body).Decode(&info) == nil && info.Instance == in.Name &&
				!info.Role.Leading && info.Role.Leader == first.Name
		}, time.Minute, 200*time.Millisecond, "%s names %s as the leader", in.Name, first.Name)
	}
	require.NoError(t, harness.PrepareCapture(u))
	store, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: srv.ConnectionString()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	loader := &harness.Loader{
		URL:    u,
		Orders: traffic.Plan(seed, haOrders, []traffic.Scenario{traffic.Fulfilled}),
		Rate:   haOrders / haLoadTime.Seconds(),
		GiveUp: time.Minute,
	}
	done := make(chan loadOutcome, 1)
	go func() {
		l, err := loader.Run(ctx)
		done <- loadOutcome{l, err}
	}()

	// A blow every ~8s while the load runs, each to whoever leads then.
	var f harness.Faults
	for i, kind := range []string{"kill", "cut", "kill"} {
		time.Sleep(6 * time.Second)
		switch kind {
		case "kill":
			fault, d, err := c.KillLeader(ctx, 2*time.Second, 90*time.Second)
			require.NoError(t, err, "fault %d; logs:\n%s", i+1, logs())
			f.Kills++
			f.Recoveries = append(f.Recoveries, d)
			t.Logf("kill -9 of leader %s after %d messages sent", fault.Instance, loader.Sent())
		case "cut":
			fault, err := c.CutLeader(ctx, 90*time.Second)
			require.NoError(t, err, "fault %d; logs:\n%s", i+1, logs())
			f.ConnectionKills++
			t.Logf("cut of leader %s's broker connection after %d messages sent", fault.Instance, loader.Sent())
		}
	}

	out := <-done
	require.NoError(t, out.err)
	require.Equal(t, haOrders*3, out.load.Messages)
	require.NoError(t, c.WaitQuiet(ctx, store, 3*time.Minute), "logs:\n%s", logs())
	require.NoError(t, c.Stop(), "clean stops")
	end := time.Now()

	rep, err := harness.VerifyShared(ctx, u, store, c.DataDirs(), out.load)
	require.NoError(t, err)
	h, err := c.Report(end, harness.DefaultFailoverBound)
	require.NoError(t, err)
	var tab bytes.Buffer
	require.NoError(t, harness.WriteHATable(&tab, out.load, f, rep, h))
	for _, d := range h.Details() {
		tab.WriteString("  " + d + "\n")
	}
	t.Logf("\n%s", tab.String())

	assert.Equal(t, haOrders*3, rep.MessagesIn)
	assert.Equal(t, haOrders*3, rep.FactsStored, "every inbound message is a fact")
	assert.Zero(t, rep.LostFacts, "lost facts: %v", rep.Problems)
	assert.Zero(t, rep.DuplicateFacts, "duplicate facts: %v", rep.Problems)
	assert.Zero(t, rep.ForeignFacts, "foreign facts: %v", rep.Problems)
	assert.Zero(t, rep.Parked, "parked: %v", rep.Problems)
	// Fulfilled: 3 AccelByte events and 3 commands, PlaceOrderCommand to
	// two queues.
	assert.Equal(t, haOrders*7, rep.OutboundExpected)
	assert.Equal(t, rep.OutboundExpected, rep.OutboundDelivered, "every outbound message arrives: %v", rep.Problems)
	assert.Zero(t, rep.ChangedIDs, "a re-publish by another leader keeps its id: %v", rep.Problems)
	assert.Zero(t, rep.ReplayChanges, "every instance's read model equals a fresh replay: %v", rep.Problems)
	assert.Zero(t, rep.LifecycleLag, "the shared checkpoint is at the last fact")
	assert.Zero(t, rep.StatusDiffers, "every order ends FULFILLED")
	assert.Empty(t, rep.Failures())

	assert.Len(t, h.Failovers, 3)
	assert.Empty(t, h.Overlaps, "two publishers at once")
	assert.Empty(t, h.Failures(), "%v", h.Details())
	assert.Empty(t, c.UnexpectedExits())
}
