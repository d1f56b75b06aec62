package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// metrics is the service's Prometheus registry and the counters the
// broker, the ingester and the projections report into.
type metrics struct {
	reg          *prometheus.Registry
	consumed     prometheus.Counter
	deadLettered *prometheus.CounterVec
	appended     prometheus.Counter
	duplicates   prometheus.Counter
	published    *prometheus.CounterVec
	returned     prometheus.Counter
	confirmLat   prometheus.Histogram
	projected    *prometheus.CounterVec
	position     *prometheus.GaugeVec
	lag          *prometheus.GaugeVec
	poison       *prometheus.CounterVec
	retries      *prometheus.CounterVec
	parkedLanes  *prometheus.GaugeVec
	parked       *prometheus.CounterVec
	unparked     *prometheus.CounterVec
	unroutable   prometheus.Gauge
	paused       prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_messages_consumed_total", Help: "Inbound messages delivered by the broker."}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_messages_dead_lettered_total", Help: "Inbound messages sent to the error or skipped queue, by reason."}, []string{"reason"}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_facts_appended_total", Help: "Facts appended to order streams."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_facts_duplicate_total", Help: "Inbound messages whose fact was already stored."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_messages_published_total", Help: "Outbound messages confirmed by the broker, by kind."}, []string{"kind"}),
		returned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_messages_returned_total", Help: "Outbound messages the broker returned as unroutable."}),
		confirmLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ledger_publish_confirm_seconds", Help: "Time from publish to broker confirm.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		projected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_projection_events_total", Help: "Events handled by each projection."}, []string{"projection"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_projection_position", Help: "Commit position each projection has reached."}, []string{"projection"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_projection_lag", Help: "Commit positions between the log's head and each projection."}, []string{"projection"}),
		poison: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_projection_poison_total", Help: "Stored events a projection could not decode and skipped."}, []string{"projection"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_retries_total", Help: "Retried operations, by component."}, []string{"component"}),
		parkedLanes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_parked_lanes", Help: "Order lanes whose outbound messages are parked, by kind (accelbyte, bookworm)."}, []string{"kind"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_lanes_parked_total", Help: "Lanes parked (or parked again by a failed retry), by kind and reason."}, []string{"kind", "reason"}),
		unparked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_lanes_unparked_total", Help: "Parked lanes a retry published and released, by kind and the reason they were parked."}, []string{"kind", "reason"}),
		unroutable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ledger_unroutable_messages", Help: "Messages in the unroutable queue (published with no queue bound), as last read."}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ledger_ingest_paused", Help: "1 while the consumer holds its deliveries because the store is unavailable."}),
	}
	// Both kinds exist from the start, so a dashboard shows 0, not nothing.
	for _, k := range []domain.OutboundKind{domain.KindAccelByte, domain.KindBookWorm} {
		m.parkedLanes.WithLabelValues(string(k))
	}
	m.reg.MustRegister(m.consumed, m.deadLettered, m.appended, m.duplicates, m.published, m.returned,
		m.confirmLat, m.projected, m.position, m.lag, m.poison, m.retries,
		m.parkedLanes, m.parked, m.unparked, m.unroutable, m.paused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// projectionObserver reports projection progress into metrics and logs.
type projectionObserver struct {
	m    *metrics
	log  func(msg string, name string, err error)
	park func(what string, p projections.Parked) // a log line; nil: none
}

func (o projectionObserver) Batch(name string, n int, pos domain.Position) {
	o.m.projected.WithLabelValues(name).Add(float64(n))
	o.m.position.WithLabelValues(name).Set(float64(pos.Commit))
}

func (o projectionObserver) Poison(name string, e domain.RecordedEvent, err error) {
	o.m.poison.WithLabelValues(name).Inc()
	o.log("skipped an undecodable stored event", name, err)
}

func (o projectionObserver) Retry(name string, err error, wait time.Duration) {
	o.m.retries.WithLabelValues(name).Inc()
	o.log("projection step failed; retrying", name, err)
}

// Parked and Unparked make projectionObserver a projections.ParkObserver:
// a counter and one log line per park.
func (o projectionObserver) Parked(name string, p projections.Parked) {
	o.m.parked.WithLabelValues(string(p.Kind), p.Reason).Inc()
	if o.park != nil {
		o.park("parked", p)
	}
}

func (o projectionObserver) Unparked(name string, p projections.Parked) {
	o.m.unparked.WithLabelValues(string(p.Kind), p.Reason).Inc()
	if o.park != nil {
		o.park("unparked", p)
	}
}

// setParked sets the parked-lanes gauge from the parked set.
func (m *metrics) setParked(lanes []projections.Parked) {
	n := map[domain.OutboundKind]int{domain.KindAccelByte: 0, domain.KindBookWorm: 0}
	for _, p := range lanes {
		n[p.Kind]++
	}
	for k, v := range n {
		m.parkedLanes.WithLabelValues(string(k)).Set(float64(v))
	}
}

// OnUnroutableDepth feeds the broker's unroutable-queue reading.
func (o brokerObserver) OnUnroutableDepth(n int) { o.m.unroutable.Set(float64(n)) }

// OnPaused makes brokerObserver a rabbitmq.PauseObserver.
func (o brokerObserver) OnPaused(paused bool) {
	if paused {
		o.m.paused.Set(1)
		return
	}
	o.m.paused.Set(0)
}

// ingestObserver counts what became of each inbound message.
type ingestObserver struct{ m *metrics }

func (o ingestObserver) Ingested(c ingest.Class) {
	switch c {
	case ingest.Stored:
		o.m.appended.Inc()
	case ingest.Duplicate:
		o.m.duplicates.Inc()
	}
}
