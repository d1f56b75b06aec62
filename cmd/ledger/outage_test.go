package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// queueDepth is the ready messages of a queue in the vhost of amqpURL.
func queueDepth(t *testing.T, amqpURL, queue string) int {
	t.Helper()
	_, ch := testenv.Dial(t, amqpURL)
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(t, err)
	return q.Messages
}

// wires encodes every step of orders, keyed by message id.
func wires(t *testing.T, orders []traffic.Order, steps func(o traffic.Order) []int) ([]traffic.Wire, map[string]string) {
	t.Helper()
	var out []traffic.Wire
	ids := map[string]string{} // message id -> order id
	for _, o := range orders {
		for _, i := range steps(o) {
			id := traffic.MessageID(o.ID, i)
			w, err := traffic.Encode(o.Steps[i], traffic.MassTransit, id, time.Now())
			require.NoError(t, err)
			out = append(out, w)
			ids[id] = o.ID
		}
	}
	return out, ids
}

// storedOnce reports which of the messages (id -> order) are not stored
// exactly once in their order's stream.
func storedOnce(ctx context.Context, l domain.EventLog, msgs map[string]string) ([]string, error) {
	byOrder := map[string][]string{}
	for id, order := range msgs {
		byOrder[order] = append(byOrder[order], id)
	}
	var wrong []string
	for order, ids := range byOrder {
		evs, err := l.ReadStream(ctx, domain.StreamName(order), 0, domain.Forwards, 0)
		if err != nil && !strings.Contains(err.Error(), domain.ErrStreamNotFound.Error()) {
			return nil, err
		}
		n := map[string]int{}
		for _, e := range evs {
			n[e.ID]++
		}
		for _, id := range ids {
			if c := n[domain.FactEventID(id)]; c != 1 {
				wrong = append(wrong, fmt.Sprintf("%s stored %d times", id, c))
			}
		}
	}
	return wrong, nil
}

// An EventStoreDB outage longer than the delivery limit × the retry delay
// would allow: ingest pauses (it says so), nothing reaches _error, and once
// the server is back on the same address with the same data every message
// is stored exactly once, with no operator action.
func TestStoreOutagePausesIngestEventStoreDB(t *testing.T) {
	t.Parallel()
	srv := esdbtest.MustStart(t)
	u := testenv.Vhost(t)
	in := startLedger(t, u, t.TempDir(), "LEDGER_STORE=esdb", "LEDGER_ESDB_URL="+srv.ConnectionString(),
		"LEDGER_AMQP_DELIVERY_LIMIT=2", "LEDGER_RULES_PLACEMENT_TIMEOUT=1h")
	ctx := context.Background()
	l, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: srv.ConnectionString()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	orders := traffic.Plan(31, 12, []traffic.Scenario{traffic.Fulfilled})
	first, firstIDs := wires(t, orders, func(traffic.Order) []int { return []int{0} })
	publish(t, u, first...)
	require.Eventually(t, func() bool { w, err := storedOnce(ctx, l, firstIDs); return err == nil && len(w) == 0 },
		30*time.Second, 100*time.Millisecond)

	srv.Stop()
	down := time.Now()
	rest, restIDs := wires(t, orders, func(o traffic.Order) []int {
		var s []int
		for i := 1; i < len(o.Steps); i++ {
			s = append(s, i)
		}
		return s
	})
	publish(t, u, rest...)
	require.Eventually(t, func() bool { return strings.Contains(in.Logs(), "ingest paused") }, 30*time.Second, 100*time.Millisecond,
		"logs:\n%s", in.LogTail(40))
	// Two deliveries with a 1 s retry delay would have dead-lettered them
	// within seconds; stay down far longer.
	time.Sleep(12*time.Second - time.Since(down))
	assert.Equal(t, 0, queueDepth(t, u, domain.ErrorQueue(domain.DefaultQueue)), "nothing dead-lettered during the outage")
	require.NoError(t, in.Alive(), "logs:\n%s", in.Logs())

	require.NoError(t, srv.Restart())
	var wrong []string
	require.Eventually(t, func() bool {
		wrong, err = storedOnce(ctx, l, restIDs)
		return err == nil && len(wrong) == 0
	}, 90*time.Second, 250*time.Millisecond, "after the outage: %v\nlogs:\n%s", wrong, in.Logs())
	wrong, err = storedOnce(ctx, l, firstIDs)
	require.NoError(t, err)
	assert.Empty(t, wrong)
	require.Eventually(t, func() bool { return strings.Contains(in.Logs(), "ingest resumed") }, 10*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return queueDepth(t, u, domain.DefaultQueue) == 0 }, 10*time.Second, 100*time.Millisecond)
	assert.Equal(t, 0, queueDepth(t, u, domain.ErrorQueue(domain.DefaultQueue)), "_error is empty")
}

