package domain

import (
	"encoding/json"
	"time"
)

// Metadata is what a stored fact carries besides its data (DESIGN §3). The
// $-prefixed keys are EventStoreDB's conventions, so its system projections
// link correlated events.
type Metadata struct {
	CorrelationID  string    `json:"$correlationId,omitempty"`
	CausationID    string    `json:"$causationId,omitempty"`
	MessageID      string    `json:"messageId,omitempty"`
	ConversationID string    `json:"conversationId,omitempty"`
	Envelope       string    `json:"envelope,omitempty"` // masstransit | cloudevents | bare | ledger
	Exchange       string    `json:"exchange,omitempty"`
	ReceivedAt     time.Time `json:"receivedAt,omitzero"`
	Redelivered    bool      `json:"redelivered,omitempty"`
	Origin         string    `json:"origin,omitempty"` // "ledger" for facts the ledger makes itself
}

// EncodeMetadata renders m as stored JSON.
func EncodeMetadata(m Metadata) ([]byte, error) { return json.Marshal(m) }

// DecodeMetadata reads stored metadata; empty input gives the zero value.
func DecodeMetadata(b []byte) (Metadata, error) {
	var m Metadata
	if len(b) == 0 {
		return m, nil
	}
	err := json.Unmarshal(b, &m)
	return m, err
}
