package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// stepCommand is the BookWorm command each step of a Fulfilled order
// causes: checkout, basket deleted, completed.
var stepCommand = [3]string{"PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand"}

// copies is how many of the ledger's declared consumer queues receive each
// command (PlaceOrderCommand goes to basket and notification).
func commandCopies() map[string]int {
	m := map[string]int{}
	for _, q := range rabbitmq.DefaultConsumerQueues() {
		m[q.Exchange[len(domain.NamespaceBookWorm)+1:]]++
	}
	return m
}

type pendKey struct{ order, command string }

type latSample struct {
	at  time.Time
	d   time.Duration
	cmd string
}

// tracker pairs each inbound fact with the BookWorm command it causes and
// counts everything the ledger publishes.
type tracker struct {
	mu         sync.Mutex
	pending    map[pendKey]time.Time
	recordFrom time.Time
	recordTo   time.Time
	lat        []latSample

	inflight atomic.Int64
	freed    chan struct{}

	completed atomic.Int64             // facts whose command arrived
	accel     atomic.Int64             // AccelByte events received
	commands  map[string]*atomic.Int64 // command deliveries by name (all copies)
	unmatched atomic.Int64             // command deliveries of unknown name
	copies    map[string]int           // consumer queues per command
}

func newTracker() *tracker {
	t := &tracker{pending: map[pendKey]time.Time{}, freed: make(chan struct{}, 1), commands: map[string]*atomic.Int64{}, copies: commandCopies()}
	for _, c := range domain.Commands() {
		t.commands[c] = new(atomic.Int64)
	}
	return t
}

func (t *tracker) add(order, command string, at time.Time) {
	t.mu.Lock()
	t.pending[pendKey{order, command}] = at
	t.mu.Unlock()
	t.inflight.Add(1)
}

// forget undoes add for a fact whose publish failed.
func (t *tracker) forget(order, command string) {
	t.mu.Lock()
	delete(t.pending, pendKey{order, command})
	t.mu.Unlock()
	t.inflight.Add(-1)
}

func (t *tracker) command(d *amqp.Delivery, now time.Time) {
	c, ok := t.commands[d.Type]
	if !ok {
		t.unmatched.Add(1)
		return
	}
	c.Add(1)
	order, _ := d.Headers["x-ledger-order-id"].(string)
	k := pendKey{order, d.Type}
	t.mu.Lock()
	at, ok := t.pending[k]
	if ok {
		delete(t.pending, k)
		if !t.recordFrom.IsZero() && !at.Before(t.recordFrom) && at.Before(t.recordTo) {
			t.lat = append(t.lat, latSample{at: at, d: now.Sub(at), cmd: d.Type})
		}
	}
	t.mu.Unlock()
	if ok { // the first copy completes the fact
		t.completed.Add(1)
		t.inflight.Add(-1)
		select {
		case t.freed <- struct{}{}:
		default:
		}
	}
}

