package main

import (
	"context"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// outboundPublisher is the lifecycle publisher's way out: AccelByte events
// go as they are (JSON) to the topic exchange, BookWorm commands in the
// configured envelope (MassTransit by default) to their fanout exchanges.
type outboundPublisher struct {
	broker   *rabbitmq.Broker
	envelope string // masstransit | cloudevents | bare
	queue    string // the ledger's own endpoint, MassTransit's sourceAddress
	metrics  *metrics
}

func (p *outboundPublisher) Publish(ctx context.Context, msgs []domain.Outbound) error {
	pubs := make([]rabbitmq.Publication, 0, len(msgs))
	for _, m := range msgs {
		pub, err := p.publication(m)
		if err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	if err := p.broker.Publish(ctx, pubs); err != nil {
		return err
	}
	if p.metrics != nil {
		for _, m := range msgs {
			p.metrics.published.WithLabelValues(string(m.Kind)).Inc()
		}
	}
	return nil
}

func (p *outboundPublisher) publication(m domain.Outbound) (rabbitmq.Publication, error) {
	pub := rabbitmq.Publication{
		Exchange: m.Exchange, RoutingKey: m.RoutingKey, MessageID: m.MessageID,
		CorrelationID: m.CorrelationID, Type: m.Name, Timestamp: m.Time,
		Headers: map[string]any{"x-ledger-causation-id": m.CausationID, "x-ledger-order-id": m.OrderID},
	}
	if m.Kind == domain.KindAccelByte {
		pub.ContentType, pub.Body = "application/json", m.Body
		return pub, nil
	}
	env := rabbitmq.OutboundEnvelope{
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, ConversationID: m.CorrelationID,
		InitiatorID: m.CausationID, Type: m.Name, Namespace: rabbitmq.NamespaceBookWorm,
		SourceAddress: "rabbitmq://ledger/" + p.queue, DestinationAddress: "rabbitmq://ledger/" + m.Exchange,
		SentTime: m.Time, Message: m.Body,
	}
	var err error
	switch p.envelope {
	case "cloudevents":
		pub.ContentType = rabbitmq.ContentTypeCloudEvents
		pub.Body, err = rabbitmq.EncodeCloudEvent(env)
	case "bare":
		pub.ContentType, pub.Body = "application/json", m.Body
	default:
		pub.ContentType = rabbitmq.ContentTypeMassTransit
		pub.Body, err = rabbitmq.EncodeMassTransit(env)
	}
	if err != nil {
		return pub, fmt.Errorf("encode %s %s: %w", m.Name, m.MessageID, err)
	}
	return pub, nil
}

// brokerObserver feeds the broker's hooks into Prometheus.
type brokerObserver struct{ m *metrics }

func (o brokerObserver) OnConsumed(string)                { o.m.consumed.Inc() }
func (o brokerObserver) OnDeadLettered(reason string)     { o.m.deadLettered.WithLabelValues(reason).Inc() }
func (o brokerObserver) OnPublished(string)               {}
func (o brokerObserver) OnConfirmLatency(d time.Duration) { o.m.confirmLat.Observe(d.Seconds()) }
func (o brokerObserver) OnReturned(string)                { o.m.returned.Inc() }
func (o brokerObserver) OnRequeued()                      { o.m.retries.WithLabelValues("consumer").Inc() }
func (o brokerObserver) OnReconnected()                   { o.m.retries.WithLabelValues("reconnect").Inc() }
