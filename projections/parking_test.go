package projections_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// refuser is the Publisher port in front of a broker that refuses what
// rule says, message by message, as the rabbitmq Publisher reports it.
type refuser struct {
	mu       sync.Mutex
	rule     func(m domain.Outbound) (refuse, permanent bool)
	attempts map[string]int // publishes per message id
	got      []domain.Outbound
}

func (r *refuser) Publish(_ context.Context, msgs []domain.Outbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attempts == nil {
		r.attempts = map[string]int{}
	}
	var refused []domain.Refusal
	for _, m := range msgs {
		r.attempts[m.MessageID]++
		if r.rule != nil {
			if no, perm := r.rule(m); no {
				refused = append(refused, domain.Refusal{MessageID: m.MessageID, Permanent: perm, Err: errors.New("refused by test")})
				continue
			}
		}
		r.got = append(r.got, m)
	}
	if refused != nil {
		return &domain.RefusedError{Refusals: refused}
	}
	return nil
}

func (r *refuser) setRule(rule func(m domain.Outbound) (bool, bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rule = rule
}

// sent lists "order kind name" of confirmed messages of order, in order.
func (r *refuser) sent(order string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.got {
		if m.OrderID == order {
			out = append(out, m.Name)
		}
	}
	return out
}

func (r *refuser) tries(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

func (r *refuser) confirmedIDs() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]int{}
	for _, m := range r.got {
		ids[m.MessageID]++
	}
	return ids
}

// parkObs records parks and unparks.
type parkObs struct {
	projections.NopObserver
	mu              sync.Mutex
	parked, release []projections.Parked
}

func (o *parkObs) Parked(_ string, p projections.Parked) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.parked = append(o.parked, p)
}

func (o *parkObs) Unparked(_ string, p projections.Parked) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.release = append(o.release, p)
}

const bigTotal = 3_000_000_000 // 30,000,000.00 USD: above the AccelByte int32 price

func withAmount(f domain.Fact, amount int64) domain.Fact {
	f.Amount = amount
	return f
}

// running starts lc and returns a stop that waits for Run.
func running(t *testing.T, lc *projections.Lifecycle) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lc.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-done)
		}
	}
	t.Cleanup(stop)
	return stop
}

func lifecycleCfg(obs projections.Observer) projections.LifecycleConfig {
	return projections.LifecycleConfig{Rules: rules, Outbound: outCfg, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Observer: obs}
}

func parked(t *testing.T, ps projections.ParkStore) []projections.Parked {
	t.Helper()
	got, err := ps.ListParked(context.Background())
	require.NoError(t, err)
	return got
}

func caughtUp(t *testing.T, l domain.EventLog, rm projections.CheckpointStore) bool {
	head, _, err := l.Head(context.Background())
	require.NoError(t, err)
	cp, err := rm.Checkpoint(context.Background(), projections.LifecycleName)
	require.NoError(t, err)
	return cp != nil && *cp == head
}

// A service stopped while its publisher starts up shuts down cleanly: a
// start-up read cut short by the stop is no failure.
func TestLifecycleStoppedWhileStartingReturnsNil(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "m1", checkout(orderA, t0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, projections.NewLifecycle(l, &refuser{}, rm, lifecycleCfg(nil)).Run(ctx))
}