// waitBelow blocks until fewer than limit facts are in flight.
func (t *tracker) waitBelow(ctx context.Context, limit int64) error {
	for t.inflight.Load() >= limit {
		select {
		case <-t.freed:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func (t *tracker) record(from, to time.Time) {
	t.mu.Lock()
	t.recordFrom, t.recordTo = from, to
	t.mu.Unlock()
}

// samples returns a copy of the latency samples recorded so far.
func (t *tracker) samples() []latSample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lat)
}

// outbound is the number of messages the ledger published, as seen: each
// AccelByte event once, each command once whatever its copies.
func (t *tracker) outbound() float64 {
	n := float64(t.accel.Load())
	for name, c := range t.commands {
		if k := t.copies[name]; k > 0 {
			n += float64(c.Load()) / float64(k)
		}
	}
	return n
}

func (t *tracker) deliveries() int64 {
	n := t.accel.Load()
	for _, c := range t.commands {
		n += c.Load()
	}
	return n
}

type snapshot struct {
	at                 time.Time
	completed          int64
	outbound           float64
	deliveries         int64
	published, pending int64
}

func (t *tracker) snap(pub *confirmPublisher) snapshot {
	return snapshot{at: time.Now(), completed: t.completed.Load(), outbound: t.outbound(), deliveries: t.deliveries(),
		published: pub.confirmed.Load(), pending: t.inflight.Load()}
}

// sequencer interleaves orders as a shop does: in each round it sends the
// checkout of a new block of orders, the basket deletion of the previous
// block and the completion of the one before, so an order's three facts
// are spread over the log (about 2×block orders apart).
type sequencer struct {
	seed      uint64
	block     int
	blocks    [3][]traffic.Order // [0]: checkout, [1]: basket deleted, [2]: completed
	round     int
	i, sub    int
	noNew     bool
	published [3]int64
	again     []pendingStep // not sent after all: next returns them first
}

type pendingStep struct {
	ord  traffic.Order
	step int
}

func newSequencer(seed uint64, block int) *sequencer {
	s := &sequencer{seed: seed, block: block}
	s.blocks[0] = traffic.Plan(seed, block, []traffic.Scenario{traffic.Fulfilled})
	return s
}

// next returns the next (order, step); ok is false when a flush is done.
func (s *sequencer) next() (traffic.Order, int, bool) {
	if n := len(s.again); n > 0 {
		p := s.again[n-1]
		s.again = s.again[:n-1]
		s.published[p.step]++
		return p.ord, p.step, true
	}
	for {
		if s.blocks[0] == nil && s.blocks[1] == nil && s.blocks[2] == nil {
			return traffic.Order{}, 0, false
		}
		if s.i >= s.block {
			s.round++
			s.i, s.sub = 0, 0
			s.blocks[2], s.blocks[1], s.blocks[0] = s.blocks[1], s.blocks[0], nil
			if !s.noNew {
				s.blocks[0] = traffic.Plan(s.seed+uint64(s.round), s.block, []traffic.Scenario{traffic.Fulfilled})
			}
			continue
		}
		i, step := s.i, s.sub
		if s.sub++; s.sub == 3 {
			s.sub = 0
			s.i++
		}
		if b := s.blocks[step]; b != nil {
			s.published[step]++
			return b[i], step, true
		}
	}
}

// unread gives back a step that was not sent: an order's later steps must
// not go out without it.
func (s *sequencer) unread(ord traffic.Order, step int) {
	s.published[step]--
	s.again = append(s.again, pendingStep{ord, step})
}

// flush stops new orders: the rest of the sequence finishes the open ones.
func (s *sequencer) flush() { s.noNew = true }

// e2eResult is what the ledger run measured.
type e2eResult struct {
	inbound, outbound, deliveries  float64 // msg/s in the throughput window
	halfRate                       float64
	latN                           int
	p50, p99, max                  time.Duration
	latInbound                     float64 // achieved paced rate
	vmHWM, vmRSS, rssAnon, rssFile int64   // kB
	orders, facts                  int64
	verifyErr                      error
	deadLettered, returned         float64
	retries                        float64
	warn, errs                     int
	confirm                        histogram // the ledger's outbound publish->confirm times in the latency run
	where                          string    // where the in-flight facts were at the end of the throughput window
}

// whereIsTheBacklog says where the facts in flight wait: unconfirmed by
// the broker, in the ledger's inbound queue (ready: the consumer is the
// bottleneck; unacked: prefetched, being appended), behind a projection
// (its lag), or in the outbound queues (downstream). The queue figures
// are the broker's own (rabbitmqctl list_queues).
func (e *e2eRun) whereIsTheBacklog(ctx context.Context) string {
	parts := []string{fmt.Sprintf("%d facts in flight, %d of them unconfirmed by the broker", e.tr.inflight.Load(), e.pub.unconfirmed())}
	out, err := testenv.Ctl(ctx, "list_queues", "-p", e.vhost, "name", "messages_ready", "messages_unacknowledged")
	if err != nil {
		parts = append(parts, "queues unknown: "+err.Error())
	}
	var downReady, downUnacked int
	for _, l := range strings.Split(out, "\n") {
		var name string
		var ready, unacked int
		if n, _ := fmt.Sscan(l, &name, &ready, &unacked); n != 3 {
			continue
		}
		if name == domain.DefaultQueue {
			parts = append(parts, fmt.Sprintf("inbound queue %d ready + %d unacked", ready, unacked))
			continue
		}
		downReady, downUnacked = downReady+ready, downUnacked+unacked
	}
	for _, name := range []string{"lifecycle", "readmodel"} {
		if v, err := metricLabel(ctx, e.lp, "ledger_projection_lag", name); err == nil {
			parts = append(parts, fmt.Sprintf("%s lag %.0f events", name, v))
		}
	}
	parts = append(parts, fmt.Sprintf("outbound queues %d ready + %d unacked", downReady, downUnacked))
	return strings.Join(parts, ", ")
}

// e2eRun is one end-to-end run: the service under test, the bench's
// downstream consumers and inbound publisher, and the order sequence.
type e2eRun struct {
	o     options
	lp    *testenv.Serve
	vhost string
	sch   *amqp.Channel // downstream channel
	tr    *tracker
	pub   *confirmPublisher
	seq   *sequencer
}

func benchLedger(ctx context.Context, o options, r *report) (res e2eResult, err error) {
	dir, err := os.MkdirTemp("", "ledger-bench-e2e-")
	if err != nil {
		return res, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		r.note("ledger run kept in %s", dir)
	}
	bin := o.ledgerBin
	if bin == "" {
		o.progress("building ledger")
		if bin, err = testenv.BuildLedger(ctx, dir); err != nil {
			return res, err
		}
	}
	// The broker may be restarting (make chaos does that): wait for it.
	vhost := testenv.VhostName("ledger-bench-ledger")
	vhURL, err := testenv.CreateVhost(ctx, o.amqpURL, vhost, 90*time.Second)
	if err != nil {
		return res, err
	}
	defer func() { _ = testenv.DeleteVhost(context.Background(), vhost) }()
	lp, err := testenv.StartServe(ctx, testenv.ServeOptions{
		Binary: bin, AMQPURL: vhURL, DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "ledger.log"),
		Env: o.ledgerEnv, StopGrace: 20 * time.Second,
	})
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = lp.Stop()
		}
	}()
	o.progress("ledger %d ready on %s", lp.PID(), lp.Addr())

	e := &e2eRun{o: o, lp: lp, vhost: vhost, tr: newTracker()}
	closeDownstream, err := e.consumeDownstream(vhURL)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeDownstream()) }()
	if e.pub, err = newConfirmPublisher(vhURL, o.ceilingWindow); err != nil {
		return res, err
	}
	defer e.pub.close()
	e.seq = newSequencer(uint64(time.Now().UnixNano()), 500)

	if err := e.throughput(ctx, &res); err != nil {
		return res, err
	}
	if err := e.latency(ctx, &res); err != nil {
		return res, err
	}
	if err := e.finish(ctx, &res); err != nil {
		return res, err
	}
	stopped = true
	if err := lp.Stop(); err != nil {
		res.verifyErr = errors.Join(res.verifyErr, fmt.Errorf("ledger shutdown: %w", err))
	}
	res.warn, res.errs = countLogLevels(lp.Logs())
	return res, nil
}