// Each failure class at the consume stage, through the real broker, the
// ingest handler and the EventStoreDB adapter: invalid input and a deleted
// stream are dead-lettered at once (with their reason) and never
// appended; every other order goes on.
func TestConsumeClassifiesEachFailureClass(t *testing.T) {
	t.Parallel()
	srv := esdbtest.MustStart(t)
	u := testenv.Vhost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: srv.ConnectionString()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	b, err := rabbitmq.New(rabbitmq.Config{URL: u, DeliveryLimit: 2, RetryDelay: 10 * time.Millisecond, RetryDelayMax: 50 * time.Millisecond}, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.Connect(ctx))
	require.NoError(t, b.DeclareTopology(ctx))

	orders := traffic.Plan(41, 3, []traffic.Scenario{traffic.Fulfilled})
	good, goodIDs := wires(t, orders[:1], func(traffic.Order) []int { return []int{0} })
	deleted, _ := wires(t, orders[1:2], func(traffic.Order) []int { return []int{0} })
	invalid, _ := wires(t, orders[2:3], func(traffic.Order) []int { return []int{0} })
	invalid[0].Body = []byte(strings.Replace(string(invalid[0].Body), `"totalMoney":`, `"totalMoney":"-1","x":`, 1))
	malformed := traffic.Wire{Exchange: good[0].Exchange, ContentType: good[0].ContentType, MessageID: "malformed", Body: []byte(`{"message":`)}

	// The next append (the deleted order's, published first) is refused
	// as a real server refuses an append to a tombstoned stream.
	srv.FailNext("Append", codes.FailedPrecondition, "stream deleted", "exception", "stream-deleted",
		"stream-name", domain.StreamName(orders[1].ID))
	publish(t, u, deleted[0])
	in := &ingest.Ingester{Log: l, Currency: domain.DefaultCurrency(), Parallel: 1}
	cctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(cctx, rabbitmq.IngestHandler(in)) }()
	t.Cleanup(func() { stop(); <-done })
	time.Sleep(200 * time.Millisecond)
	publish(t, u, invalid[0], malformed, good[0])

	wantReasons := map[string]string{
		deleted[0].MessageID: ingest.ReasonStreamDeleted,
		invalid[0].MessageID: ingest.ReasonInvalidMessage,
		"malformed":          rabbitmq.ReasonMalformed,
	}
	_, ch := testenv.Dial(t, u)
	got := map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(wantReasons) && time.Now().Before(deadline) {
		d, ok, err := ch.Get(domain.ErrorQueue(domain.DefaultQueue), true)
		require.NoError(t, err)
		if !ok {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		got[d.MessageId] = fmt.Sprint(d.Headers[rabbitmq.HeaderLedgerReason])
	}
	assert.Equal(t, wantReasons, got, "each dead-lettered at once, with its reason")
	require.Eventually(t, func() bool { w, err := storedOnce(ctx, l, goodIDs); return err == nil && len(w) == 0 },
		20*time.Second, 50*time.Millisecond, "the good order is stored")
	for _, o := range orders[1:] {
		_, err := l.ReadStream(ctx, domain.StreamName(o.ID), 0, domain.Forwards, 0)
		assert.ErrorIs(t, err, domain.ErrStreamNotFound, "nothing of %s appended", o.ID)
	}
	_, _, paused := b.Paused()
	assert.False(t, paused)
	assert.Equal(t, 0, queueDepth(t, u, domain.DefaultQueue))
}

