package domain

import "time"

// Metadata is what a stored fact carries besides its data: where it came
// from and how it correlates. The $-prefixed keys are EventStoreDB's
// conventions, so its system projections link correlated events. The
// codec package stores it as JSON with these keys.
type Metadata struct {
	CorrelationID string `json:"$correlationId,omitempty"` // the envelope's, else the order id
	// SentCorrelationID is the envelope's own correlation id, "" when it
	// had none: MassTransit's initiatorId rule needs to know which.
	SentCorrelationID string    `json:"correlationId,omitempty"`
	CausationID       string    `json:"$causationId,omitempty"`
	MessageID         string    `json:"messageId,omitempty"`
	ConversationID    string    `json:"conversationId,omitempty"`
	Envelope          string    `json:"envelope,omitempty"` // masstransit | cloudevents | bare | ledger
	Exchange          string    `json:"exchange,omitempty"`
	ReceivedAt        time.Time `json:"receivedAt,omitzero"`
	Redelivered       bool      `json:"redelivered,omitempty"`
	Origin            string    `json:"origin,omitempty"` // "ledger" for facts the ledger makes itself
}
