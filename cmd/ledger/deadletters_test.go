package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// deadLetterList is `ledger deadletters list --json`.
type deadLetterList struct {
	Queue    string `json:"queue"`
	Messages int    `json:"messages"`
	Items    []struct {
		MessageID string `json:"messageId"`
		Reason    string `json:"reason"`
		Exchange  string `json:"exchange"`
		Body      string `json:"body"`
		By        string `json:"by"`
	} `json:"items"`
}

// TestDeadLetterCommandsAgainstARunningLedger: a malformed message parked
// by the running service is listed and shown; a valid message parked by
// hand (as an outage past the delivery limit would have) is redriven and
// stored once; redriving one already stored appends nothing; a dry run
// and the unchosen change nothing.
func TestDeadLetterCommandsAgainstARunningLedger(t *testing.T) {
	t.Parallel()
	u := testenv.Vhost(t)
	dir := t.TempDir()
	in := startLedger(t, u, dir)
	_, ch := testenv.Dial(t, u)
	require.NoError(t, ch.Confirm(false))
	errQ := domain.ErrorQueue(harness.LedgerQueue)

	tool := func(args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command(ledgerBin, append([]string{"deadletters"}, args...)...)
		cmd.Env = append(os.Environ(), "LEDGER_DATA_DIR="+dir, "LEDGER_AMQP_URL="+u, "LEDGER_AMQP_QUEUE="+harness.LedgerQueue)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	list := func() deadLetterList {
		t.Helper()
		out, stderr, err := tool("list", "--json")
		require.NoError(t, err, stderr)
		var l deadLetterList
		require.NoError(t, json.Unmarshal([]byte(out), &l), out)
		return l
	}
	listed := func() []string {
		t.Helper()
		var ids []string
		for _, it := range list().Items {
			ids = append(ids, it.MessageID)
		}
		return ids
	}
	send := func(exchange, key string, p amqp.Publishing) {
		t.Helper()
		p.DeliveryMode = amqp.Persistent
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, key, true, false, p)
		require.NoError(t, err)
		require.True(t, dc.Wait())
	}
	orders := traffic.Plan(uint64(time.Now().UnixNano()), 2, []traffic.Scenario{traffic.Fulfilled})
	checkout := func(o traffic.Order) traffic.Wire {
		w, err := traffic.Encode(o.Steps[0], traffic.MassTransit, traffic.MessageID(o.ID, 0), time.Now())
		require.NoError(t, err)
		return w
	}
	w1, w2 := checkout(orders[0]), checkout(orders[1])
	// The copy the consumer parks after a failure it could not get past.
	parkByHand := func(w traffic.Wire) {
		t.Helper()
		send("", errQ, amqp.Publishing{ContentType: w.ContentType, MessageId: w.MessageID, Type: w.Type, Body: w.Body,
			Headers: amqp.Table{
				rabbitmq.HeaderFaultMessage: "store unavailable: connection refused", rabbitmq.HeaderReason: "fault",
				rabbitmq.HeaderLedgerReason: rabbitmq.ReasonDeliveryLimit, rabbitmq.HeaderOriginalExchange: w.Exchange,
				rabbitmq.HeaderOriginalRouting: "", rabbitmq.HeaderFaultTimestamp: time.Now().UTC().Format(time.RFC3339Nano),
			}})
	}
	events := func(orderID string) int {
		t.Helper()
		var body struct {
			Events []json.RawMessage `json:"events"`
		}
		if getJSON(t, in, "/api/streams/"+domain.StreamName(orderID), &body) != 200 {
			return 0
		}
		return len(body.Events)
	}

	// 1. The running ledger parks a malformed message; list and show it.
	send(w1.Exchange, "", amqp.Publishing{ContentType: w1.ContentType, MessageId: "bad-1", Body: []byte(`{"orderId":`)})
	require.Eventually(t, func() bool { n, err := harness.ReadyCount(u, errQ); return err == nil && n == 1 }, 20*time.Second, 100*time.Millisecond)
	out, stderr, err := tool("list")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, errQ+": 1 message(s)")
	assert.Contains(t, out, "bad-1")
	assert.Contains(t, out, rabbitmq.ReasonMalformed)
	assert.Contains(t, out, `{"orderId":`)
	l := list()
	require.Len(t, l.Items, 1)
	assert.Equal(t, rabbitmq.ReasonMalformed, l.Items[0].Reason)
	assert.Equal(t, w1.Exchange, l.Items[0].Exchange)
	assert.Equal(t, rabbitmq.ByLedger, l.Items[0].By)
	assert.Equal(t, `{"orderId":`, l.Items[0].Body)

	out, stderr, err = tool("show", "bad-1")
	require.NoError(t, err, stderr)
	for _, s := range []string{"message bad-1 in " + errQ, rabbitmq.HeaderFaultMessage, rabbitmq.HeaderLedgerReason, "came from", w1.Exchange, `{"orderId":`} {
		assert.Contains(t, out, s)
	}
	_, stderr, err = tool("show", "no-such-id")
	require.Error(t, err)
	assert.Contains(t, stderr, "not in "+errQ+" or "+domain.SkippedQueue(harness.LedgerQueue))

	// 2. Two valid messages parked by hand; a dry run changes nothing.
	parkByHand(w1)
	parkByHand(w2)
	want := []string{"bad-1", w1.MessageID, w2.MessageID}
	require.Eventually(t, func() bool { return len(listed()) == 3 }, 10*time.Second, 100*time.Millisecond)
	out, stderr, err = tool("redrive", w1.MessageID, "--dry-run")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "would redrive")
	assert.Equal(t, want, listed(), "dry run: everything still there, in order")
	assert.Zero(t, events(orders[0].ID), "dry run: nothing sent")

	// 3. Redrive one: it is stored once; the others stay, in order.
	out, stderr, err = tool("redrive", w1.MessageID)
	require.NoError(t, err, "%s%s", out, stderr)
	assert.Contains(t, out, "redriven")
	assert.Equal(t, []string{"bad-1", w2.MessageID}, listed(), "unchosen stay, in order")
	require.Eventually(t, func() bool { return events(orders[0].ID) == 1 }, 20*time.Second, 100*time.Millisecond, "stored")
	assert.Zero(t, events(orders[1].ID), "the unchosen one was not sent")

	// 4. The same message again, already stored: appends nothing.
	parkByHand(w1)
	require.Eventually(t, func() bool { return len(listed()) == 3 }, 10*time.Second, 100*time.Millisecond)
	out, stderr, err = tool("redrive", w1.MessageID)
	require.NoError(t, err, "%s%s", out, stderr)
	require.NoError(t, harness.WaitQuiet(context.Background(), u, in.URL(), 60*time.Second))
	assert.Equal(t, 1, events(orders[0].ID), "a re-driven duplicate appends nothing")
	assert.Equal(t, []string{"bad-1", w2.MessageID}, listed())

	// 5. An unknown id fails, and changes nothing.
	out, _, err = tool("redrive", "no-such-id")
	require.Error(t, err)
	assert.Contains(t, out, "not redriven")
	_, _, err = tool("redrive")
	require.Error(t, err, "ids or --all")

	// 6. --all: the valid one is stored; the malformed one comes straight
	// back to _error (parked again by the ledger), nothing else is left.
	out, stderr, err = tool("redrive", "--all")
	require.NoError(t, err, "%s%s", out, stderr)
	require.Eventually(t, func() bool { return events(orders[1].ID) == 1 }, 20*time.Second, 100*time.Millisecond)
	require.NoError(t, harness.WaitQuiet(context.Background(), u, in.URL(), 60*time.Second))
	assert.Equal(t, []string{"bad-1"}, listed(), "the malformed message is parked again")
	assert.Equal(t, 1, events(orders[0].ID))
}