// consumeDownstream consumes the AccelByte events, on a queue bound to
// orderProcessing with #, and every BookWorm command queue the ledger
// declared. The returned func stops the consumers, then closes the
// connection; it reports what the consumers' stops returned.
func (e *e2eRun) consumeDownstream(vhURL string) (func() error, error) {
	cconn, err := amqp.DialConfig(vhURL, amqp.Config{Properties: amqp.Table{"connection_name": "ledger-bench downstream"}})
	if err != nil {
		return nil, fmt.Errorf("dial downstream: %w", err)
	}
	var stops []func() error
	closeAll := func() error {
		var err error
		for _, s := range stops {
			err = errors.Join(err, s())
		}
		_ = cconn.Close()
		return err
	}
	fail := func(err error) (func() error, error) { return nil, errors.Join(err, closeAll()) }
	if e.sch, err = cconn.Channel(); err != nil {
		return fail(err)
	}
	const capture = "bench.accelbyte"
	if _, err := e.sch.QueueDeclare(capture, true, false, false, false, nil); err != nil {
		return fail(fmt.Errorf("declare %s: %w", capture, err))
	}
	if err := e.sch.QueueBind(capture, "#", domain.AccelByteExchange, false, nil); err != nil {
		return fail(fmt.Errorf("bind %s: %w", capture, err))
	}
	stop, err := batchConsume(cconn, capture, 512, func(*amqp.Delivery) { e.tr.accel.Add(1) })
	if err != nil {
		return fail(err)
	}
	stops = append(stops, stop)
	for _, q := range rabbitmq.DefaultConsumerQueues() {
		stop, err := batchConsume(cconn, q.Queue, 512, func(d *amqp.Delivery) { e.tr.command(d, time.Now()) })
		if err != nil {
			return fail(err)
		}
		stops = append(stops, stop)
	}
	return closeAll, nil
}

