package projections_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// TestPropagationThroughTheStore: the envelope ids a fact is stored with
// come back for the fold, and a placement time-out is stored in the
// checkout's conversation, so its PlaceOrderCommand continues it.
func TestPropagationThroughTheStore(t *testing.T) {
	const (
		conv = "0196a6b0-0000-7000-8000-0000000000c1"
		corr = "0196a6b0-0000-7000-8000-0000000000c2"
		msg  = "0196a6b0-0000-7000-8000-0000000000c3"
	)
	ctx := context.Background()
	l := openLog(t)
	co := checkout(orderA, t0)
	p, err := ingest.FactEvent(co, rules.Currency, domain.Metadata{CorrelationID: corr, SentCorrelationID: corr,
		MessageID: msg, ConversationID: conv, Envelope: domain.EnvelopeMassTransit})
	require.NoError(t, err)
	_, err = l.Append(ctx, p.Stream, domain.Any, p.Event)
	require.NoError(t, err)
	ok, err := projections.AppendTimeout(ctx, l, rules.Currency, projections.Due{OrderID: orderA, Deadline: t0.Add(rules.PlacementTimeout), Attempt: 1})
	require.NoError(t, err)
	require.True(t, ok)

	recs, err := l.ReadStream(ctx, domain.StreamName(orderA), 0, domain.Forwards, 10)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	first, err := projections.EventOf(recs[0])
	require.NoError(t, err)
	assert.Equal(t, msg, first.MessageID)
	assert.Equal(t, corr, first.CorrelationID)
	assert.Equal(t, conv, first.ConversationID)
	second, err := projections.EventOf(recs[1])
	require.NoError(t, err)
	assert.Equal(t, conv, second.ConversationID, "the time-out continues the checkout's conversation")
	assert.Equal(t, orderA, second.CorrelationID)

	f := domain.NewFolder(rules, domain.State{})
	f.Apply(first)
	out := f.Apply(second)
	require.Len(t, out.Transitions, 1)
	msgs, err := domain.Intents(outCfg, domain.StreamName(orderA), f.State(), out.Transitions[0])
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, domain.CommandPlaceOrder, msgs[0].Name)
	assert.Equal(t, conv, msgs[0].ConversationID)
	assert.Equal(t, orderA, msgs[0].InitiatorID, "the time-out's own correlation initiates")

	// Stored before the envelope's own correlation was kept apart: a
	// $correlationId other than the order id is the envelope's.
	legacy, err := ingest.FactEvent(checkout(orderB, t0), rules.Currency, domain.Metadata{CorrelationID: corr, MessageID: msg})
	require.NoError(t, err)
	ev, err := projections.EventOf(domain.RecordedEvent{Stream: legacy.Stream, ID: legacy.Event.ID, Type: legacy.Event.Type,
		Data: legacy.Event.Data, Metadata: legacy.Event.Metadata})
	require.NoError(t, err)
	assert.Equal(t, corr, ev.CorrelationID)
	legacy, err = ingest.FactEvent(checkout(orderB, t0), rules.Currency, domain.Metadata{CorrelationID: orderB, MessageID: msg})
	require.NoError(t, err)
	ev, err = projections.EventOf(domain.RecordedEvent{Stream: legacy.Stream, ID: legacy.Event.ID, Type: legacy.Event.Type,
		Data: legacy.Event.Data, Metadata: legacy.Event.Metadata})
	require.NoError(t, err)
	assert.Empty(t, ev.CorrelationID, "the order id was the fallback, not the envelope's")
}
