package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
	"github.com/bookworm-ledger/ledger/projections"
)

// A valid checkout of 30,000,000.00 USD among ordinary orders, through the
// built binary and the real broker: the fact is stored, the BookWorm
// commands go out (they carry decimals), only the order's AccelByte events
// (int32 price) are parked, every other order goes on, and the operator
// sees it and can retry it.
func TestOverLargeOrderParksOnlyItsAccelByteLane(t *testing.T) {
	t.Parallel()
	u := testenv.Vhost(t)
	dir := t.TempDir()
	in := startLedger(t, u, dir)
	w := watch(t, u)

	plan := traffic.Plan(1010, 6, []traffic.Scenario{traffic.Fulfilled})
	big := &plan[2]
	big.Minor = traffic.PoisonMinor // exactly 30,000,000.00
	for _, st := range big.Steps {
		for _, k := range []string{"totalMoney", "amount"} {
			if _, ok := st.Fields[k]; ok {
				st.Fields[k] = traffic.PoisonMinor
			}
		}
	}
	envs := []traffic.Envelope{traffic.MassTransit, traffic.CloudEvents, traffic.Bare}
	for step := range 3 {
		var wires []traffic.Wire
		for i, o := range plan {
			wire, err := traffic.Encode(o.Steps[step], envs[(i+step)%len(envs)], traffic.MessageID(o.ID, step), time.Now())
			require.NoError(t, err)
			wires = append(wires, wire)
		}
		publish(t, u, wires...)
		time.Sleep(150 * time.Millisecond)
	}

	// Every other order completes downstream.
	want := expected[traffic.Fulfilled]
	for _, o := range plan {
		if o.ID == big.ID {
			continue
		}
		require.Eventually(t, func() bool {
			ev, cmds, _ := w.forOrder(o.ID)
			return assert.ObjectsAreEqual(want.events, ev) && assert.ObjectsAreEqual(want.commands, cmds)
		}, 30*time.Second, 100*time.Millisecond, "order %s", o.ID)
	}
	// The big one gets its commands, PlaceOrderCommand first of all, and
	// no AccelByte event.
	require.Eventually(t, func() bool {
		_, cmds, _ := w.forOrder(big.ID)
		return assert.ObjectsAreEqual(want.commands, cmds)
	}, 30*time.Second, 100*time.Millisecond, "the over-large order's BookWorm commands")
	var place []amqp.Delivery
	_, _, all := w.forOrder(big.ID)
	for _, d := range all {
		checkContract(t, d)
		if d.Exchange == "BookWorm.Contracts:PlaceOrderCommand" {
			place = append(place, d)
		}
	}
	require.Len(t, place, 1)
	assert.Contains(t, string(place[0].Body), `"30000000.00"`, "the command carries the whole total as a decimal")

	// The fact is stored, whole, and the read model has it.
	var sum projections.Summary
	require.Eventually(t, func() bool {
		return getJSON(t, in, "/api/orders/"+big.ID, &sum) == 200 && sum.Status == domain.StatusFulfilled
	}, 15*time.Second, 100*time.Millisecond)
	assert.Equal(t, traffic.PoisonMinor, sum.Total)
	assert.Equal(t, 3, sum.Facts)

	// Parked: the API, the CLI through the server, readiness, metrics.
	var parked struct {
		Orders int                  `json:"orders"`
		Lanes  int                  `json:"lanes"`
		Parked []projections.Parked `json:"parked"`
	}
	require.Eventually(t, func() bool {
		return getJSON(t, in, "/api/parked", &parked) == 200 && parked.Lanes == 1
	}, 15*time.Second, 100*time.Millisecond)
	p := parked.Parked[0]
	assert.Equal(t, big.ID, p.OrderID)
	assert.Equal(t, domain.KindAccelByte, p.Kind)
	assert.Equal(t, projections.ReasonUnbuildable, p.Reason)
	assert.Contains(t, p.Detail, "int32")
	assert.Equal(t, uint64(0), p.FromRevision, "held from the checkout's orderCreated")
	assert.Equal(t, "orderCreated", p.Message)

	tool := func(args ...string) (string, error) {
		cmd := exec.Command(ledgerBin, args...)
		cmd.Env = append(os.Environ(), "LEDGER_DATA_DIR="+dir, "LEDGER_AMQP_URL="+u, "LEDGER_HTTP_TOKEN=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := tool("parked", "list", "--server", in.URL())
	require.NoError(t, err, out)
	assert.Contains(t, out, big.ID)
	assert.Contains(t, out, "AccelByte events")
	assert.Contains(t, out, projections.ReasonUnbuildable)
	assert.Contains(t, out, "int32")
	assert.Contains(t, out, "1 lane(s) of 1 order(s) parked")
	out, err = tool("parked", "list", "--json", "--server", in.URL())
	require.NoError(t, err, out)
	var listed parkedList
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	assert.Equal(t, parked.Parked, listed.Parked)

	var ready struct {
		Status string   `json:"status"`
		Notes  []string `json:"notes"`
	}
	require.Equal(t, 200, getJSON(t, in, "/readyz", &ready), "a parked order leaves the service ready")
	assert.Contains(t, ready.Notes, "parked: 1 orders (1 lanes)")

	require.Eventually(t, func() bool {
		m, err := in.Metrics(context.Background())
		return err == nil && m[`ledger_parked_lanes{kind="accelbyte"}`] == 1 && m[`ledger_parked_lanes{kind="bookworm"}`] == 0 &&
			m[`ledger_lanes_parked_total{kind="accelbyte",reason="cannot be built"}`] >= 1
	}, 10*time.Second, 200*time.Millisecond, "parked metrics")

	// The audit shows the lane.
	out, err = tool("audit", big.ID, "--server", in.URL())
	require.NoError(t, err, out)
	assert.Contains(t, out, "parked  AccelByte events from rev 0")
	assert.Contains(t, out, "ledger parked retry "+big.ID)

	// A retry without the token is refused; with it, the lane is parked
	// again (still too large), and the command says so with its exit code.
	out, err = tool("parked", "retry", "--all", "--server", in.URL())
	require.Error(t, err)
	assert.Contains(t, out, "401")
	out, err = tool("parked", "retry", "--all", "--server", in.URL(), "--token", "test-token")
	require.Error(t, err, out)
	assert.Contains(t, out, "parked again: "+projections.ReasonUnbuildable)
	assert.Contains(t, out, "1 lane(s) parked again")
	out, err = tool("parked", "retry", domain.NameUUID("never", "parked"), "--server", in.URL(), "--token", "test-token")
	require.Error(t, err, out)
	assert.Contains(t, out, "not parked")

	require.Equal(t, 200, getJSON(t, in, "/api/parked", &parked))
	require.Len(t, parked.Parked, 1)
	assert.Equal(t, 1, parked.Parked[0].Retries)
	assert.Equal(t, p.ParkedAt, parked.Parked[0].ParkedAt, "first parked when it first failed")

	// Nothing AccelByte of the big order ever went out; the others got
	// theirs exactly once.
	time.Sleep(500 * time.Millisecond)
	ev, cmds, _ := w.forOrder(big.ID)
	assert.Empty(t, ev)
	assert.Equal(t, want.commands, cmds)
	for _, o := range plan {
		if o.ID != big.ID {
			ev, cmds, _ := w.forOrder(o.ID)
			assert.Equal(t, want.events, ev, o.ID)
			assert.Equal(t, want.commands, cmds, o.ID)
		}
	}

	// A restart keeps the park and holds the lane.
	stopLedger(t, in)
	restartLedger(t, in)
	require.Equal(t, 200, getJSON(t, in, "/api/parked", &parked))
	require.Len(t, parked.Parked, 1)
	assert.Equal(t, big.ID, parked.Parked[0].OrderID)
	time.Sleep(time.Second)
	ev, _, _ = w.forOrder(big.ID)
	assert.Empty(t, ev, "still held after a restart")
}

// The dead-letters endpoint through the running service: a message the
// ledger cannot read shows in the error queue's list, and stays there.
func TestDeadLettersThroughRunningServer(t *testing.T) {
	t.Parallel()
	u := testenv.Vhost(t)
	in := startLedger(t, u, t.TempDir())
	_, ch := testenv.Dial(t, u)
	require.NoError(t, ch.Confirm(false))
	id := domain.NameUUID("dead-letter", "broken")
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "BookWorm.Contracts:UserCheckedOutIntegrationEvent", "", true, false,
		amqp.Publishing{ContentType: domain.ContentTypeJSON, MessageId: id, DeliveryMode: amqp.Persistent, Body: []byte(`{"orderId": <not json>`)})
	require.NoError(t, err)
	require.True(t, dc.Wait())

	type listing struct {
		Queue    string `json:"queue"`
		Messages []struct {
			MessageID string `json:"messageId"`
			Reason    string `json:"reason"`
			Exchange  string `json:"exchange"`
			Preview   string `json:"preview"`
		} `json:"messages"`
		Counts []struct {
			Reason string `json:"reason"`
			Count  int    `json:"count"`
		} `json:"counts"`
	}
	var got listing
	require.Eventually(t, func() bool {
		got = listing{}
		return getJSON(t, in, "/api/deadletters?queue=error", &got) == 200 && len(got.Messages) == 1
	}, 20*time.Second, 200*time.Millisecond, "the malformed message reaches the error queue")
	m := got.Messages[0]
	assert.Equal(t, id, m.MessageID)
	assert.NotEmpty(t, m.Reason)
	assert.Equal(t, "BookWorm.Contracts:UserCheckedOutIntegrationEvent", m.Exchange)
	assert.Equal(t, `{"orderId": <not json>`, m.Preview)
	require.Len(t, got.Counts, 1)
	assert.Equal(t, 1, got.Counts[0].Count)

	// Browsing took nothing out.
	got = listing{}
	require.Equal(t, 200, getJSON(t, in, "/api/deadletters", &got))
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "error", got.Queue)
	got = listing{}
	require.Equal(t, 200, getJSON(t, in, "/api/deadletters?queue=skipped", &got))
	assert.Empty(t, got.Messages)

	// The page is served (the browser test drives it).
	resp, err := http.Get(in.URL() + "/ui/deadletters")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.True(t, bytes.Contains(body, []byte("nav-deadletters")), "the page links to it")
}

