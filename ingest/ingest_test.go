package ingest_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/ingest"
)

const (
	orderA  = "0196a6b0-0000-7000-8000-00000000000a"
	orderB  = "0196a6b0-0000-7000-8000-00000000000b"
	basketA = "0196a6b0-0000-7000-8000-0000000000ba"
)

var (
	cur      = domain.DefaultCurrency()
	received = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
)

func checkout(order, msgID string) ingest.Message {
	return ingest.Message{
		MessageID: msgID, CorrelationID: "0196a6b0-0000-7000-8000-0000000000cc", Type: string(domain.FactUserCheckedOut),
		Envelope: domain.EnvelopeMassTransit, Exchange: domain.InboundExchange(domain.FactUserCheckedOut),
		Body:   []byte(`{"orderId":"` + order + `","basketId":"` + basketA + `","fullName":"Ada","email":null,"totalMoney":"99.99"}`),
		SentAt: received.Add(-time.Second),
	}
}

func openLog(t *testing.T) *bolt.Log {
	t.Helper()
	l, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestPrepareBuildsTheStoredFact(t *testing.T) {
	m := checkout(orderA, "msg-1")
	p, err := ingest.Prepare(m, cur, received)
	require.NoError(t, err)
	assert.Equal(t, domain.StreamName(orderA), p.Stream)
	assert.Equal(t, domain.FactEventID("msg-1"), p.Event.ID, "the event id derives from the message identity")
	assert.Equal(t, string(domain.FactUserCheckedOut), p.Event.Type)
	assert.Equal(t, int64(9999), p.Fact.Amount)
	assert.Equal(t, m.SentAt, p.Fact.At, "the envelope's time wins")

	f, err := codec.DecodeFact(p.Event.Type, p.Event.Data)
	require.NoError(t, err)
	assert.Equal(t, p.Fact, f, "the stored data decodes to the same fact")
	meta, err := codec.DecodeMetadata(p.Event.Metadata)
	require.NoError(t, err)
	assert.Equal(t, domain.Metadata{
		CorrelationID: m.CorrelationID, SentCorrelationID: m.CorrelationID, CausationID: "msg-1", MessageID: "msg-1", Envelope: domain.EnvelopeMassTransit,
		Exchange: m.Exchange, ReceivedAt: received,
	}, meta)

	// Without a correlation id the order is the correlation (BookWorm's saga).
	m.CorrelationID = ""
	p, err = ingest.Prepare(m, cur, received)
	require.NoError(t, err)
	meta, err = codec.DecodeMetadata(p.Event.Metadata)
	require.NoError(t, err)
	assert.Equal(t, orderA, meta.CorrelationID)

	// Without any time in the envelope or the body, the receipt time.
	m.SentAt = time.Time{}
	p, err = ingest.Prepare(m, cur, received)
	require.NoError(t, err)
	assert.Equal(t, received, p.Fact.At)
}

func TestPrepareRejectsInvalidInput(t *testing.T) {
	cases := map[string]func(*ingest.Message){
		"unknown type":      func(m *ingest.Message) { m.Type = "SomethingElse" },
		"ledger's own fact": func(m *ingest.Message) { m.Type = string(domain.FactPlacementTimedOut) },
		"not json":          func(m *ingest.Message) { m.Body = []byte("{") },
		"no order id":       func(m *ingest.Message) { m.Body = []byte(`{"basketId":"` + basketA + `","totalMoney":1}`) },
		"float money": func(m *ingest.Message) {
			m.Body = []byte(`{"orderId":"` + orderA + `","basketId":"` + basketA + `","totalMoney":1.001}`)
		},
	}
	for name, tweak := range cases {
		t.Run(name, func(t *testing.T) {
			m := checkout(orderA, "msg-1")
			tweak(&m)
			_, err := ingest.Prepare(m, cur, received)
			require.Error(t, err)
			assert.ErrorIs(t, err, domain.ErrInvalidFact)
		})
	}
}

type counts struct {
	mu sync.Mutex
	n  map[ingest.Class]int
}

func (c *counts) Ingested(cl ingest.Class) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[cl]++
}

func TestHandleClassifiesEachMessageOnce(t *testing.T) {
	l := openLog(t)
	obs := &counts{n: map[ingest.Class]int{}}
	in := &ingest.Ingester{Log: l, Currency: cur, Now: func() time.Time { return received }, Observer: obs}
	ctx := context.Background()

	bad := checkout(orderB, "msg-bad")
	bad.Body = []byte(`{"orderId":"not-a-uuid"}`)
	out := in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1"), bad, checkout(orderB, "msg-2"), checkout(orderA, "msg-1")})
	require.Len(t, out, 4)
	assert.Equal(t, ingest.Stored, out[0].Class)
	assert.Equal(t, ingest.Invalid, out[1].Class)
	assert.Equal(t, "invalid message", out[1].Reason)
	assert.ErrorIs(t, out[1].Err, domain.ErrInvalidFact)
	assert.Equal(t, ingest.Stored, out[2].Class)
	assert.Equal(t, ingest.Duplicate, out[3].Class, "the same message twice in one batch is stored once")
	assert.Equal(t, map[ingest.Class]int{ingest.Stored: 2, ingest.Invalid: 1, ingest.Duplicate: 1}, obs.n)

	// A redelivery in a later batch is a duplicate too, and the stream holds one fact.
	out = in.Handle(ctx, []ingest.Message{checkout(orderA, "msg-1")})
	assert.Equal(t, ingest.Duplicate, out[0].Class)
	evs, err := l.ReadStream(ctx, domain.StreamName(orderA), 0, domain.Forwards, 0)
	require.NoError(t, err)
	assert.Len(t, evs, 1)
	all, err := l.ReadAll(ctx, nil, 0)
	require.NoError(t, err)
	assert.Len(t, all, 2, "the invalid message was not appended anywhere")
}

func TestHandleKeepsOrderWithinAStream(t *testing.T) {
	l := openLog(t)
	in := &ingest.Ingester{Log: l, Currency: cur, Parallel: 4}
	ctx := context.Background()
	var msgs []ingest.Message
	for i := range 50 {
		id := "msg-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		order := orderA
		if i%2 == 1 {
			order = orderB
		}
		m := checkout(order, id)
		m.SentAt = received.Add(time.Duration(i) * time.Second)
		msgs = append(msgs, m)
	}
	for _, o := range in.Handle(ctx, msgs) {
		require.Equal(t, ingest.Stored, o.Class, o.Err)
	}
	for _, order := range []string{orderA, orderB} {
		evs, err := l.ReadStream(ctx, domain.StreamName(order), 0, domain.Forwards, 0)
		require.NoError(t, err)
		require.Len(t, evs, 25)
		var last time.Time
		for _, e := range evs {
			f, err := codec.DecodeFact(e.Type, e.Data)
			require.NoError(t, err)
			assert.True(t, f.At.After(last), "stream %s in message order", order)
			last = f.At
		}
	}
}

func TestHandleRetriesWhenTheStoreIsGone(t *testing.T) {
	l := openLog(t)
	in := &ingest.Ingester{Log: l, Currency: cur}
	require.NoError(t, l.Close())
	out := in.Handle(context.Background(), []ingest.Message{checkout(orderA, "msg-1")})
	assert.Equal(t, ingest.Transient, out[0].Class)
	assert.Equal(t, "store unavailable", out[0].Reason)
	assert.ErrorIs(t, out[0].Err, domain.ErrClosed)
}
