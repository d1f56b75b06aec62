package harness

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
	"github.com/bookworm-ledger/ledger/projections"
)

// Names the ledger uses with its default configuration.
const (
	LedgerQueue = domain.DefaultQueue
	// CaptureQueue is the durable queue the harness binds to the AccelByte
	// exchange: it outlives connection losses and broker restarts, where
	// an exclusive capture queue would lose what arrived meanwhile.
	CaptureQueue = "chaos-capture-orderProcessing"
)

// OutboundQueues maps every queue that receives the ledger's outbound
// messages to the exchange feeding it: the BookWorm consumer queues the
// ledger declares, and CaptureQueue.
func OutboundQueues() map[string]string {
	m := map[string]string{CaptureQueue: domain.AccelByteExchange}
	for _, q := range rabbitmq.DefaultConsumerQueues() {
		m[q.Queue] = q.Exchange
	}
	return m
}

// PrepareCapture declares CaptureQueue, bound to every AccelByte event. The
// ledger must have declared its topology first.
func PrepareCapture(amqpURL string) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if _, err := ch.QueueDeclare(CaptureQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare %s: %w", CaptureQueue, err)
	}
	if err := ch.QueueBind(CaptureQueue, "#", domain.AccelByteExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", CaptureQueue, err)
	}
	return nil
}

// QueueDepths returns, per queue of the vhost, ready plus unacked messages
// and consumers (rabbitmqctl, so unacked deliveries are counted too).
func QueueDepths(ctx context.Context, vhost string) (map[string][2]int, error) {
	out, err := testenv.Ctl(ctx, "list_queues", "-p", vhost, "--no-table-headers", "name", "messages", "consumers")
	if err != nil {
		return nil, err
	}
	m := map[string][2]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		msgs, err1 := strconv.Atoi(f[1])
		cons, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		m[f[0]] = [2]int{msgs, cons}
	}
	return m, nil
}

// ReadyCount is the ready (not unacked) messages of queue, by a passive
// declare.
func ReadyCount(amqpURL, queue string) (int, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", queue, err)
	}
	return q.Messages, nil
}

// WaitQuiet waits until the ledger has consumed everything and both
// projections have caught up with the log: its queue holds nothing (ready
// or unacked), the consumed counter stood still across a few scrapes and
// the projections' lag is 0.
func WaitQuiet(ctx context.Context, amqpURL, base string, timeout time.Duration) error {
	vhost, err := testenv.VhostOf(amqpURL)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	lagRM := fmt.Sprintf("ledger_projection_lag{projection=%q}", projections.ReadModelName)
	lagLC := fmt.Sprintf("ledger_projection_lag{projection=%q}", projections.LifecycleName)
	const consumed = "ledger_messages_consumed_total"
	last, still := -1.0, 0
	var why string
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("ledger not quiet after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(1500 * time.Millisecond):
		}
		ready, err := ReadyCount(amqpURL, LedgerQueue)
		if err != nil {
			why = err.Error()
			still = 0
			continue
		}
		m, err := testenv.Metrics(ctx, base)
		if err != nil {
			why = err.Error()
			still = 0
			continue
		}
		c := m[consumed]
		if ready > 0 || c != last {
			why = fmt.Sprintf("%d ready, consumed %v", ready, c)
			last, still = c, 0
			continue
		}
		still++
		lr, okR := m[lagRM]
		ll, okL := m[lagLC]
		if !okR || !okL || lr != 0 || ll != 0 {
			why = fmt.Sprintf("projection lag: read model %v, lifecycle %v", lr, ll)
			continue
		}
		if still < 3 {
			continue
		}
		// The counters say done; the broker confirms nothing is unacked.
		d, err := QueueDepths(ctx, vhost)
		if err != nil {
			why = err.Error()
			continue
		}
		if n := d[LedgerQueue][0]; n != 0 {
			why = fmt.Sprintf("%d messages still in %s", n, LedgerQueue)
			still = 0
			continue
		}
		return nil
	}
}
