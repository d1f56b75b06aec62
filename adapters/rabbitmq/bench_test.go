package rabbitmq_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// BenchmarkPublishConsume measures persistent, confirmed publishing plus
// manual-ack consumption of n MassTransit messages through the adapter
// (decode, batch handler, multiple acks) and through raw amqp091 with the
// same window and prefetch on the same kind of queue, in the same run, and
// prints the ratio.
func BenchmarkPublishConsume(b *testing.B) {
	const n = 10000
	e := newEnv(b, nil)
	body := mtBody(mtID, "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent", checkout)

	br, err := rabbitmq.New(e.cfg, zap.NewNop())
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(b, br.Connect(ctx))
	require.NoError(b, br.DeclareTopology(ctx))
	b.Cleanup(func() { _ = br.Close() })
	var got atomic.Int64
	done := make(chan struct{}, 1)
	go func() {
		_ = br.Consume(ctx, func(_ context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
			if got.Add(int64(len(msgs))) >= n {
				select {
				case done <- struct{}{}:
				default:
				}
			}
			return make([]rabbitmq.Verdict, len(msgs))
		})
	}()

	rawQueue := e.name("raw")
	_, err = e.ch.QueueDeclare(rawQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(b, err)
	b.Cleanup(func() { _, _ = e.ch.QueueDelete(rawQueue, false, false, false) })

	var adapterRate, rawRate float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Store(0)
		pubs := make([]rabbitmq.Publication, n)
		for k := range pubs {
			pubs[k] = rabbitmq.Publication{Exchange: e.inbound("UserCheckedOutIntegrationEvent"), MessageID: fmt.Sprintf("b%d-%d", i, k),
				ContentType: domain.ContentTypeMassTransit, Body: body}
		}
		start := time.Now()
		require.NoError(b, br.Publish(ctx, pubs))
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("adapter consumed %d of %d", got.Load(), n)
		}
		adapterRate = n / time.Since(start).Seconds()

		start = time.Now()
		rawRun(b, rawQueue, body, n, e.cfg.WithDefaults())
		rawRate = n / time.Since(start).Seconds()
	}
	b.StopTimer()
	b.ReportMetric(adapterRate, "adapter-msg/s")
	b.ReportMetric(rawRate, "raw-msg/s")
	b.ReportMetric(adapterRate/rawRate, "ratio")
	fmt.Printf("publish+consume %d msgs: adapter %.0f msg/s, raw amqp091 %.0f msg/s, ratio %.2f\n", n, adapterRate, rawRate, adapterRate/rawRate)
}

// rawRun is the baseline: one confirm channel with the same window, one
// consumer with the same prefetch acking every 128 (multiple).
func rawRun(b *testing.B, queue string, body []byte, n int, cfg rabbitmq.Config) {
	conn, err := amqp.Dial(cfg.URL)
	require.NoError(b, err)
	defer conn.Close()
	cch, err := conn.Channel()
	require.NoError(b, err)
	require.NoError(b, cch.Qos(cfg.Prefetch, 0, false))
	deliveries, err := cch.Consume(queue, "", false, false, false, false, nil)
	require.NoError(b, err)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		count := 0
		for d := range deliveries {
			count++
			if count%cfg.BatchSize == 0 || count == n {
				_ = d.Ack(true)
			}
			if count == n {
				return
			}
		}
	}()

	pch, err := conn.Channel()
	require.NoError(b, err)
	require.NoError(b, pch.Confirm(false))
	window := make(chan *amqp.DeferredConfirmation, cfg.ConfirmWindow)
	confirmed := make(chan struct{})
	go func() {
		defer close(confirmed)
		for dc := range window {
			if !dc.Wait() {
				b.Error("raw publish nacked")
			}
		}
	}()
	for k := 0; k < n; k++ {
		dc, err := pch.PublishWithDeferredConfirm("", queue, true, false, amqp.Publishing{
			ContentType: domain.ContentTypeMassTransit, DeliveryMode: amqp.Persistent, MessageId: fmt.Sprintf("raw-%d", k), Body: body})
		require.NoError(b, err)
		window <- dc
	}
	close(window)
	<-confirmed
	select {
	case <-consumed:
	case <-time.After(2 * time.Minute):
		b.Fatal("raw consumer timed out")
	}
}