// send publishes step of ord, stamped at; a fact that did not go out is
// forgotten and given back to the sequence.
func (e *e2eRun) send(ctx context.Context, ord traffic.Order, step int, at time.Time) error {
	w, err := traffic.Encode(ord.Steps[step], traffic.MassTransit, traffic.MessageID(ord.ID, step), at)
	if err != nil {
		return err
	}
	e.tr.add(ord.ID, stepCommand[step], at)
	err = e.pub.publish(ctx, w.Exchange, "", amqp.Publishing{ContentType: w.ContentType, MessageId: w.MessageID, Type: w.Type, Body: w.Body, Timestamp: at})
	if err != nil {
		e.tr.forget(ord.ID, stepCommand[step])
		e.seq.unread(ord, step)
	}
	return err
}

// closedLoop publishes as fast as the ledger keeps up with window facts
// in flight, until ctx ends or the sequence is flushed.
func (e *e2eRun) closedLoop(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := e.tr.waitBelow(ctx, int64(e.o.window)); err != nil {
			return nil
		}
		ord, step, ok := e.seq.next()
		if !ok {
			return nil
		}
		if err := e.send(ctx, ord, step, time.Now()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// drain waits until every fact sent has its command, failing if the
// service dies or limit passes.
func (e *e2eRun) drain(ctx context.Context, what string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for e.tr.inflight.Load() > 0 {
		if err := e.lp.Alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d facts still without their command after %s", what, e.tr.inflight.Load(), limit)
		}
		if err := testenv.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// throughput is phase 1: a closed loop, measured over e2eDur after a
// warm-up, then drained.
func (e *e2eRun) throughput(ctx context.Context, res *e2eResult) error {
	o := e.o
	o.progress("phase 1: closed window of %d facts, warmup %s, window %s", o.window, o.e2eWarmup, o.e2eDur)
	pctx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	go func() { pubDone <- e.closedLoop(pctx) }()
	if err := testenv.Sleep(ctx, o.e2eWarmup); err != nil {
		stopPub()
		return err
	}
	s0 := e.tr.snap(e.pub)
	if err := testenv.Sleep(ctx, o.e2eDur); err != nil {
		stopPub()
		return err
	}
	s1 := e.tr.snap(e.pub)
	res.where = e.whereIsTheBacklog(ctx)
	stopPub()
	if err := <-pubDone; err != nil {
		return err
	}
	if err := e.lp.Alive(); err != nil {
		return err
	}
	d := s1.at.Sub(s0.at)
	res.inbound = rate(float64(s1.completed-s0.completed), d)
	res.outbound = rate(s1.outbound-s0.outbound, d)
	res.deliveries = rate(float64(s1.deliveries-s0.deliveries), d)
	o.progress("phase 1: inbound %.0f/s outbound %.0f/s; draining %d", res.inbound, res.outbound, e.tr.inflight.Load())
	return e.drain(ctx, "after the throughput phase", 60*time.Second)
}

// latency is phase 2: half the measured rate, paced open loop; latency
// counts from each fact's scheduled time, so a stalled publisher is not
// hidden.
func (e *e2eRun) latency(ctx context.Context, res *e2eResult) error {
	o := e.o
	res.halfRate = res.inbound / 2
	if res.halfRate < 1 {
		return fmt.Errorf("ledger throughput %.1f facts/s is too low to pace a latency run", res.inbound)
	}
	o.progress("phase 2: %.0f facts/s for %s", res.halfRate, o.latencyDur)
	warm := min(2*time.Second, o.latencyDur/4)
	h0, _ := scrapeHistogram(ctx, e.lp, "ledger_publish_confirm_seconds")
	start := time.Now()
	e.tr.record(start.Add(warm), start.Add(o.latencyDur))
	sent, err := e.paced(ctx, start, time.Duration(float64(time.Second)/res.halfRate))
	if err != nil {
		return err
	}
	res.latInbound = rate(float64(sent), time.Since(start))
	if h1, err := scrapeHistogram(ctx, e.lp, "ledger_publish_confirm_seconds"); err == nil {
		res.confirm = h1.minus(h0)
	}
	if err := e.drain(ctx, "after the latency phase", 60*time.Second); err != nil {
		return err
	}
	samples := e.tr.samples()
	if o.latencyCSV != "" {
		if err := writeLatencies(o.latencyCSV, start, samples); err != nil {
			return err
		}
	}
	res.latN, res.p50, res.p99, res.max = percentiles(samples)
	return nil
}

// paced sends one fact every interval from start for latencyDur, each
// stamped with its scheduled time, and returns how many it sent.
func (e *e2eRun) paced(ctx context.Context, start time.Time, interval time.Duration) (int, error) {
	sent := 0
	for {
		now := time.Now()
		if now.Sub(start) >= e.o.latencyDur {
			return sent, nil
		}
		due := int(now.Sub(start) / interval)
		for ; sent <= due; sent++ {
			ord, step, _ := e.seq.next()
			if err := e.send(ctx, ord, step, start.Add(time.Duration(sent)*interval)); err != nil {
				return sent, err
			}
		}
		if err := testenv.Sleep(ctx, 200*time.Microsecond); err != nil {
			return sent, err
		}
	}
}

// finish completes the open orders, checks that everything came out and
// reads the service's memory and error counters.
func (e *e2eRun) finish(ctx context.Context, res *e2eResult) error {
	e.seq.flush()
	if err := e.closedLoop(ctx); err != nil {
		return err
	}
	if err := e.drain(ctx, "after the flush", 60*time.Second); err != nil {
		return err
	}
	res.facts = e.seq.published[0] + e.seq.published[1] + e.seq.published[2]
	res.orders = e.seq.published[2]
	res.verifyErr = verify(ctx, e.tr, e.seq)
	st, err := e.lp.ProcStatus()
	if err != nil {
		return fmt.Errorf("read ledger RSS: %w", err)
	}
	res.vmHWM, res.vmRSS, res.rssAnon, res.rssFile = st["VmHWM"], st["VmRSS"], st["RssAnon"], st["RssFile"]
	res.deadLettered, _ = metric(ctx, e.lp, "ledger_messages_dead_lettered_total")
	res.returned, _ = metric(ctx, e.lp, "ledger_messages_returned_total")
	res.retries, _ = metric(ctx, e.lp, "ledger_retries_total")
	if n := e.pub.nacked.Load() + e.pub.returned.Load(); n > 0 {
		res.verifyErr = errors.Join(res.verifyErr, fmt.Errorf("%d inbound publishes nacked or returned", n))
	}
	return nil
}

// percentiles returns the number of samples and their p50, p99 and max
// latencies (zero without samples).
func percentiles(samples []latSample) (n int, p50, p99, maxLat time.Duration) {
	lat := make([]time.Duration, len(samples))
	for i, s := range samples {
		lat[i] = s.d
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, 0, 0, 0
	}
	return len(lat), pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
}

// verify waits until every expected outbound message arrived: one AccelByte
// event per fact, each command once per consumer queue, nothing else.
func verify(ctx context.Context, tr *tracker, seq *sequencer) error {
	want := map[string]int64{
		"PlaceOrderCommand":           seq.published[0] * int64(tr.copies["PlaceOrderCommand"]),
		"DeleteBasketCompleteCommand": seq.published[1] * int64(tr.copies["DeleteBasketCompleteCommand"]),
		"CompleteOrderCommand":        seq.published[2] * int64(tr.copies["CompleteOrderCommand"]),
	}
	wantAccel := seq.published[0] + seq.published[1] + seq.published[2]
	check := func() error {
		var errs []error
		if got := tr.accel.Load(); got != wantAccel {
			errs = append(errs, fmt.Errorf("AccelByte events: got %d, want %d", got, wantAccel))
		}
		for name, c := range tr.commands {
			if got := c.Load(); got != want[name] {
				errs = append(errs, fmt.Errorf("%s deliveries: got %d, want %d", name, got, want[name]))
			}
		}
		if n := tr.unmatched.Load(); n > 0 {
			errs = append(errs, fmt.Errorf("%d deliveries of unexpected types", n))
		}
		return errors.Join(errs...)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1)+0.5)]
}

// benchBrokerAndLedger measures the broker's ceiling and, with ledger, the
// ledger end to end and then the broker's latency floor at the rate of the
// ledger's latency run, and adds them to the report.
func benchBrokerAndLedger(ctx context.Context, o options, r *report, ledger bool) error {
	ceil, err := brokerCeilings(ctx, o)
	if err != nil {
		return err
	}
	for _, c := range ceil {
		r.add("broker ceiling", fmt.Sprintf("%s queue: published+confirmed", c.queueType), fmtRate(c.published))
		r.add("broker ceiling", fmt.Sprintf("%s queue: consumed+acked", c.queueType), fmtRate(c.acked))
		r.add("broker ceiling", fmt.Sprintf("%s queue: ceiling (min of both)", c.queueType), fmtRate(c.rate))
		r.fig("ceiling."+c.queueType+"_msg_per_s", c.rate)
		if c.nacked+c.returned > 0 {
			r.note("ceiling %s: %d nacked, %d returned", c.queueType, c.nacked, c.returned)
		}
	}
	c0 := ceil[0]
	r.note("ceiling: one publisher (confirm window %d, persistent, mandatory) into a durable fanout exchange bound to one durable queue, one consumer (prefetch 512, manual multiple-ack of what is at hand), %s measured after a %s warm-up; bodies are real MassTransit inbound envelopes of %d-%d B (avg %d B). Unit: one message published (confirmed) and consumed (acked) once.",
		o.ceilingWindow, o.ceilingDur, min(2*time.Second, o.ceilingDur/4), c0.minBytes, c0.maxBytes, c0.avgBytes)
	if !ledger {
		return nil
	}

	res, err := benchLedger(ctx, o, r)
	if err != nil {
		return fmt.Errorf("ledger end to end: %w", err)
	}
	floor, err := measureFloor(ctx, o, res.latInbound)
	if err != nil {
		return fmt.Errorf("latency floor: %w", err)
	}
	reportLedger(r, o, ceil, res, floor)
	return nil
}

// brokerCeilings measures the ceiling of each queue type, quorum first.
func brokerCeilings(ctx context.Context, o options) ([]ceilingResult, error) {
	vhost := testenv.VhostName("ledger-bench-ceiling")
	vhURL, err := testenv.CreateVhost(ctx, o.amqpURL, vhost, 90*time.Second)
	if err != nil {
		return nil, err
	}
	defer func() { _ = testenv.DeleteVhost(context.Background(), vhost) }()
	types := []string{rabbitmq.QueueQuorum}
	if o.ceilingClassic {
		types = append(types, rabbitmq.QueueClassic)
	}
	var ceil []ceilingResult
	for _, qt := range types {
		c, err := brokerCeiling(ctx, o, vhURL, qt)
		if err != nil {
			return nil, fmt.Errorf("broker ceiling (%s): %w", qt, err)
		}
		ceil = append(ceil, c)
	}
	return ceil, nil
}

// measureFloor runs brokerFloor in a vhost of its own at the ledger's
// paced rate, for as long as the ledger's latency run.
func measureFloor(ctx context.Context, o options, perSec float64) (floorResult, error) {
	vhost := testenv.VhostName("ledger-bench-floor")
	vhURL, err := testenv.CreateVhost(ctx, o.amqpURL, vhost, 90*time.Second)
	if err != nil {
		return floorResult{}, err
	}
	defer func() { _ = testenv.DeleteVhost(context.Background(), vhost) }()
	return brokerFloor(ctx, o, vhURL, perSec, o.latencyDur)
}

// Targets of the end-to-end run.
const (
	targetCeilingShare = 0.60              // inbound+outbound against the quorum ceiling
	targetFloorRatio   = 2.0               // ledger p99 against the broker's two-hop p99
	targetPeakRSS      = 100 * 1024 * 1024 // bytes
)

// reportLedger adds the ledger's figures, against the ceiling and the
// floor, to the report.
func reportLedger(r *report, o options, ceil []ceilingResult, res e2eResult, floor floorResult) {
	total := res.inbound + res.outbound
	ratio := total / ceil[0].rate
	r.add("ledger e2e", "inbound facts consumed", fmtRate(res.inbound))
	r.add("ledger e2e", "outbound messages published", fmtRate(res.outbound))
	r.add("ledger e2e", "outbound deliveries (fanout copies)", fmtRate(res.deliveries))
	r.add("ledger e2e", "inbound+outbound", fmtRate(total))
	r.check("ledger e2e", "ratio to the quorum ceiling", fmt.Sprintf("%.1f%%", 100*ratio), fmt.Sprintf(">= %.0f%%", 100*targetCeilingShare), ratio >= targetCeilingShare)
	r.fig("e2e.inbound_msg_per_s", res.inbound)
	r.fig("e2e.outbound_msg_per_s", res.outbound)
	r.fig("e2e.total_msg_per_s", total)
	r.fig("e2e.quorum_ceiling_share", ratio)
	if len(ceil) > 1 {
		r.add("ledger e2e", "ratio to the classic ceiling", fmt.Sprintf("%.0f%%", 100*total/ceil[1].rate))
		r.fig("e2e.classic_ceiling_share", total/ceil[1].rate)
	}
	r.add("ledger latency", "paced inbound rate (half of max)", fmt.Sprintf("%.0f facts/s (asked %.0f)", res.latInbound, res.halfRate))
	r.add("ledger latency", "samples", fmt.Sprint(res.latN))
	r.add("ledger latency", "p50 fact -> command", fmtDur(res.p50))
	r.add("ledger latency", "p99 fact -> command", fmtDur(res.p99))
	r.add("ledger latency", "max fact -> command", fmtDur(res.max))
	if c := res.confirm; c.count > 0 {
		r.add("ledger latency", "outbound publish->confirm (ledger metric)", fmt.Sprintf("mean %s, p50 <= %s, p99 <= %s", fmtDur(time.Duration(c.sum/c.count*1e9)), fmtDur(c.quantile(0.5)), fmtDur(c.quantile(0.99))))
		r.fig("latency.confirm_mean_ms", c.sum/c.count*1e3)
	}
	r.add("ledger latency", "floor: broker two-hop p50 / p99", fmt.Sprintf("%s / %s (%d samples at %.0f msg/s)", fmtDur(floor.p50), fmtDur(floor.p99), floor.n, floor.rate))
	fr := math.Inf(1)
	if floor.p99 > 0 {
		fr = float64(res.p99) / float64(floor.p99)
	}
	r.check("ledger latency", "p99 as a multiple of the floor's p99", fmt.Sprintf("%.2fx", fr), fmt.Sprintf("<= %.0fx", targetFloorRatio), res.latN > 0 && floor.n > 0 && fr <= targetFloorRatio)
	r.fig("latency.rate_per_s", res.latInbound)
	r.fig("latency.p50_ms", ms(res.p50))
	r.fig("latency.p99_ms", ms(res.p99))
	r.fig("latency.max_ms", ms(res.max))
	r.fig("latency.floor_p50_ms", ms(floor.p50))
	r.fig("latency.floor_p99_ms", ms(floor.p99))
	r.fig("latency.p99_floor_ratio", fr)
	r.check("ledger memory", "service peak RSS (VmHWM)", fmtMB(res.vmHWM), fmt.Sprintf("<= %.0f MB", float64(targetPeakRSS)/(1<<20)), res.vmHWM*1024 <= targetPeakRSS)
	r.add("ledger memory", "service RSS at the end: anon + file", fmt.Sprintf("%s + %s", fmtMB(res.rssAnon), fmtMB(res.rssFile)))
	r.fig("memory.peak_rss_mb", float64(res.vmHWM)/1024)
	r.fig("memory.end_rss_anon_mb", float64(res.rssAnon)/1024)
	r.fig("memory.end_rss_file_mb", float64(res.rssFile)/1024)
	ledgerNotes(r, o, res, floor)
}

// ledgerNotes explains the ledger's figures under the table.
func ledgerNotes(r *report, o options, res e2eResult, floor floorResult) {
	r.note("ledger: `ledger serve` (embedded store, fsync on, quorum inbound queue, classic consumer queues) in its own vhost; %d Fulfilled orders, %d MassTransit facts in all; window %d facts in flight (published, command not yet received), %s warm-up then %s measured. Unit as the ceiling: inbound = facts published by the bench and consumed by the ledger; outbound = messages the ledger published and the bench consumed (3 AccelByte events + 3 commands per order; PlaceOrderCommand reaches 2 queues, its copies are counted once in 'published', each in 'deliveries').",
		res.orders, res.facts, o.window, o.e2eWarmup, o.e2eDur)
	r.note("latency: open loop paced at half the measured inbound rate for %s (first %s not sampled), from each fact's scheduled publish time to the first copy of its command (PlaceOrderCommand / DeleteBasketCompleteCommand / CompleteOrderCommand, matched by order id and command).",
		o.latencyDur, min(2*time.Second, o.latencyDur/4))
	r.note("floor: right after the ledger run, in a vhost of its own, the same paced rate and time: a bench publisher (confirm window %d) into a quorum queue, a relay consuming it (prefetch 512, multiple acks) that republishes each delivery, persistent and confirmed, to two classic queues (as the ledger publishes an AccelByte event and a command per fact), a consumer timing one of them from the scheduled publish time; %d relayed.",
		o.ceilingWindow, floor.relayed)
	r.note("backlog at the end of the throughput window (lag gauges refresh every 2s): %s", res.where)
	if res.verifyErr != nil {
		r.note("OUTBOUND CHECK FAILED: %v", res.verifyErr)
	} else {
		r.note("outbound check: every fact gave exactly its AccelByte event and its command copies; nothing else arrived.")
	}
	if res.deadLettered+res.returned+res.retries > 0 || res.errs > 0 {
		r.note("ledger metrics: %.0f dead-lettered, %.0f returned, %.0f retries; log: %d warn, %d error lines", res.deadLettered, res.returned, res.retries, res.warn, res.errs)
	}
}

// writeLatencies writes every latency sample (offset of its scheduled
// publish from the start of the run, latency, command) as CSV.
func writeLatencies(path string, start time.Time, samples []latSample) error {
	var b strings.Builder
	b.WriteString("offset_ms,latency_ms,command\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.3f,%.3f,%s\n", float64(s.at.Sub(start))/1e6, float64(s.d)/1e6, s.cmd)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
