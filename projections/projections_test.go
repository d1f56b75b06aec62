package projections_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// The projections are tested against the real embedded store and read
// model; only the broker is behind the Publisher port here (the end-to-end
// tests in cmd/ledger use the real broker).

func openLog(t *testing.T) *bolt.Log {
	t.Helper()
	l, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func openRM(t *testing.T) *bolt.ReadModel {
	t.Helper()
	rm, err := bolt.OpenReadModel(filepath.Join(t.TempDir(), "readmodel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { rm.Close() })
	return rm
}

var (
	rules   = domain.DefaultRules()
	outCfg  = domain.OutboundConfig{Namespace: "bookworm", Currency: domain.Currency{Code: "USD", Decimals: 2}, CurrencySymbol: "$", CurrencyType: "REAL", DecimalsAsStrings: true}
	t0      = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	str     = func(s string) *string { return &s }
	orderA  = "0196a6b0-0000-7000-8000-00000000000a"
	orderB  = "0196a6b0-0000-7000-8000-00000000000b"
	basketA = "0196a6b0-0000-7000-8000-0000000000ba"
)

func appendFact(t *testing.T, l domain.EventLog, msgID string, f domain.Fact) domain.AppendResult {
	t.Helper()
	p, err := ingest.FactEvent(f, rules.Currency, domain.Metadata{CorrelationID: f.OrderID, MessageID: msgID, Envelope: domain.EnvelopeMassTransit})
	require.NoError(t, err)
	res, err := l.Append(context.Background(), p.Stream, domain.Any, p.Event)
	require.NoError(t, err)
	return res
}

func checkout(order string, at time.Time) domain.Fact {
	return domain.Fact{Type: domain.FactUserCheckedOut, OrderID: order, BasketID: basketA, FullName: str("Ada Lovelace"),
		Email: str("ada@example.com"), Amount: 9999, HasAmount: true, At: at}
}

func basketDeleted(order string, at time.Time) domain.Fact {
	return domain.Fact{Type: domain.FactBasketDeletedComplete, OrderID: order, BasketID: basketA, Amount: 9999, HasAmount: true, At: at}
}

func completed(order string, at time.Time) domain.Fact {
	return domain.Fact{Type: domain.FactOrderCompleted, OrderID: order, BasketID: basketA, FullName: str("Ada Lovelace"),
		Email: str("ada@example.com"), Amount: 9999, HasAmount: true, At: at}
}

// recorder is the Publisher port in front of a broker that can be made to
// fail, to see the checkpoint wait for confirms.
type recorder struct {
	mu    sync.Mutex
	fails int
	calls int
	got   []domain.Outbound
}

func (r *recorder) Publish(ctx context.Context, msgs []domain.Outbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fails > 0 {
		r.fails--
		return errors.New("broker nacked")
	}
	r.got = append(r.got, msgs...)
	return nil
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.got {
		out = append(out, m.Name)
	}
	return out
}

func (r *recorder) ids() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]int{}
	for _, m := range r.got {
		ids[m.MessageID]++
	}
	return ids
}

func runFor(t *testing.T, fn func(ctx context.Context) error, until func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	require.Eventually(t, until, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestLifecyclePublishesEachTransitionOnceAndResumesFromCheckpoint(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	appendFact(t, l, "m3", checkout(orderB, t0))

	pub := &recorder{fails: 2}
	lc := projections.NewLifecycle(l, pub, rm, projections.LifecycleConfig{Rules: rules, Outbound: outCfg})
	runFor(t, lc.Run, func() bool { return len(pub.names()) == 6 })
	assert.ElementsMatch(t, []string{"orderCreated", "PlaceOrderCommand", "orderCharged", "DeleteBasketCompleteCommand", "orderCreated", "PlaceOrderCommand"}, pub.names())
	assert.GreaterOrEqual(t, pub.calls, 3, "two failed publishes were retried")

	cp, err := rm.Checkpoint(context.Background(), projections.LifecycleName)
	require.NoError(t, err)
	require.NotNil(t, cp)
	head, _, err := l.Head(context.Background())
	require.NoError(t, err)
	assert.Equal(t, head, *cp, "checkpoint covers every published event")

	// A restart publishes nothing old, and only the new fact's messages.
	appendFact(t, l, "m4", completed(orderA, t0.Add(2*time.Minute)))
	pub2 := &recorder{}
	lc2 := projections.NewLifecycle(l, pub2, rm, projections.LifecycleConfig{Rules: rules, Outbound: outCfg})
	runFor(t, lc2.Run, func() bool { return len(pub2.names()) >= 2 })
	time.Sleep(50 * time.Millisecond)
	assert.ElementsMatch(t, []string{"orderFulfilled", "CompleteOrderCommand"}, pub2.names())
}

func TestLifecycleRepublishAfterCrashCarriesSameIDs(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "m1", checkout(orderA, t0))
	first := &recorder{}
	runFor(t, projections.NewLifecycle(l, first, rm, projections.LifecycleConfig{Rules: rules, Outbound: outCfg}).Run,
		func() bool { return len(first.names()) == 2 })

	// Forget the checkpoint, as if the process died between the confirm and
	// the checkpoint write: the same messages go out with the same ids.
	rm2 := openRM(t)
	second := &recorder{}
	runFor(t, projections.NewLifecycle(l, second, rm2, projections.LifecycleConfig{Rules: rules, Outbound: outCfg}).Run,
		func() bool { return len(second.names()) == 2 })
	assert.Equal(t, first.ids(), second.ids())
}

func TestOrdersReadModelMatchesFold(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute))) // redelivery: same id
	appendFact(t, l, "m3", completed(orderA, t0.Add(2*time.Minute)))
	appendFact(t, l, "m4", checkout(orderB, t0))

	o := projections.NewOrders(l, rm, projections.ReadModelConfig{Rules: rules})
	runFor(t, o.Run, func() bool {
		s, ok, _ := rm.Summary(context.Background(), orderA)
		b, okB, _ := rm.Summary(context.Background(), orderB)
		return ok && okB && s.Status == domain.StatusFulfilled && b.Status == domain.StatusInit
	})
	s, _, err := rm.Summary(context.Background(), orderA)
	require.NoError(t, err)
	assert.Equal(t, 3, s.Facts)
	assert.Equal(t, int64(9999), s.Money.Captured)
	assert.Equal(t, int64(9999), s.Money.Net)
	b, _, err := rm.Summary(context.Background(), orderB)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(rules.PlacementTimeout), b.PlacementDeadline.UTC(), "INIT order has its placement deadline")
}

