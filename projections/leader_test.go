package projections_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// chanElector drives the orchestration: the test grants the role (win)
// and takes it away (lose). It is no stand-in for the broker: the real
// elector (adapters/rabbitmq) is tested against RabbitMQ.
type chanElector struct {
	wins  chan chan struct{} // closed once the term can be revoked
	ended chan error         // what each lead returned

	mu     sync.Mutex
	revoke context.CancelCauseFunc
}

func newChanElector() *chanElector {
	return &chanElector{wins: make(chan chan struct{}), ended: make(chan error, 16)}
}

func (e *chanElector) Campaign(ctx context.Context, lead func(ctx context.Context) error) error {
	for {
		var won chan struct{}
		select {
		case <-ctx.Done():
			return nil
		case won = <-e.wins:
		}
		tctx, cancel := context.WithCancelCause(ctx)
		e.mu.Lock()
		e.revoke = cancel
		e.mu.Unlock()
		close(won)
		err := lead(tctx)
		cancel(nil)
		e.ended <- err
	}
}

func (e *chanElector) win(t *testing.T) {
	t.Helper()
	won := make(chan struct{})
	select {
	case e.wins <- won:
	case <-time.After(10 * time.Second):
		t.Fatal("the elector is not campaigning")
	}
	<-won
}

func (e *chanElector) lose(cause error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.revoke(cause)
}

func (e *chanElector) lead(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the term did not end")
		return nil
	}
}

// termLog records terms, and how many parts were still running at Lost.
type termLog struct {
	running *atomic.Int32
	mu      sync.Mutex
	events  []string
	reasons []error
	atLost  []int32
}

func (o *termLog) Acquired(instance string, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, "acquired "+instance)
}

func (o *termLog) Lost(instance string, held time.Duration, reason error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, "lost "+instance)
	o.reasons = append(o.reasons, reason)
	o.atLost = append(o.atLost, o.running.Load())
}

func (o *termLog) snapshot() ([]string, []error, []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...), append([]error(nil), o.reasons...), append([]int32(nil), o.atLost...)
}

// blockingPart runs until its term ends, then takes a moment to stop, so
// a Lost reported too early would see it still running.
func blockingPart(running *atomic.Int32, starts *atomic.Int32) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		running.Add(1)
		starts.Add(1)
		defer running.Add(-1)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond)
		return nil
	}
}

type leaderRig struct {
	el      *chanElector
	obs     *termLog
	running *atomic.Int32
	starts  *atomic.Int32
	ld      *projections.Leadership
	stop    func() error
}

