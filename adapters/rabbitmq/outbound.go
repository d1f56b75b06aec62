package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	"github.com/bookworm-ledger/ledger/domain"
)

// Headers the Publisher sets on every outbound message.
const (
	HeaderCausationID = "x-ledger-causation-id" // the id of the fact that caused the message
	HeaderOrderID     = "x-ledger-order-id"
	// MassTransit's transport header names (MessageHeaders), set on bare
	// JSON commands, which have no envelope to carry them.
	HeaderConversationID = "ConversationId"
	HeaderInitiatorID    = "MT-InitiatorId"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Envelope wraps the BookWorm commands: domain.EnvelopeMassTransit
	// (the default), domain.EnvelopeCloudEvents or domain.EnvelopeBare.
	Envelope string
	// Queue is the ledger's own receive endpoint, the MassTransit
	// sourceAddress of the commands; default the broker's queue.
	Queue string
}

// Validate reports a bad setting.
func (c PublisherConfig) Validate() error {
	switch c.Envelope {
	case "", domain.EnvelopeMassTransit, domain.EnvelopeCloudEvents, domain.EnvelopeBare:
		return nil
	}
	return fmt.Errorf("envelope %q: use %s, %s or %s", c.Envelope,
		domain.EnvelopeMassTransit, domain.EnvelopeCloudEvents, domain.EnvelopeBare)
}

// Publisher sends the lifecycle's outbound messages: AccelByte events as
// they are (JSON) to their topic exchange, BookWorm commands in the
// configured envelope to their fanout exchanges. Its Publish is the
// projections' publisher port. Safe for concurrent use.
type Publisher struct {
	broker   *Broker
	obs      Observer
	envelope string
	source   string // MassTransit sourceAddress
	invalid  error  // the config's, returned by every Publish
}

// NewPublisher publishes through b, reporting confirmed messages to b's
// Observer (OnOutboundConfirmed). cfg should have passed Validate when
// the configuration was read; if it does not, every Publish returns the
// problem and sends nothing.
func NewPublisher(b *Broker, cfg PublisherConfig) *Publisher {
	if cfg.Envelope == "" {
		cfg.Envelope = domain.EnvelopeMassTransit
	}
	if cfg.Queue == "" {
		cfg.Queue = b.cfg.Queue
	}
	p := &Publisher{broker: b, obs: b.obs, envelope: cfg.Envelope, source: inputAddress(b.cfg.URL, cfg.Queue)}
	if err := cfg.Validate(); err != nil {
		p.invalid = fmt.Errorf("rabbitmq publisher config: %w", err)
	}
	return p
}

// Publish sends msgs, persistent and confirmed, and returns when the broker
// confirmed all of them. When it refused some (see Broker.Publish), the
// error is a *domain.RefusedError listing them: returned as unroutable or
// aimed at a missing exchange is permanent, nacked is not; every other
// message of the call was confirmed. Any other error (the connection,
// ctx) is transient. Retrying is safe: every message carries its
// deterministic id.
func (p *Publisher) Publish(ctx context.Context, msgs []domain.Outbound) error {
	if p.invalid != nil {
		return p.invalid
	}
	pubs := make([]Publication, 0, len(msgs))
	for _, m := range msgs {
		pub, err := p.publication(m)
		if err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	err := p.broker.Publish(ctx, pubs)
	var perr *PublishError
	if err != nil && !errors.As(err, &perr) {
		return err
	}
	refused := refusals(perr)
	for _, m := range msgs {
		if _, bad := refused[m.MessageID]; !bad {
			p.obs.OnOutboundConfirmed(string(m.Kind))
		}
	}
	if perr != nil {
		return toRefused(perr)
	}
	return nil
}

// refusals indexes a PublishError's failures by message id (nil: none).
func refusals(perr *PublishError) map[string]struct{} {
	if perr == nil {
		return nil
	}
	out := make(map[string]struct{}, len(perr.Failures))
	for _, f := range perr.Failures {
		out[f.MessageID] = struct{}{}
	}
	return out
}

// toRefused says, for each failure, whether the same publish can ever
// succeed: a return (no queue bound, no alternate exchange) or a missing
// exchange needs a change of topology; a nack may pass next time.
func toRefused(perr *PublishError) *domain.RefusedError {
	re := &domain.RefusedError{Refusals: make([]domain.Refusal, 0, len(perr.Failures))}
	for _, f := range perr.Failures {
		permanent := errors.Is(f.Err, ErrReturned) || errors.Is(f.Err, ErrNoExchange)
		re.Refusals = append(re.Refusals, domain.Refusal{MessageID: f.MessageID, Permanent: permanent,
			Err: fmt.Errorf("%s/%s: %w", f.Exchange, f.RoutingKey, f.Err)})
	}
	return re
}

func (p *Publisher) publication(m domain.Outbound) (Publication, error) {
	pub := Publication{
		Exchange: m.Exchange, RoutingKey: m.RoutingKey, MessageID: m.MessageID,
		CorrelationID: m.CorrelationID, Type: m.Name, Timestamp: m.Time,
		Headers: map[string]any{HeaderCausationID: m.CausationID, HeaderOrderID: m.OrderID},
	}
	if m.Kind == domain.KindAccelByte {
		pub.ContentType, pub.Body = domain.ContentTypeJSON, m.Body
		return pub, nil
	}
	env := OutboundEnvelope{
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, ConversationID: m.ConversationID,
		InitiatorID: m.InitiatorID, Type: m.Name, Namespace: domain.NamespaceBookWorm,
		SourceAddress: p.source, DestinationAddress: inputAddress(p.broker.cfg.URL, m.Exchange),
		SentTime: m.Time, Message: m.Body,
	}
	var err error
	switch p.envelope {
	case domain.EnvelopeCloudEvents:
		pub.ContentType = domain.ContentTypeCloudEvents
		pub.Body, err = EncodeCloudEvent(env)
	case domain.EnvelopeBare:
		// MassTransit's raw JSON serializer reads the ids from transport
		// headers (MessageHeaders.ConversationId, .InitiatorId).
		pub.ContentType, pub.Body = domain.ContentTypeJSON, m.Body
		if m.ConversationID != "" {
			pub.Headers[HeaderConversationID] = m.ConversationID
		}
		if m.InitiatorID != "" {
			pub.Headers[HeaderInitiatorID] = m.InitiatorID
		}
	default:
		pub.ContentType = domain.ContentTypeMassTransit
		pub.Body, err = EncodeMassTransit(env)
	}
	if err != nil {
		return pub, fmt.Errorf("encode %s %s: %w", m.Name, m.MessageID, err)
	}
	return pub, nil
}