func TestTimeoutsAppendEachTimeoutOnceAndExpireTheOrder(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "m1", checkout(orderA, t0))
	ctx := context.Background()
	now := t0
	tm := projections.NewTimeouts(l, rm, projections.TimeoutsConfig{Currency: rules.Currency, Now: func() time.Time { return now }})
	orders := projections.NewOrders(l, rm, projections.ReadModelConfig{Rules: rules})
	catchUp := func(want func(projections.Summary) bool) {
		runFor(t, orders.Run, func() bool {
			s, ok, _ := rm.Summary(ctx, orderA)
			return ok && want(s)
		})
	}
	catchUp(func(s projections.Summary) bool { return s.PlacementAttempts == 1 })

	n, err := tm.Tick(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing is due before the deadline")

	for attempt := 1; attempt <= rules.MaxPlacementAttempts; attempt++ {
		now = now.Add(rules.PlacementTimeout + time.Second)
		n, err := tm.Tick(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "time-out %d appended", attempt)
		n, err = tm.Tick(ctx) // the read model has not caught up yet: same id, nothing new
		require.NoError(t, err)
		assert.Equal(t, 0, n)
		if attempt < rules.MaxPlacementAttempts {
			catchUp(func(s projections.Summary) bool { return s.PlacementAttempts == attempt+1 })
		}
	}
	catchUp(func(s projections.Summary) bool { return s.Status == domain.StatusClosed })
	evs, err := l.ReadStream(ctx, domain.StreamName(orderA), 0, domain.Forwards, 0)
	require.NoError(t, err)
	assert.Len(t, evs, 1+rules.MaxPlacementAttempts)
}

func TestReplayWithChangedRuleReportsDiffAndRestatesOnce(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	ctx := context.Background()
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	appendFact(t, l, "m3", domain.Fact{Type: domain.FactOrderRefundRequested, OrderID: orderA, Reason: "customer asked", At: t0.Add(2 * time.Minute)})
	appendFact(t, l, "m4", checkout(orderB, t0))

	// The "old code": refunds wait for the payment provider.
	old := rules
	old.RefundSettlement = domain.SettleProvider
	runFor(t, projections.NewOrders(l, rm, projections.ReadModelConfig{Rules: old}).Run, func() bool {
		s, ok, _ := rm.Summary(ctx, orderA)
		return ok && s.Status == domain.StatusRefunding
	})

	// The "fix": immediate settlement. The dry run reports order A only.
	res, err := projections.Replay(ctx, l, projections.ReplayOptions{Rules: rules, Current: rm})
	require.NoError(t, err)
	assert.EqualValues(t, 4, res.Facts)
	assert.EqualValues(t, 2, res.Orders)
	require.Len(t, res.Changes, 1)
	ch := res.Changes[0]
	assert.Equal(t, orderA, ch.OrderID)
	assert.Equal(t, domain.StatusRefunding, ch.Before.Status)
	assert.Equal(t, domain.StatusRefunded, ch.After.Status)
	assert.Equal(t, int64(9999), ch.After.Money.Refunded)

	n, err := projections.Restate(ctx, l, rules.Currency, res.Changes)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = projections.Restate(ctx, l, rules.Currency, res.Changes)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "restating twice adds nothing")

	// The publisher tells downstream once.
	pub := &recorder{}
	runFor(t, projections.NewLifecycle(l, pub, openRM(t), projections.LifecycleConfig{Rules: rules, Outbound: outCfg}).Run,
		func() bool {
			for _, n := range pub.names() {
				if n == "orderStatusUpdated" {
					return true
				}
			}
			return false
		})
	count := 0
	for _, n := range pub.names() {
		if n == "orderStatusUpdated" {
			count++
		}
	}
	assert.Equal(t, 1, count)
}

