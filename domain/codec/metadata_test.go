package codec_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

func TestMetadataUsesEventStoreDBKeysAndRoundTrips(t *testing.T) {
	m := domain.Metadata{
		CorrelationID: "0196a6b0-0000-7000-8000-00000000000a", CausationID: "m1", MessageID: "m1",
		Envelope: "masstransit", Exchange: "BookWorm.Contracts:UserCheckedOutIntegrationEvent",
		ReceivedAt: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), Redelivered: true,
	}
	b, err := codec.EncodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"$correlationId":`, `"$causationId":`, `"messageId":`, `"receivedAt":`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("stored metadata %s lacks %s", b, key)
		}
	}
	got, err := codec.DecodeMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Errorf("round trip: got %+v, want %+v", got, m)
	}
	if z, err := codec.DecodeMetadata(nil); err != nil || z != (domain.Metadata{}) {
		t.Errorf("empty metadata: %+v, %v", z, err)
	}
	if _, err := codec.DecodeMetadata([]byte("{")); err == nil {
		t.Error("malformed metadata decoded without error")
	}
}
