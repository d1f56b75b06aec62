package harness

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// The checks must be able to fail: a store with a lost message, a
// duplicated one and a stranger's fact, and a read model that was never
// built, is reported as such.
func TestCheckStoreFindsLossDuplicatesAndStaleReadModel(t *testing.T) {
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	ctx := context.Background()
	orders := traffic.Plan(9, 3, []traffic.Scenario{traffic.Fulfilled})
	load := Load{Orders: len(orders), IDs: map[string]string{}, Scenario: map[string]traffic.Scenario{}}
	appendFact := func(o traffic.Order, step int, msgID, eventID string) {
		w, err := traffic.Encode(o.Steps[step], traffic.Bare, msgID, time.Now())
		require.NoError(t, err)
		p, err := ingest.Prepare(ingest.Message{MessageID: msgID, CorrelationID: o.ID, Type: o.Steps[step].Type,
			Envelope: domain.EnvelopeBare, Body: w.Body}, domain.DefaultCurrency(), time.Now())
		require.NoError(t, err)
		p.Event.ID = eventID // the test stores some facts under ids the ledger would not derive
		_, err = store.Append(ctx, p.Stream, domain.Any, p.Event)
		require.NoError(t, err)
	}
	for _, o := range orders {
		load.Scenario[o.ID] = o.Scenario
		for step := range o.Steps {
			id := traffic.MessageID(o.ID, step)
			load.IDs[id] = o.ID
			if o.ID == orders[0].ID && step == 2 {
				continue // lost
			}
			appendFact(o, step, id, domain.FactEventID(id))
		}
	}
	// The same message stored twice under two event ids: a duplicate.
	dup := traffic.MessageID(orders[1].ID, 2)
	appendFact(orders[1], 2, dup, domain.NameUUID("not", "deterministic"))
	// A fact of a message the run never sent.
	appendFact(orders[2], 0, "stranger", domain.FactEventID("stranger"))
	require.NoError(t, store.Close())

	var r Report
	expected, err := checkStore(ctx, dir, load, &r)
	require.NoError(t, err)
	assert.Equal(t, 1, r.LostFacts)
	assert.Equal(t, 1, r.DuplicateFacts)
	assert.Equal(t, 1, r.ForeignFacts)
	assert.Equal(t, 9, r.FactsStored) // 8 distinct messages, one of them twice
	assert.Equal(t, 3, r.ReplayChanges, "the read model was never built")
	assert.Equal(t, int64(3), r.ReplayOrders)
	assert.Positive(t, r.LifecycleLag, "nothing was published")
	assert.Equal(t, 1, r.StatusDiffers, "the order missing its completion is not FULFILLED")
	assert.False(t, r.OK())
	assert.NotEmpty(t, r.Problems)
	// Outbound: created, charged, fulfilled for the whole orders; the
	// duplicate completion causes nothing new.
	ab, cmds := 0, 0
	for _, qs := range expected {
		if len(qs) == 1 && qs[0] == CaptureQueue {
			ab++
		} else {
			cmds++
		}
	}
	assert.Equal(t, 3+3+2, ab, "AccelByte events")
	assert.Equal(t, 3+3+2, cmds, "BookWorm commands")
	assert.Contains(t, OutboundQueues(), CaptureQueue)
	assert.Equal(t, domain.AccelByteExchange, OutboundQueues()[CaptureQueue])
}

// The parked check fails both ways: a poison order left unparked, and a
// parked lane of an order that is not poison (or the wrong lane of one).
func TestCheckParkedMatchesThePoisonSetExactly(t *testing.T) {
	orders := traffic.Plan(11, 10, []traffic.Scenario{traffic.Fulfilled})
	poison := traffic.Poison(orders, 5)
	require.Len(t, poison, 2)
	load := Load{Poison: poison}
	lane := func(o traffic.Order, kind domain.OutboundKind) projections.Parked {
		return projections.Parked{OrderID: o.ID, Kind: kind, Reason: projections.ReasonUnbuildable}
	}

	var r Report
	checkParked([]projections.Parked{lane(orders[4], domain.KindAccelByte), lane(orders[9], domain.KindAccelByte)}, load, &r)
	assert.Empty(t, r.Failures())
	assert.Equal(t, 2, r.PoisonOrders)
	assert.Equal(t, 2, r.ParkedLanes)

	r = Report{}
	checkParked([]projections.Parked{lane(orders[4], domain.KindAccelByte), lane(orders[0], domain.KindAccelByte), lane(orders[9], domain.KindBookWorm)}, load, &r)
	assert.Equal(t, 1, r.PoisonUnparked, "orders[9]'s AccelByte lane is not parked")
	assert.Equal(t, 2, r.ParkedNotPoison, "orders[0] is not poison; orders[9]'s BookWorm lane is the wrong lane")
	assert.Len(t, r.Failures(), 2)
	assert.Greater(t, orders[4].Minor, int64(2_147_483_647))
}
