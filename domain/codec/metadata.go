package codec

import (
	"encoding/json"

	"github.com/bookworm-ledger/ledger/domain"
)

// EncodeMetadata renders m as stored JSON (the keys are domain.Metadata's
// tags). Metadata is small and replay never reads it, so encoding/json
// serves.
func EncodeMetadata(m domain.Metadata) ([]byte, error) { return json.Marshal(m) }

// DecodeMetadata reads stored metadata; empty input gives the zero value.
func DecodeMetadata(b []byte) (domain.Metadata, error) {
	var m domain.Metadata
	if len(b) == 0 {
		return m, nil
	}
	err := json.Unmarshal(b, &m)
	return m, err
}
