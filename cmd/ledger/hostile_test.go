package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

// hostileCase is one entry of testdata/hostile/cases.json: a body file and
// the AMQP properties it is published with.
type hostileCase struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	ContentType string `json:"contentType"`
	Type        string `json:"type"`      // AMQP type property
	MessageID   string `json:"messageId"` // AMQP message_id; empty: none
	Exchange    string `json:"exchange"`
	Expect      string `json:"expect"` // error | skipped
	Why         string `json:"why"`

	body []byte
}

const hostileHeader = "x-hostile-case"

func loadHostileCorpus(t *testing.T) []hostileCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "hostile", "cases.json"))
	require.NoError(t, err)
	var cases []hostileCase
	require.NoError(t, json.Unmarshal(raw, &cases))
	names := map[string]bool{}
	for i := range cases {
		c := &cases[i]
		require.False(t, names[c.Name], "duplicate case %s", c.Name)
		names[c.Name] = true
		require.Contains(t, []string{"error", "skipped"}, c.Expect, c.Name)
		c.body, err = os.ReadFile(filepath.Join("testdata", "hostile", c.File))
		require.NoError(t, err, c.Name)
	}
	// Too big to commit: made here.
	order := `"orderId":"6f1c2b0e-4d3a-4e8b-9c5d-1a2b3c4d5e6f","basketId":"0b7e9a4c-2f1d-4c3b-8a9e-5d6c7b8a9f01","totalMoney":"1.00"`
	huge := []byte(`{` + order + `,"padding":"` + strings.Repeat("x", 10<<20) + `"}`)
	deep := []byte(`{` + order + `,"deep":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`)
	cases = append(cases,
		hostileCase{Name: "generated-10mb", ContentType: "application/json", MessageID: "hostile-generated-10mb",
			Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent", Expect: "error", Why: "a 10 MB body", body: huge},
		hostileCase{Name: "generated-nested-100k", ContentType: "application/json", MessageID: "hostile-generated-nested-100k",
			Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent", Expect: "error", Why: "100,000 nested arrays", body: deep},
	)
	require.GreaterOrEqual(t, len(cases), 40)
	return cases
}

// TestHostileInputIsParkedNeverAppended publishes the hostile corpus with
// good traffic interleaved: every bad message lands in the error or
// skipped queue with the reason, none becomes a fact, the consumer keeps
// going, and the good orders go through.
func TestHostileInputIsParkedNeverAppended(t *testing.T) {
	t.Parallel()
	cases := loadHostileCorpus(t)
	u := testenv.Vhost(t)
	dir := t.TempDir()
	in := startLedger(t, u, dir)
	require.NoError(t, harness.PrepareCapture(u))
	_, ch := testenv.Dial(t, u)
	require.NoError(t, ch.Confirm(false))

	// Exchanges that name no known type: bound to the ledger's queue here,
	// as a misconfigured sender's binding would be.
	known := map[string]bool{}
	for _, k := range rabbitmq.KnownTypes() {
		known[k] = true
	}
	for _, c := range cases {
		if c.Exchange != "" && !known[c.Exchange] {
			require.NoError(t, ch.ExchangeDeclare(c.Exchange, "fanout", true, false, false, false, nil))
			require.NoError(t, ch.QueueBind(harness.LedgerQueue, "", c.Exchange, false, nil))
		}
	}

	good := traffic.Plan(uint64(time.Now().UnixNano()), 12, []traffic.Scenario{traffic.Fulfilled})
	load := harness.Load{Orders: len(good), IDs: map[string]string{}, Scenario: map[string]traffic.Scenario{}}
	envs := []traffic.Envelope{traffic.MassTransit, traffic.CloudEvents, traffic.Bare}
	send := func(exchange string, p amqp.Publishing) {
		p.DeliveryMode = amqp.Persistent
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, "", false, false, p)
		require.NoError(t, err)
		require.True(t, dc.Wait(), "broker nacked %s", p.MessageId)
	}
	// Three rounds: step k of every good order, with a third of the corpus
	// spread between them.
	for step := 0; step < 3; step++ {
		part := cases[step*len(cases)/3 : (step+1)*len(cases)/3]
		for i, o := range good {
			id := traffic.MessageID(o.ID, step)
			w, err := traffic.Encode(o.Steps[step], envs[(i+step)%3], id, time.Now())
			require.NoError(t, err)
			load.IDs[id], load.Scenario[o.ID] = o.ID, o.Scenario
			send(w.Exchange, amqp.Publishing{ContentType: w.ContentType, Type: w.Type, MessageId: w.MessageID, Body: w.Body})
			for k := i; k < len(part); k += len(good) {
				c := part[k]
				send(c.Exchange, amqp.Publishing{ContentType: c.ContentType, Type: c.Type, MessageId: c.MessageID,
					Headers: amqp.Table{hostileHeader: c.Name}, Body: c.body})
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	load.Messages = len(load.IDs)
	require.NoError(t, harness.WaitQuiet(context.Background(), u, in.URL(), 90*time.Second), "logs:\n%s", in.Logs())

	wantErr, wantSkip := 0, 0
	for _, c := range cases {
		if c.Expect == "error" {
			wantErr++
		} else {
			wantSkip++
		}
	}
	vhost, err := testenv.VhostOf(u)
	require.NoError(t, err)
	errQ, skipQ := domain.ErrorQueue(harness.LedgerQueue), domain.SkippedQueue(harness.LedgerQueue)
	// Drained and staying drained: nothing requeued, nothing parked twice.
	for round := 0; round < 2; round++ {
		d, err := harness.QueueDepths(context.Background(), vhost)
		require.NoError(t, err)
		assert.Equal(t, [2]int{0, 1}, d[harness.LedgerQueue], "ledger queue: 0 messages, 1 consumer")
		assert.Equal(t, wantErr, d[errQ][0], "messages in %s", errQ)
		assert.Equal(t, wantSkip, d[skipQ][0], "messages in %s", skipQ)
		time.Sleep(2 * time.Second)
	}
	assert.True(t, in.Ready(context.Background()), "still ready")
	m, err := in.Metrics(context.Background())
	require.NoError(t, err)
	parkedMetric := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "ledger_messages_dead_lettered_total") {
			parkedMetric += v
		}
	}
	assert.Equal(t, float64(len(cases)), parkedMetric, "every hostile message counted as parked once")

	byName := map[string]hostileCase{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	seen := map[string]string{}
	for _, q := range []string{errQ, skipQ} {
		for _, d := range drainQueue(t, ch, q) {
			name, _ := d.Headers[hostileHeader].(string)
			c, ok := byName[name]
			if !assert.True(t, ok, "%s holds a message of no case: id %q type %q", q, d.MessageId, d.Type) {
				continue
			}
			assert.Empty(t, seen[name], "case %s parked twice", name)
			seen[name] = q
			want, mtReason := errQ, "fault"
			if c.Expect == "skipped" {
				want, mtReason = skipQ, "dead-letter"
			}
			assert.Equal(t, want, q, "case %s (%s) went to the wrong queue; reason %v: %v", name, c.Why, d.Headers[rabbitmq.HeaderLedgerReason], d.Headers[rabbitmq.HeaderLedgerDetail])
			assert.NotEmpty(t, d.Headers[rabbitmq.HeaderLedgerReason], "case %s: reason header", name)
			assert.NotEmpty(t, d.Headers[rabbitmq.HeaderLedgerDetail], "case %s: detail header", name)
			assert.Equal(t, mtReason, d.Headers[rabbitmq.HeaderReason], "case %s", name)
			assert.Equal(t, int64(1), d.Headers[rabbitmq.HeaderDeliveryCount], "case %s: parked on its first delivery", name)
			assert.Equal(t, sha256.Sum256(c.body), sha256.Sum256(d.Body), "case %s: the parked copy keeps the body", name)
			assert.Equal(t, c.ContentType, d.ContentType, "case %s: content type kept as sent (even none)", name)
			assert.Equal(t, c.MessageID, d.MessageId, "case %s: message id kept as sent (even none)", name)
		}
	}
	for _, c := range cases {
		assert.NotEmpty(t, seen[c.Name], "case %s (%s) was not parked", c.Name, c.Why)
	}

	// Nothing hostile became a fact; every good message did, and the good
	// orders' outbound messages all arrived.
	stopLedger(t, in)
	assert.NotContains(t, in.Logs(), "panic")
	rep, err := harness.Verify(context.Background(), u, dir, load)
	require.NoError(t, err)
	assert.Equal(t, 36, rep.FactsStored)
	assert.Zero(t, rep.LostFacts, "%v", rep.Problems)
	assert.Zero(t, rep.DuplicateFacts, "%v", rep.Problems)
	assert.Zero(t, rep.ForeignFacts, "hostile messages appended: %v", rep.Problems)
	assert.Zero(t, rep.Parked, "%v", rep.Problems)
	assert.Equal(t, 12*7, rep.OutboundExpected)
	assert.Equal(t, rep.OutboundExpected, rep.OutboundDelivered, "%v", rep.Problems)
	assert.Zero(t, rep.ChangedIDs, "%v", rep.Problems)
	assert.Zero(t, rep.ReplayChanges, "%v", rep.Problems)
	assert.Zero(t, rep.StatusDiffers)
}

// drainQueue takes every message out of q.
func drainQueue(t *testing.T, ch *amqp.Channel, q string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(q, true)
		require.NoError(t, err, "get from %s", q)
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// TestHostileCorpusIsWellFormed keeps the corpus honest: every body file is
// listed, every case names a file, and the corpus stays at 40 or more.
func TestHostileCorpusIsWellFormed(t *testing.T) {
	t.Parallel()
	cases := loadHostileCorpus(t)
	listed := map[string]bool{}
	for _, c := range cases {
		if c.File != "" {
			listed[c.File] = true
		}
		assert.NotEmpty(t, c.Why, "case %s says what is wrong with it", c.Name)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.body"))
	require.NoError(t, err)
	for _, f := range files {
		assert.True(t, listed[filepath.Base(f)], "%s is in no case", f)
	}
	assert.GreaterOrEqual(t, len(files), 40)
	for _, c := range cases {
		assert.True(t, len(c.body) > 0 || c.Name == "json-empty", "case %s has a body", c.Name)
	}
}