func TestParkedCommandArguments(t *testing.T) {
	_, _, err := ledger(t, nil, "parked", "retry", "--server", "http://127.0.0.1:1", "--token", "t")
	assert.ErrorContains(t, err, "--all")
	_, _, err = ledger(t, nil, "parked", "retry", "--all", domain.NameUUID("a", "b"), "--server", "http://127.0.0.1:1", "--token", "t")
	assert.ErrorContains(t, err, "not both")
	_, _, err = ledger(t, nil, "parked", "list", "--server", "http://127.0.0.1:1")
	assert.ErrorContains(t, err, "/api/parked", "no server there: the error names what it tried")

	for listen, dial := range map[string]string{
		"":               "127.0.0.1:8080",
		"127.0.0.1:8080": "127.0.0.1:8080",
		"0.0.0.0:9000":   "127.0.0.1:9000",
		"[::]:9000":      "127.0.0.1:9000",
		":9000":          "127.0.0.1:9000",
		"ledger:80":      "ledger:80",
	} {
		assert.Equal(t, dial, localAddr(listen), listen)
	}
}

// While the store is down and a delivery waits for it, /readyz is not
// ready and says why; the metric follows; both clear when it is back.
func TestReadyzSaysWhyIngestIsPaused(t *testing.T) {
	t.Parallel()
	srv := esdbtest.MustStart(t)
	u := testenv.Vhost(t)
	in := startLedger(t, u, t.TempDir(), "LEDGER_STORE=esdb", "LEDGER_ESDB_URL="+srv.ConnectionString())
	type readyBody struct {
		Status  string   `json:"status"`
		Failing []string `json:"failing"`
		Notes   []string `json:"notes"`
	}
	readyz := func() (int, readyBody) {
		resp, err := http.Get(in.URL() + "/readyz")
		require.NoError(t, err, "exits: %v\nlogs:\n%s", in.UnexpectedExits(), in.LogTail(400))
		defer resp.Body.Close()
		var b readyBody
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
		return resp.StatusCode, b
	}
	code, body := readyz()
	require.Equal(t, 200, code)
	require.Len(t, body.Notes, 2, "%q", body.Notes)
	assert.Regexp(t, `^leader since \S+ \(0 role changes\), instance \S+$`, body.Notes[0], "no election: the publishing instance leads")
	assert.Equal(t, "parked: 0 orders (0 lanes)", body.Notes[1])

	srv.Stop()
	o := traffic.Plan(77, 1, []traffic.Scenario{traffic.Fulfilled})[0]
	wire, err := traffic.Encode(o.Steps[0], traffic.MassTransit, traffic.MessageID(o.ID, 0), time.Now())
	require.NoError(t, err)
	publish(t, u, wire)
	var note string
	require.Eventually(t, func() bool {
		code, body = readyz()
		for _, n := range body.Notes {
			if strings.HasPrefix(n, "ingest paused since ") {
				note = n
			}
		}
		return code == 503 && note != "" && slices.Contains(body.Failing, "ingest")
	}, 30*time.Second, 200*time.Millisecond, "readyz: %d %+v\nlogs:\n%s", code, body, in.LogTail(30))
	assert.Contains(t, note, "store unavailable")
	m, err := in.Metrics(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1.0, m["ledger_ingest_paused"])

	require.NoError(t, srv.Restart())
	require.Eventually(t, func() bool {
		code, body = readyz()
		return code == 200
	}, 60*time.Second, 250*time.Millisecond, "ready again: %+v", body)
	for _, n := range body.Notes {
		assert.NotContains(t, n, "ingest paused")
	}
	m, err = in.Metrics(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0.0, m["ledger_ingest_paused"])
}
