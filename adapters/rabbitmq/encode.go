package rabbitmq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bookworm-ledger/ledger/domain"
)

// BaseTypeURN is the base-class URN MassTransit lists for BookWorm
// integration events and commands (after 2025-05-04).
const BaseTypeURN = "urn:message:BookWorm.Chassis.EventBus:IntegrationEvent"

// OutboundEnvelope is what the envelope encoders need.
type OutboundEnvelope struct {
	MessageID      string // a UUID: MassTransit reads ids as Guid
	CorrelationID  string // optional UUID
	ConversationID string // optional UUID
	InitiatorID    string // optional UUID (the consumed message's id)
	Namespace      string // default domain.NamespaceBookWorm
	Type           string // e.g. "PlaceOrderCommand"
	// BaseTypes are extra URNs after the message's own; nil means
	// [BaseTypeURN], empty non-nil means none.
	BaseTypes          []string
	SourceAddress      string // e.g. rabbitmq://host/vhost/<the ledger's queue>
	DestinationAddress string
	Message            json.RawMessage // the inner message, a JSON object
	SentTime           time.Time       // zero: now
	Headers            map[string]any
	// Source is the CloudEvents source; default SourceAddress, else "ledger".
	Source string
}

// ErrEnvelope reports an OutboundEnvelope that cannot be encoded.
var ErrEnvelope = errors.New("invalid outbound envelope")

type mtHost struct {
	MachineName            string `json:"machineName"`
	ProcessName            string `json:"processName"`
	ProcessID              int    `json:"processId"`
	Assembly               string `json:"assembly"`
	AssemblyVersion        string `json:"assemblyVersion"`
	FrameworkVersion       string `json:"frameworkVersion"`
	MassTransitVersion     string `json:"massTransitVersion"`
	OperatingSystemVersion string `json:"operatingSystemVersion"`
}

// mtOut keeps MassTransit's field order; nulls are written as MassTransit does.
type mtOut struct {
	MessageID          string          `json:"messageId"`
	RequestID          *string         `json:"requestId"`
	CorrelationID      *string         `json:"correlationId"`
	ConversationID     *string         `json:"conversationId"`
	InitiatorID        *string         `json:"initiatorId"`
	SourceAddress      *string         `json:"sourceAddress"`
	DestinationAddress *string         `json:"destinationAddress"`
	ResponseAddress    *string         `json:"responseAddress"`
	FaultAddress       *string         `json:"faultAddress"`
	MessageType        []string        `json:"messageType"`
	Message            json.RawMessage `json:"message"`
	ExpirationTime     *string         `json:"expirationTime"`
	SentTime           string          `json:"sentTime"`
	Headers            map[string]any  `json:"headers"`
	Host               mtHost          `json:"host"`
}

func (m OutboundEnvelope) check() error {
	var errs []error
	if err := uuid.Validate(m.MessageID); err != nil || m.MessageID == "" {
		errs = append(errs, fmt.Errorf("message id %q is not a UUID", m.MessageID))
	}
	for _, f := range []struct{ name, v string }{
		{"correlation id", m.CorrelationID}, {"conversation id", m.ConversationID}, {"initiator id", m.InitiatorID},
	} {
		if f.v != "" && uuid.Validate(f.v) != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a UUID", f.name, f.v))
		}
	}
	if m.Type == "" || strings.ContainsAny(m.Type, ".: ") {
		errs = append(errs, fmt.Errorf("type %q must be a bare type name", m.Type))
	}
	raw := bytes.TrimSpace(m.Message)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		errs = append(errs, errors.New("message must be a JSON object"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return nil
}

func (m OutboundEnvelope) namespace() string {
	if m.Namespace == "" {
		return domain.NamespaceBookWorm
	}
	return m.Namespace
}

func (m OutboundEnvelope) urns() []string {
	urns := []string{"urn:message:" + m.namespace() + ":" + m.Type}
	if m.BaseTypes == nil {
		return append(urns, BaseTypeURN)
	}
	return append(urns, m.BaseTypes...)
}

func (m OutboundEnvelope) sent() time.Time {
	if m.SentTime.IsZero() {
		return time.Now().UTC()
	}
	return m.SentTime.UTC()
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// EncodeMassTransit writes the MassTransit JSON envelope
// (content type domain.ContentTypeMassTransit).
func EncodeMassTransit(m OutboundEnvelope) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	headers := m.Headers
	if headers == nil {
		headers = map[string]any{}
	}
	out := mtOut{
		MessageID:          m.MessageID,
		CorrelationID:      optional(m.CorrelationID),
		ConversationID:     optional(m.ConversationID),
		InitiatorID:        optional(m.InitiatorID),
		SourceAddress:      optional(m.SourceAddress),
		DestinationAddress: optional(m.DestinationAddress),
		MessageType:        m.urns(),
		Message:            bytes.TrimSpace(m.Message),
		SentTime:           m.sent().Format(time.RFC3339Nano),
		Headers:            headers,
		Host:               host,
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return b, nil
}

// EncodeCloudEvent writes a CloudEvents 1.0 structured JSON event
// (content type domain.ContentTypeCloudEvents), as BookWorm's Wolverine
// version sent them: type "<Namespace>.<Type>", the MassTransit ids as
// extension attributes.
func EncodeCloudEvent(m OutboundEnvelope) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	source := m.Source
	if source == "" {
		source = m.SourceAddress
	}
	if source == "" {
		source = "ledger"
	}
	ev := map[string]any{
		"specversion":     "1.0",
		"id":              m.MessageID,
		"source":          source,
		"type":            m.namespace() + "." + m.Type,
		"time":            m.sent().Format(time.RFC3339Nano),
		"datacontenttype": domain.ContentTypeJSON,
		"data":            json.RawMessage(bytes.TrimSpace(m.Message)),
		"messagetype":     strings.Join(m.urns(), ";"),
	}
	for k, v := range map[string]string{
		"correlationid": m.CorrelationID, "conversationid": m.ConversationID,
		"initiatorid": m.InitiatorID, "destinationaddress": m.DestinationAddress,
	} {
		if v != "" {
			ev[k] = v
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return b, nil
}
