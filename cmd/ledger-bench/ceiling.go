package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// ceilingResult is the broker's own throughput through one queue type.
type ceilingResult struct {
	queueType          string
	published, acked   float64 // msg/s over the window: confirmed publishes, consumed+acked deliveries
	rate               float64 // min of the two: messages through the broker and out
	backlog            int     // published but not consumed when the window closed
	nacked, returned   int64
	avgBytes, minBytes int
	maxBytes           int
}

// sampleBodies are real inbound envelopes (MassTransit, as the ledger's
// inbound facts) to publish in the ceiling run.
func sampleBodies() ([]traffic.Wire, error) {
	var out []traffic.Wire
	for _, o := range traffic.Plan(42, 200, []traffic.Scenario{traffic.Fulfilled}) {
		for i, s := range o.Steps {
			w, err := traffic.Encode(s, traffic.MassTransit, traffic.MessageID(o.ID, i), time.Now())
			if err != nil {
				return nil, fmt.Errorf("encode sample: %w", err)
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// brokerCeiling publishes MassTransit-sized persistent messages through a
// durable fanout exchange into one durable queue, confirms pipelined, and
// consumes them with manual acks, for warmup+dur; it reports the rate over
// dur.
func brokerCeiling(ctx context.Context, o options, url, queueType string) (ceilingResult, error) {
	res := ceilingResult{queueType: queueType}
	wires, err := sampleBodies()
	if err != nil {
		return res, err
	}
	total := 0
	res.minBytes = 1 << 30
	for _, w := range wires {
		total += len(w.Body)
		res.minBytes = min(res.minBytes, len(w.Body))
		res.maxBytes = max(res.maxBytes, len(w.Body))
	}
	res.avgBytes = total / len(wires)

	name := "bench.ceiling." + queueType
	setup, err := amqp.Dial(url)
	if err != nil {
		return res, fmt.Errorf("dial: %w", err)
	}
	defer setup.Close()
	sch, err := setup.Channel()
	if err != nil {
		return res, err
	}
	if err := sch.ExchangeDeclare(name, "fanout", true, false, false, false, nil); err != nil {
		return res, fmt.Errorf("declare exchange %s: %w", name, err)
	}
	if _, err := sch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": queueType}); err != nil {
		return res, fmt.Errorf("declare queue %s: %w", name, err)
	}
	if err := sch.QueueBind(name, "", name, false, nil); err != nil {
		return res, fmt.Errorf("bind %s: %w", name, err)
	}
	defer func() {
		_, _ = sch.QueueDelete(name, false, false, false)
		_ = sch.ExchangeDelete(name, false, false)
	}()

	pub, err := newConfirmPublisher(url, o.ceilingWindow)
	if err != nil {
		return res, err
	}
	defer pub.close()
	cconn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "ledger-bench consumer"}})
	if err != nil {
		return res, fmt.Errorf("dial consumer: %w", err)
	}
	defer cconn.Close()
	var acked atomic.Int64
	stopConsumer, err := batchConsume(cconn, name, 512, func(*amqp.Delivery) { acked.Add(1) })
	if err != nil {
		return res, err
	}

	pctx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	go func() {
		var err error
		for i := 0; pctx.Err() == nil; i++ {
			w := wires[i%len(wires)]
			err = pub.publish(pctx, name, "", amqp.Publishing{
				ContentType: domain.ContentTypeMassTransit, MessageId: strconv.Itoa(i), Body: w.Body,
			})
			if err != nil {
				break
			}
		}
		if pctx.Err() != nil {
			err = nil
		}
		pubDone <- err
	}()

	warmup := min(2*time.Second, o.ceilingDur/4)
	o.progress("ceiling %s: warming up %s", queueType, warmup)
	if err := testenv.Sleep(ctx, warmup); err != nil {
		stopPub()
		return res, err
	}
	p0, a0, t0 := pub.confirmed.Load(), acked.Load(), time.Now()
	if err := testenv.Sleep(ctx, o.ceilingDur); err != nil {
		stopPub()
		return res, err
	}
	p1, a1, t1 := pub.confirmed.Load(), acked.Load(), time.Now()
	stopPub()
	if err := <-pubDone; err != nil {
		return res, err
	}
	res.published = rate(float64(p1-p0), t1.Sub(t0))
	res.acked = rate(float64(a1-a0), t1.Sub(t0))
	res.rate = min(res.published, res.acked)
	res.backlog = int(p1 - a1)
	// Let the consumer drain before the queue goes, so the next run starts
	// from an idle broker.
	deadline := time.Now().Add(20 * time.Second)
	for acked.Load() < pub.confirmed.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res.nacked, res.returned = pub.nacked.Load(), pub.returned.Load()
	if err := stopConsumer(); err != nil {
		return res, err
	}
	o.progress("ceiling %s: %.0f published/s, %.0f acked/s", queueType, res.published, res.acked)
	return res, nil
}

// floorResult is the broker's own two-hop round trip at a paced rate: the
// latency floor under the ledger's fact -> command latency.
type floorResult struct {
	rate          float64 // achieved paced inbound rate
	n             int
	p50, p99, max time.Duration
	relayed       int64 // inbound deliveries the relay republished
}

// floorSentHeader carries a floor message's scheduled publish time (unix
// nanoseconds) through both hops.
const floorSentHeader = "x-bench-sent"