// A full disk under the embedded store (here the file-size limit of the
// running service, lowered under the size its files have): commits fail with
// EFBIG, ingest pauses instead of dead-lettering, the service stays up,
// and once space is back (the limit raised) consumption resumes by itself.
// Nothing acknowledged is lost: after a restart every order is there.
func TestDiskFullPausesIngestEmbedded(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	u := testenv.Vhost(t)
	dir := t.TempDir()
	in := startLedger(t, u, dir, "LEDGER_AMQP_DELIVERY_LIMIT=2", "LEDGER_RULES_PLACEMENT_TIMEOUT=1h")

	plan := traffic.Plan(51, 3000, []traffic.Scenario{traffic.Fulfilled})
	all, _ := wires(t, plan, func(traffic.Order) []int { return []int{0} })
	publish(t, u, all[:20]...)
	require.Eventually(t, func() bool { return getJSON(t, in, "/api/orders/"+plan[19].ID, nil) == 200 }, 30*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second) // let the projections settle on disk

	// bbolt grows its file 16 MiB ahead, so the limit is set below the
	// file's size: writes past the pages in use (new pages) fail with
	// EFBIG, as on a full disk, while the pages already in use stay
	// readable and writable.
	const limit = 1 << 20
	pid := strconv.Itoa(in.PID())
	out, err := exec.Command("prlimit", "--pid", pid, fmt.Sprintf("--fsize=%d:unlimited", limit)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	raised := false
	t.Cleanup(func() {
		if !raised {
			_ = exec.Command("prlimit", "--pid", pid, "--fsize=unlimited:unlimited").Run()
		}
	})

	sent := 20
	for sent < len(all) && !strings.Contains(in.Logs(), "ingest paused") {
		next := min(sent+250, len(all))
		publish(t, u, all[sent:next]...)
		sent = next
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(in.Logs(), "ingest paused") {
		lim, _ := exec.Command("prlimit", "--pid", pid, "--fsize").CombinedOutput()
		_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				t.Logf("%s %d", p, fi.Size())
			}
			return nil
		})
		t.Fatalf("the disk did not fill up with %d orders (limit %s); logs:\n%s", sent, lim, in.LogTail(30))
	}
	time.Sleep(3 * time.Second) // longer than 2 deliveries × the retry delay
	require.NoError(t, in.Alive(), "SIGXFSZ ignored: the write fails, the process lives")
	assert.Equal(t, 0, queueDepth(t, u, domain.ErrorQueue(domain.DefaultQueue)), "nothing dead-lettered while the disk is full")

	out, err = exec.Command("prlimit", "--pid", pid, "--fsize=unlimited:unlimited").CombinedOutput()
	require.NoError(t, err, "%s", out)
	raised = true
	require.Eventually(t, func() bool { return queueDepth(t, u, domain.DefaultQueue) == 0 }, 60*time.Second, 200*time.Millisecond,
		"consumption resumes; logs:\n%s", in.LogTail(40))
	require.Eventually(t, func() bool { return strings.Contains(in.Logs(), "ingest resumed") }, 30*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return getJSON(t, in, "/api/orders/"+plan[sent-1].ID, nil) == 200 }, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, 0, queueDepth(t, u, domain.ErrorQueue(domain.DefaultQueue)))

	stopLedger(t, in)
	restartLedger(t, in)
	var missing []string
	for _, o := range plan[:sent] {
		if getJSON(t, in, "/api/orders/"+o.ID, nil) != 200 {
			missing = append(missing, o.ID)
		}
	}
	assert.Empty(t, missing, "every acknowledged order survives the restart")
}