func TestOverLargeOrderParksOnlyItsAccelByteLane(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	appendFact(t, l, "m1", withAmount(checkout(orderA, t0), bigTotal))
	appendFact(t, l, "m2", checkout(orderB, t0))
	appendFact(t, l, "m3", withAmount(basketDeleted(orderA, t0.Add(time.Minute)), bigTotal))
	pub, obs := &refuser{}, &parkObs{}
	stop := running(t, projections.NewLifecycle(l, pub, rm, lifecycleCfg(obs)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond, "the checkpoint never waits on a parked order")
	assert.Equal(t, []string{"PlaceOrderCommand", "DeleteBasketCompleteCommand"}, pub.sent(orderA), "BookWorm's decimals carry the total")
	assert.Equal(t, []string{"orderCreated", "PlaceOrderCommand"}, pub.sent(orderB), "every other order goes on")

	ps := parked(t, rm)
	require.Len(t, ps, 1)
	p := ps[0]
	assert.Equal(t, orderA, p.OrderID)
	assert.Equal(t, domain.StreamName(orderA), p.Stream)
	assert.Equal(t, domain.KindAccelByte, p.Kind)
	assert.EqualValues(t, 0, p.FromRevision)
	assert.Equal(t, "orderCreated", p.Message)
	assert.Equal(t, projections.ReasonUnbuildable, p.Reason)
	assert.Contains(t, p.Detail, "int32")
	assert.Len(t, obs.parked, 1)
	stop()

	// A restart keeps the park and holds the lane's later messages.
	appendFact(t, l, "m4", withAmount(completed(orderA, t0.Add(2*time.Minute)), bigTotal))
	pub2 := &refuser{}
	lc := projections.NewLifecycle(l, pub2, rm, lifecycleCfg(nil))
	running(t, lc)
	require.Eventually(t, func() bool { return len(pub2.sent(orderA)) == 1 && caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"CompleteOrderCommand"}, pub2.sent(orderA))
	assert.Equal(t, []projections.Parked{p}, parked(t, rm))

	// Nothing can fix the total: a retry parks it again, counting.
	res, err := lc.RetryParked(context.Background(), nil, true)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.False(t, res[0].Unparked)
	assert.Zero(t, res[0].Published)
	require.NotNil(t, res[0].Parked)
	assert.Equal(t, 1, res[0].Parked.Retries)
	assert.Equal(t, projections.ReasonUnbuildable, res[0].Parked.Reason)
	assert.Equal(t, p.ParkedAt, res[0].Parked.ParkedAt, "first parked")
	assert.Equal(t, 1, parked(t, rm)[0].Retries)
	assert.Equal(t, []string{"CompleteOrderCommand"}, pub2.sent(orderA))

	rep, err := projections.Audit(context.Background(), l, rules, outCfg, orderA)
	require.NoError(t, err)
	rep.Parked, err = projections.ParkedOf(context.Background(), rm, orderA)
	require.NoError(t, err)
	require.Len(t, rep.Parked, 1)
	assert.Contains(t, rep.Entries[0].Error, "int32")
	require.Len(t, rep.Entries[0].Outbound, 1, "the command is still listed")
	assert.Equal(t, "PlaceOrderCommand", rep.Entries[0].Outbound[0].Name)
}

func TestPermanentRefusalParksTheLaneAndRetryPublishesHeldMessagesInOrder(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	pub, obs := &refuser{}, &parkObs{}
	pub.setRule(func(m domain.Outbound) (bool, bool) {
		return m.OrderID == orderA && m.Kind == domain.KindBookWorm, true
	})
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", checkout(orderB, t0))
	lc := projections.NewLifecycle(l, pub, rm, lifecycleCfg(obs))
	running(t, lc)
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	ps := parked(t, rm)
	require.Len(t, ps, 1)
	assert.Equal(t, domain.KindBookWorm, ps[0].Kind)
	assert.Equal(t, projections.ReasonRefused, ps[0].Reason)
	assert.Equal(t, "PlaceOrderCommand", ps[0].Message)
	assert.Equal(t, 1, pub.tries(ps[0].MessageID), "a permanent refusal is not sent again")

	// Later facts: the lane's commands are held, its events go out.
	appendFact(t, l, "m3", basketDeleted(orderA, t0.Add(time.Minute)))
	appendFact(t, l, "m4", completed(orderA, t0.Add(2*time.Minute)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"orderCreated", "orderCharged", "orderFulfilled"}, pub.sent(orderA))
	assert.Equal(t, []string{"orderCreated", "PlaceOrderCommand"}, pub.sent(orderB))

	// Still broken: parked again, one more retry counted.
	res, err := lc.RetryParked(context.Background(), []string{orderA}, false)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.False(t, res[0].Unparked)
	assert.Equal(t, 1, res[0].Parked.Retries)

	// After the fix the held commands go out in order and the lane is free.
	pub.setRule(nil)
	res, err = lc.RetryParked(context.Background(), []string{orderA, orderB}, false)
	require.NoError(t, err)
	require.Len(t, res, 2)
	assert.True(t, res[0].Unparked)
	assert.Equal(t, 3, res[0].Published)
	assert.Equal(t, orderB, res[1].OrderID)
	assert.ErrorIs(t, res[1].Err, projections.ErrNotParked, "one id that is not parked does not fail the others")
	assert.NotEmpty(t, res[1].Error)
	assert.Equal(t, []string{"orderCreated", "orderCharged", "orderFulfilled",
		"PlaceOrderCommand", "DeleteBasketCompleteCommand", "CompleteOrderCommand"}, pub.sent(orderA))
	assert.Empty(t, parked(t, rm))
	assert.Len(t, obs.release, 1)

	// Unparked: the order's next command goes out as usual.
	appendFact(t, l, "m5", domain.Fact{Type: domain.FactOrderRefundRequested, OrderID: orderA, Reason: "customer asked", At: t0.Add(3 * time.Minute)})
	require.Eventually(t, func() bool { return len(pub.sent(orderA)) > 6 && caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	for id, n := range pub.confirmedIDs() {
		assert.Equal(t, 1, n, "message %s confirmed once", id)
	}
}

func TestNackedMessageIsRetriedAloneThenParked(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	pub := &refuser{}
	pub.setRule(func(m domain.Outbound) (bool, bool) { return m.OrderID == orderA && m.Name == "orderCreated", false })
	appendFact(t, l, "m1", checkout(orderA, t0))
	appendFact(t, l, "m2", checkout(orderB, t0))
	appendFact(t, l, "m3", basketDeleted(orderA, t0.Add(time.Minute)))
	lc := projections.NewLifecycle(l, pub, rm, lifecycleCfg(nil))
	running(t, lc)
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)

	ps := parked(t, rm)
	require.Len(t, ps, 1)
	assert.Equal(t, projections.ReasonNacked, ps[0].Reason)
	assert.Equal(t, "orderCreated", ps[0].Message)
	assert.Equal(t, 5, pub.tries(ps[0].MessageID), "five attempts, then parked")
	for id := range pub.confirmedIDs() {
		assert.Equal(t, 1, pub.tries(id), "confirmed message %s never sent again", id)
	}
	// orderCharged was in the same publish as the first nack: it went out
	// (a confirmed message cannot be recalled); the retry sends it again
	// after orderCreated, same id.
	assert.Equal(t, []string{"PlaceOrderCommand", "orderCharged", "DeleteBasketCompleteCommand"}, pub.sent(orderA))
	assert.Equal(t, []string{"orderCreated", "PlaceOrderCommand"}, pub.sent(orderB))

	pub.setRule(nil)
	res, err := lc.RetryParked(context.Background(), []string{orderA}, false)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.True(t, res[0].Unparked)
	assert.Equal(t, 2, res[0].Published)
	assert.Equal(t, []string{"PlaceOrderCommand", "orderCharged", "DeleteBasketCompleteCommand", "orderCreated", "orderCharged"}, pub.sent(orderA))
}

func TestNackThatPassesLaterParksNothing(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	pub := &refuser{}
	nacks := 0
	pub.setRule(func(m domain.Outbound) (bool, bool) {
		if m.Name == "orderCreated" && nacks < 2 {
			nacks++
			return true, false
		}
		return false, false
	})
	appendFact(t, l, "m1", checkout(orderA, t0))
	running(t, projections.NewLifecycle(l, pub, rm, lifecycleCfg(nil)))
	require.Eventually(t, func() bool { return caughtUp(t, l, rm) }, 10*time.Second, 5*time.Millisecond)
	assert.Empty(t, parked(t, rm))
	assert.ElementsMatch(t, []string{"PlaceOrderCommand", "orderCreated"}, pub.sent(orderA))
	for id, n := range pub.confirmedIDs() {
		assert.Equal(t, 1, n, id)
	}
}

func TestRetryParkedNeedsARunningPublisher(t *testing.T) {
	l, rm := openLog(t), openRM(t)
	lc := projections.NewLifecycle(l, &refuser{}, rm, lifecycleCfg(nil))
	_, err := lc.RetryParked(context.Background(), nil, true)
	assert.ErrorIs(t, err, projections.ErrNotRunning)
	got, err := lc.Parked(context.Background())
	require.NoError(t, err)
	assert.Empty(t, got)
}
