package domain_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

func TestMetadataUsesEventStoreDBKeysAndRoundTrips(t *testing.T) {
	m := domain.Metadata{
		CorrelationID: "0196a6b0-0000-7000-8000-00000000000a", CausationID: "m1", MessageID: "m1",
		Envelope: "masstransit", Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent",
		ReceivedAt: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), Redelivered: true,
	}
	b, err := domain.EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"$correlationId":`, `"$causationId":`, `"messageId":`, `"receivedAt":`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("stored metadata %s lacks %s", b, key)
		}
	}
	got, err := domain.DecodeMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Errorf("round trip: got %+v, want %+v", got, m)
	}
	if z, err := domain.DecodeMetadata(nil); err != nil || z != (domain.Metadata{}) {
		t.Errorf("empty metadata: %+v, %v", z, err)
	}
	if _, err := domain.DecodeMetadata([]byte("{")); err == nil {
		t.Error("malformed metadata decoded without error")
	}
}