// floorTopology is the floor's two hops, each a durable fanout exchange
// with its durable queue(s): the ledger's inbound queue type in, classic
// queues out as the ledger's consumer queues are. Each fact in gives two
// messages out (the ledger publishes an AccelByte event and a command per
// fact); only the command queue is timed.
var floorTopology = []struct{ exchange, queue, queueType string }{
	{"bench.floor.in", "bench.floor.in", rabbitmq.QueueQuorum},
	{"bench.floor.cmd", "bench.floor.cmd", rabbitmq.QueueClassic},
	{"bench.floor.evt", "bench.floor.evt", rabbitmq.QueueClassic},
}

// brokerFloor measures publish -> consume -> publish -> consume through
// the broker with nothing in between: a relay consumes the inbound queue
// (prefetch and multiple acks as the ledger) and republishes every
// delivery, persistent and confirmed, to the two outbound exchanges; a
// sink consumes the commands. Messages are paced at rate for dur, each
// stamped with its scheduled time, and timed as the ledger's latency run
// times facts: from that time to the sink, the first quarter (at most 2s)
// not sampled.
func brokerFloor(ctx context.Context, o options, url string, perSec float64, dur time.Duration) (floorResult, error) {
	var res floorResult
	wires, err := sampleBodies()
	if err != nil {
		return res, err
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "ledger-bench floor"}})
	if err != nil {
		return res, fmt.Errorf("dial floor: %w", err)
	}
	defer conn.Close()
	if err := declareFloor(conn); err != nil {
		return res, err
	}
	relay, err := newConfirmPublisher(url, o.ceilingWindow)
	if err != nil {
		return res, err
	}
	defer relay.close()
	var relayed atomic.Int64
	stopRelay, err := batchConsume(conn, floorTopology[0].queue, 512, func(d *amqp.Delivery) {
		for _, t := range floorTopology[1:] {
			msg := amqp.Publishing{ContentType: d.ContentType, MessageId: d.MessageId, Type: d.Type, Headers: d.Headers, Body: d.Body}
			if relay.publish(ctx, t.exchange, "", msg) != nil {
				return
			}
		}
		relayed.Add(1)
	})
	if err != nil {
		return res, err
	}
	defer func() { _ = stopRelay() }()
	warm := min(2*time.Second, dur/4)
	start := time.Now()
	from := start.Add(warm)
	var mu sync.Mutex
	var lat []time.Duration
	var got atomic.Int64
	stopSink, err := batchConsume(conn, floorTopology[1].queue, 512, func(d *amqp.Delivery) {
		got.Add(1)
		ns, _ := d.Headers[floorSentHeader].(int64)
		sent := time.Unix(0, ns)
		if sent.Before(from) {
			return
		}
		mu.Lock()
		lat = append(lat, time.Since(sent))
		mu.Unlock()
	})
	if err != nil {
		return res, err
	}
	defer func() { _ = stopSink() }()
	drain, err := batchConsume(conn, floorTopology[2].queue, 512, func(*amqp.Delivery) {})
	if err != nil {
		return res, err
	}
	defer func() { _ = drain() }()

	src, err := newConfirmPublisher(url, o.ceilingWindow)
	if err != nil {
		return res, err
	}
	defer src.close()
	interval := time.Duration(float64(time.Second) / perSec)
	o.progress("floor: %.0f msg/s for %s", perSec, dur)
	sent := 0
	for time.Since(start) < dur {
		due := int(time.Since(start) / interval)
		for ; sent <= due; sent++ {
			at := start.Add(time.Duration(sent) * interval)
			w := wires[sent%len(wires)]
			msg := amqp.Publishing{ContentType: w.ContentType, MessageId: strconv.Itoa(sent), Type: w.Type, Body: w.Body,
				Headers: amqp.Table{floorSentHeader: at.UnixNano()}}
			if err := src.publish(ctx, floorTopology[0].exchange, "", msg); err != nil {
				return res, err
			}
		}
		if err := testenv.Sleep(ctx, 200*time.Microsecond); err != nil {
			return res, err
		}
	}
	res.rate = rate(float64(sent), time.Since(start))
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < int64(sent) && time.Now().Before(deadline) {
		if err := testenv.Sleep(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
	}
	if n := got.Load(); n < int64(sent) {
		return res, fmt.Errorf("floor: %d of %d messages arrived", n, sent)
	}
	res.relayed = relayed.Load()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	if res.n = len(lat); res.n > 0 {
		res.p50, res.p99, res.max = pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1]
	}
	return res, nil
}

// declareFloor declares the floor's exchanges and queues afresh.
func declareFloor(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, t := range floorTopology {
		if _, err := ch.QueueDelete(t.queue, false, false, false); err != nil {
			return fmt.Errorf("delete old %s: %w", t.queue, err)
		}
		if err := ch.ExchangeDeclare(t.exchange, "fanout", true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", t.exchange, err)
		}
		if _, err := ch.QueueDeclare(t.queue, true, false, false, false, amqp.Table{"x-queue-type": t.queueType}); err != nil {
			return fmt.Errorf("declare queue %s: %w", t.queue, err)
		}
		if err := ch.QueueBind(t.queue, "", t.exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s: %w", t.queue, err)
		}
	}
	return nil
}
