package main

import "time"

// brokerObserver feeds the broker's hooks into Prometheus.
type brokerObserver struct{ m *metrics }

func (o brokerObserver) OnConsumed(string)                { o.m.consumed.Inc() }
func (o brokerObserver) OnDeadLettered(reason string)     { o.m.deadLettered.WithLabelValues(reason).Inc() }
func (o brokerObserver) OnPublished(string)               {}
func (o brokerObserver) OnOutboundConfirmed(kind string)  { o.m.published.WithLabelValues(kind).Inc() }
func (o brokerObserver) OnConfirmLatency(d time.Duration) { o.m.confirmLat.Observe(d.Seconds()) }
func (o brokerObserver) OnReturned(string)                { o.m.returned.Inc() }
func (o brokerObserver) OnRequeued()                      { o.m.retries.WithLabelValues("consumer").Inc() }
func (o brokerObserver) OnReconnected()                   { o.m.retries.WithLabelValues("reconnect").Inc() }