func TestAuditShowsEveryFactWithTotalsAndOutbound(t *testing.T) {
	l := openLog(t)
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m3", completed(orderA, t0.Add(2*time.Minute))) // before the charge: held
	appendFact(t, l, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	appendFact(t, l, "m9", domain.Fact{Type: domain.FactPaymentChargeback, OrderID: orderA, Amount: 9999, HasAmount: true, ProviderRef: "psp_1", Reason: "fraud", At: t0.Add(time.Hour)})

	rep, err := projections.Audit(context.Background(), l, rules, outCfg, orderA)
	require.NoError(t, err)
	require.Len(t, rep.Entries, 4)
	assert.Equal(t, domain.StatusInit, rep.Entries[0].StatusAfter)
	assert.Equal(t, domain.DispHeld, rep.Entries[1].Disposition)
	assert.Equal(t, "m3", rep.Entries[1].MessageID)
	// The charge releases the held completion: both transitions on entry 2.
	assert.Equal(t, domain.StatusFulfilled, rep.Entries[2].StatusAfter)
	assert.Equal(t, int64(9999), rep.Entries[2].Delta.Captured)
	var outs []string
	for _, o := range rep.Entries[2].Outbound {
		outs = append(outs, o.Name)
		assert.NotEmpty(t, o.MessageID)
	}
	assert.Subset(t, outs, []string{"orderCharged", "DeleteBasketCompleteCommand", "orderFulfilled", "CompleteOrderCommand"})
	assert.Equal(t, domain.StatusChargeback, rep.Final.Status)
	assert.Equal(t, int64(9999), rep.Final.Money.ChargedBack)
	assert.Equal(t, int64(0), rep.Final.Money.Net)
}

// memSink collects replayed rows.
type memSink struct {
	rows map[string]projections.Summary
}

func (m *memSink) Put(_ context.Context, rows []projections.Summary) error {
	for _, r := range rows {
		m.rows[r.OrderID] = r
	}
	return nil
}

func TestReplayWithATinyCacheMatchesAFullOne(t *testing.T) {
	l := openLog(t)
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("0196a6b0-0000-7000-8000-%012x", 0x100+i))
	}
	// Interleave the orders so that a tiny cache forgets them mid-story.
	for step := range 3 {
		for i, id := range ids {
			at := t0.Add(time.Duration(step) * time.Minute)
			switch {
			case step == 0:
				appendFact(t, l, fmt.Sprintf("%s-0", id), checkout(id, at))
			case step == 1 && i%3 != 0:
				appendFact(t, l, fmt.Sprintf("%s-1", id), basketDeleted(id, at))
			case step == 2 && i%2 == 0:
				appendFact(t, l, fmt.Sprintf("%s-2", id), completed(id, at))
			}
		}
	}
	full, tiny := &memSink{rows: map[string]projections.Summary{}}, &memSink{rows: map[string]projections.Summary{}}
	resFull, err := projections.Replay(ctx, l, projections.ReplayOptions{Rules: rules, Sink: full})
	require.NoError(t, err)
	resTiny, err := projections.Replay(ctx, l, projections.ReplayOptions{Rules: rules, Sink: tiny, CacheSize: 2, PageSize: 5})
	require.NoError(t, err)
	assert.Equal(t, resFull.Facts, resTiny.Facts)
	assert.EqualValues(t, len(ids), resTiny.Orders)
	require.Len(t, tiny.rows, len(ids))
	assert.Equal(t, full.rows, tiny.rows)
	for i, id := range ids {
		want := domain.StatusInit
		if i%3 != 0 {
			want = domain.StatusCharged
			if i%2 == 0 {
				want = domain.StatusFulfilled
			}
		}
		assert.Equal(t, want, tiny.rows[id].Status, "order %d", i)
	}
}
