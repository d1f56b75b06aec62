package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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