func startLeadership(t *testing.T, cfg projections.LeadershipConfig, parts map[string]func(*leaderRig) func(ctx context.Context) error) *leaderRig {
	t.Helper()
	r := &leaderRig{el: newChanElector(), running: &atomic.Int32{}, starts: &atomic.Int32{}}
	r.obs = &termLog{running: r.running}
	cfg.Instance, cfg.Elector, cfg.Observer = "a", r.el, r.obs
	cfg.RetryMin, cfg.RetryMax = time.Millisecond, 4*time.Millisecond
	cfg.Parts = map[string]func(ctx context.Context) error{}
	for name, mk := range parts {
		cfg.Parts[name] = mk(r)
	}
	r.ld = projections.NewLeadership(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ld.Run(ctx) }()
	var once sync.Once
	var err error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func blocking(r *leaderRig) func(ctx context.Context) error { return blockingPart(r.running, r.starts) }

func TestLeadershipRunsThePartsOnlyWhileLeading(t *testing.T) {
	now := t0
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
	r := startLeadership(t, projections.LeadershipConfig{Clock: clock},
		map[string]func(*leaderRig) func(ctx context.Context) error{"lifecycle": blocking, "timeouts": blocking})

	st := r.ld.Status()
	assert.Equal(t, projections.LeaderStatus{Instance: "a", Since: t0}, st, "a follower until it wins")
	advance(time.Minute)
	r.el.win(t)
	require.Eventually(t, func() bool { return r.running.Load() == 2 }, 10*time.Second, time.Millisecond)
	st = r.ld.Status()
	assert.True(t, st.Leading)
	assert.Equal(t, "a", st.Leader)
	assert.Equal(t, t0.Add(time.Minute), st.Since)
	assert.EqualValues(t, 1, st.Changes)

	advance(time.Minute)
	lost := errors.New("lease expired")
	r.el.lose(lost)
	assert.NoError(t, r.el.lead(t), "losing the role is no failure of the term")
	assert.Zero(t, r.running.Load(), "every part stopped")
	st = r.ld.Status()
	assert.False(t, st.Leading)
	assert.Empty(t, st.Leader)
	assert.Equal(t, t0.Add(2*time.Minute), st.Since)
	assert.EqualValues(t, 2, st.Changes)

	// The next term starts the parts again.
	r.el.win(t)
	require.Eventually(t, func() bool { return r.running.Load() == 2 }, 10*time.Second, time.Millisecond)
	assert.EqualValues(t, 4, r.starts.Load())
	assert.EqualValues(t, 3, r.ld.Status().Changes)
	require.NoError(t, r.stop(), "stopping ends the term and the campaign")
	assert.Zero(t, r.running.Load())

	events, reasons, atLost := r.obs.snapshot()
	assert.Equal(t, []string{"acquired a", "lost a", "acquired a", "lost a"}, events)
	require.Len(t, reasons, 2)
	assert.ErrorIs(t, reasons[0], lost, "the elector's cause")
	assert.ErrorIs(t, reasons[1], context.Canceled)
	assert.Equal(t, []int32{0, 0}, atLost, "Lost is reported after every part returned")
	assert.EqualValues(t, 4, r.ld.Status().Changes)
}

func TestLeadershipFencedPartEndsTheTerm(t *testing.T) {
	fence := make(chan struct{})
	fenced := func(r *leaderRig) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			select {
			case <-fence:
				return fmt.Errorf("save: %w", projections.ErrFenced)
			case <-ctx.Done():
				return nil
			}
		}
	}
	r := startLeadership(t, projections.LeadershipConfig{},
		map[string]func(*leaderRig) func(ctx context.Context) error{"lifecycle": fenced, "timeouts": blocking})
	r.el.win(t)
	require.Eventually(t, func() bool { return r.running.Load() == 1 }, 10*time.Second, time.Millisecond)
	close(fence)
	err := r.el.lead(t)
	require.ErrorIs(t, err, projections.ErrFenced, "lead returns why, so the elector gives the role up")
	assert.Contains(t, err.Error(), "lifecycle")
	assert.Zero(t, r.running.Load(), "the other parts stopped")
	assert.False(t, r.ld.Status().Leading)
	_, reasons, atLost := r.obs.snapshot()
	require.Len(t, reasons, 1)
	assert.ErrorIs(t, reasons[0], projections.ErrFenced)
	assert.Equal(t, []int32{0}, atLost)

	// A part that returns nil while leading ends the term too.
	quits := func(*leaderRig) func(ctx context.Context) error {
		return func(ctx context.Context) error { return nil }
	}
	r2 := startLeadership(t, projections.LeadershipConfig{},
		map[string]func(*leaderRig) func(ctx context.Context) error{"timeouts": quits, "lifecycle": blocking})
	r2.el.win(t)
	err = r2.el.lead(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "timeouts")
	assert.Zero(t, r2.running.Load())
}

func TestLeadershipClaimsBeforeThePartsAndRetriesTheClaim(t *testing.T) {
	var claims atomic.Int32
	transient := fmt.Errorf("read checkpoint: %w", domain.ErrUnavailable)
	claim := func(ctx context.Context) error {
		if claims.Add(1) <= 2 {
			return transient
		}
		return nil
	}
	r := startLeadership(t, projections.LeadershipConfig{Claim: claim, ClaimAttempts: 3},
		map[string]func(*leaderRig) func(ctx context.Context) error{"lifecycle": func(r *leaderRig) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				assert.EqualValues(t, 3, claims.Load(), "the parts start after the claim succeeded")
				return blocking(r)(ctx)
			}
		}})
	r.el.win(t)
	require.Eventually(t, func() bool { return r.running.Load() == 1 }, 10*time.Second, time.Millisecond)
	r.el.lose(errors.New("gone"))
	require.NoError(t, r.el.lead(t))

	// A claim that keeps failing ends the term; no part ever starts.
	claims.Store(-100)
	r.el.win(t)
	err := r.el.lead(t)
	require.ErrorIs(t, err, domain.ErrUnavailable)
	assert.EqualValues(t, -97, claims.Load(), "ClaimAttempts tries")
	assert.EqualValues(t, 1, r.starts.Load())
	_, reasons, _ := r.obs.snapshot()
	require.Len(t, reasons, 2)
	assert.ErrorIs(t, reasons[1], domain.ErrUnavailable)

	// A role lost during the claim ends the term at once.
	block := make(chan struct{})
	r2 := startLeadership(t, projections.LeadershipConfig{Claim: func(ctx context.Context) error {
		close(block)
		<-ctx.Done()
		return ctx.Err()
	}}, map[string]func(*leaderRig) func(ctx context.Context) error{"lifecycle": blocking})
	r2.el.win(t)
	<-block
	gone := errors.New("connection closed")
	r2.el.lose(gone)
	require.NoError(t, r2.el.lead(t))
	assert.Zero(t, r2.starts.Load())
	_, reasons, _ = r2.obs.snapshot()
	require.Len(t, reasons, 1)
	assert.ErrorIs(t, reasons[0], gone)
}

