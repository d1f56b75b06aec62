package domain_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

func sealEvent() domain.RecordedEvent {
	return domain.RecordedEvent{Stream: "order-1a2b24a2-e46b-4c48-a772-05d2f3801d6a", Revision: 3,
		Position: domain.Position{Commit: 9, Prepare: 9}, ID: "9e9c7187-a8c5-54a4-98f5-c1bcf9655012",
		Type: "PaymentRefundedIntegrationEvent", Data: []byte(`{"amount":"1.00"}`), Metadata: []byte(`{"m":1}`),
		Created: time.Date(2026, 11, 2, 10, 0, 0, 123456789, time.UTC)}
}

// The encoding is what stored seals were made of: it must never change.
func TestChainIsPinned(t *testing.T) {
	c := domain.NewChain(domain.ChainHash{})
	d := c.Add(sealEvent())
	const wantDigest, wantHash = "266d4ec6", "9310bcd2f09c67eef3673e53b53ebcc59ae0c726a269ddd162ca196749c47548"
	if got := hex.EncodeToString(d[:]); got != wantDigest {
		t.Errorf("digest %s, want %s", got, wantDigest)
	}
	if got := c.Sum().String(); got != wantHash {
		t.Errorf("hash %s, want %s", got, wantHash)
	}
}

// Every field but the position changes the digest and the chain; the
// fields are length-prefixed, so moving bytes between them does too.
func TestChainCoversEveryFieldButThePosition(t *testing.T) {
	base := sealEvent()
	digest := func(e domain.RecordedEvent) domain.Digest { return domain.NewChain(domain.ChainHash{}).Add(e) }
	want := digest(base)
	moved := base
	moved.Position = domain.Position{Commit: 99, Prepare: 98}
	if digest(moved) != want {
		t.Error("the position is where the store put the event: not hashed")
	}
	for name, edit := range map[string]func(e *domain.RecordedEvent){
		"stream":   func(e *domain.RecordedEvent) { e.Stream += "x" },
		"revision": func(e *domain.RecordedEvent) { e.Revision++ },
		"id":       func(e *domain.RecordedEvent) { e.ID = "9e9c7187-a8c5-54a4-98f5-c1bcf9655013" },
		"type":     func(e *domain.RecordedEvent) { e.Type = "PaymentChargebackIntegrationEvent" },
		"data":     func(e *domain.RecordedEvent) { e.Data = []byte(`{"amount":"1.01"}`) },
		"metadata": func(e *domain.RecordedEvent) { e.Metadata = nil },
		"created":  func(e *domain.RecordedEvent) { e.Created = e.Created.Add(time.Nanosecond) },
		"data into metadata": func(e *domain.RecordedEvent) {
			e.Data, e.Metadata = []byte(`{"amount":"1.00"}{`), []byte(`"m":1}`)
		},
	} {
		e := base
		edit(&e)
		if digest(e) == want {
			t.Errorf("%s: same digest", name)
		}
	}
	zero := base
	zero.Created = time.Time{}
	if a, b := domain.AppendSealEncoding(nil, zero), domain.AppendSealEncoding(nil, zero); string(a) != string(b) || !strings.HasSuffix(string(a), string(make([]byte, 8))) {
		t.Errorf("an unknown created time encodes as 0")
	}

	// The chain depends on what came before; the digest does not.
	a, b := domain.NewChain(domain.ChainHash{}), domain.NewChain(domain.ChainHash{1})
	if a.Add(base) != b.Add(base) || a.Sum() == b.Sum() {
		t.Error("digests are per event, the chain is over the history")
	}
	c1, c2 := domain.NewChain(domain.ChainHash{}), domain.NewChain(domain.ChainHash{})
	other := base
	other.Revision++
	c1.Add(base)
	c1.Add(other)
	c2.Add(other)
	c2.Add(base)
	if c1.Sum() == c2.Sum() {
		t.Error("the chain is over the order of events")
	}
}

func TestSealValidateAndJSON(t *testing.T) {
	h := domain.NewChain(domain.ChainHash{}).Sum().String()
	after := domain.Position{Commit: 4, Prepare: 4}
	ok := domain.Seal{Seq: 2, After: &after, Through: domain.Position{Commit: 9, Prepare: 9}, Count: 2,
		Hash: strings.Repeat("ab", 32), Prev: h, Digests: []byte{1, 2, 3, 4, 5, 6, 7, 8}, SealedAt: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ok)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"seq":2,"after":{"commit":4,"prepare":4},"through":{"commit":9,"prepare":9},"count":2,` +
		`"hash":"abababababababababababababababababababababababababababababababab",` +
		`"prev":"0000000000000000000000000000000000000000000000000000000000000000","digests":"AQIDBAUGBwg=","sealedAt":"2026-11-02T00:00:00Z"}`
	if string(b) != want {
		t.Errorf("json\n %s\nwant\n %s", b, want)
	}
	if ok.Digest(1) != (domain.Digest{5, 6, 7, 8}) {
		t.Errorf("digest 1: %v", ok.Digest(1))
	}
	bad := ok
	bad.Seq, bad.Count, bad.Hash, bad.Prev = 0, 3, "xyz", strings.Repeat("g", 64)
	bad.Through = after
	err = bad.Validate()
	if !errors.Is(err, domain.ErrInvalidSeal) {
		t.Fatalf("%v: want ErrInvalidSeal", err)
	}
	for _, w := range []string{"seq: must be at least 1", "digests: 8 bytes for 3 events, want 12", "through 4/4: must be after 4/4",
		`hash: hash "xyz": want 64 hex digits`, "prev: hash"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v: want %q", err, w)
		}
	}
	if _, err := domain.ParseChainHash(h); err != nil {
		t.Error(err)
	}
	if domain.SealEventID(1, h, "a") == domain.SealEventID(1, h, "b") || domain.SealEventID(1, h, "a") != domain.SealEventID(1, h, "a") {
		t.Error("seal ids: per term, deterministic")
	}
	if !domain.SealedStream(domain.StreamName("1a2b24a2-e46b-4c48-a772-05d2f3801d6a")) || domain.SealedStream(domain.SealStream) {
		t.Error("seals cover the order streams only")
	}
}