func TestLeadershipStatusIsSafeForConcurrentUse(t *testing.T) {
	r := startLeadership(t, projections.LeadershipConfig{},
		map[string]func(*leaderRig) func(ctx context.Context) error{"lifecycle": blocking})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = r.ld.Status()
			}
		}
	})
	for range 5 {
		r.el.win(t)
		r.el.lose(errors.New("flap"))
		require.NoError(t, r.el.lead(t))
	}
	close(stop)
	wg.Wait()
	assert.EqualValues(t, 10, r.ld.Status().Changes)
}

func TestLeadershipNeedsAnElectorAndAnInstance(t *testing.T) {
	err := projections.NewLeadership(projections.LeadershipConfig{Instance: "a"}).Run(context.Background())
	require.Error(t, err)
}

// Two instances on one event log, each with its lifecycle publisher
// behind a Leadership: B wins while A still believes it leads (a lease
// not yet expired); B's claim fences A, whose term ends on its own at its
// next checkpoint save, and B publishes on from A's checkpoint.
func TestLeadershipHandsTheLifecycleOverByFencing(t *testing.T) {
	log := openLog(t)
	type instance struct {
		pub *recorder
		el  *chanElector
		ld  *projections.Leadership
	}
	mk := func(name string) *instance {
		in := &instance{pub: &recorder{}, el: newChanElector()}
		cp := projections.NewSharedCheckpoint(log, projections.LifecycleName, name)
		cfg := lifecycleCfg(nil)
		cfg.Parking = projections.NewSharedParks(log)
		lc := projections.NewLifecycle(log, in.pub, cp, cfg)
		in.ld = projections.NewLeadership(projections.LeadershipConfig{Instance: name, Elector: in.el,
			Claim: func(ctx context.Context) error { _, err := cp.Claim(ctx, nil); return err },
			Parts: map[string]func(ctx context.Context) error{"lifecycle": lc.Run}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- in.ld.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return in
	}
	a, b := mk("a"), mk("b")
	appendFact(t, log, "m1", checkout(orderA, t0))
	a.el.win(t)
	require.Eventually(t, func() bool {
		return len(a.pub.names()) == 2 && lastCheckpointEvent(t, log).Type == projections.EventCheckpointSaved
	}, 10*time.Second, time.Millisecond)

	b.el.win(t)
	require.Eventually(t, func() bool { return lastCheckpointEvent(t, log).Type == projections.EventCheckpointClaimed }, 10*time.Second, time.Millisecond)
	assert.True(t, a.ld.Status().Leading && b.ld.Status().Leading, "both believe they lead, for now")
	m2 := appendFact(t, log, "m2", basketDeleted(orderA, t0.Add(time.Minute)))
	err := a.el.lead(t)
	require.ErrorIs(t, err, projections.ErrFenced, "A's term ended on its own")
	assert.False(t, a.ld.Status().Leading)
	require.Eventually(t, func() bool { return len(b.pub.names()) == 2 }, 10*time.Second, time.Millisecond)
	assert.ElementsMatch(t, []string{"orderCharged", "DeleteBasketCompleteCommand"}, b.pub.names(), "B starts where A saved")
	require.Eventually(t, func() bool {
		last := lastCheckpointEvent(t, log)
		return last.Type == projections.EventCheckpointSaved && last.Position.Commit > m2.Position.Commit
	}, 10*time.Second, time.Millisecond, "B moves the checkpoint")
	assert.LessOrEqual(t, len(a.pub.names()), 4, "A published at most m2's batch before it was fenced")
}
