package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Elector grants the leader role to one instance at a time
// (adapters/rabbitmq implements it).
type Elector interface {
	// Campaign competes for the role until ctx is done, then returns nil
	// (an error only when it cannot campaign at all). Each time the role
	// is won it calls lead with a context that is cancelled (context.Cause
	// says why) as soon as the role is lost, and waits for lead to return
	// before competing again. When lead returns while the role is still
	// held (e.g. its work was fenced or failed), the elector gives the
	// role up (so another instance can take it) and competes again after
	// a pause.
	Campaign(ctx context.Context, lead func(ctx context.Context) error) error
}

// LeaderStatus is this instance's role, for readiness and metrics.
type LeaderStatus struct {
	Instance string
	Leading  bool
	Since    time.Time // start of the current role (leader or follower)
	Changes  int64     // role changes since Run started: each term counts two
	Leader   string    // best known leader, may be empty
}

// LeadershipObserver hears of terms (for a log line and metrics).
type LeadershipObserver interface {
	// Acquired reports a term started: the role was won.
	Acquired(instance string, at time.Time)
	// Lost reports a term ended, after every part returned; reason is
	// why (the elector's cause, or the part or claim that failed).
	Lost(instance string, held time.Duration, reason error)
}

// LeadershipConfig is what a Leadership runs and how.
type LeadershipConfig struct {
	Instance string
	Elector  Elector
	// Claim runs first in every term (e.g. SharedCheckpoint.Claim); its
	// errors are retried with back-off, ClaimAttempts times, and then end
	// the term. Nil: nothing to claim.
	Claim func(ctx context.Context) error
	// Parts run, each in its own goroutine, from the claim to the end of
	// the term (lifecycle, time-outs). One returning, with ErrFenced or
	// any error or none, ends the term.
	Parts    map[string]func(ctx context.Context) error
	Observer LeadershipObserver // may be nil
	Clock    Clock              // default time.Now

	ClaimAttempts int           // default 6
	RetryMin      time.Duration // first claim back-off, default 200ms
	RetryMax      time.Duration // default 5s
}

// Leadership runs parts only while this instance leads: one term per role
// won, the parts of a term all stopped before the next may start, so
// within one process the terms never overlap.
type Leadership struct {
	cfg LeadershipConfig

	mu     sync.Mutex
	status LeaderStatus
}

// NewLeadership returns a Leadership; nothing runs until Run.
func NewLeadership(cfg LeadershipConfig) *Leadership {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ClaimAttempts <= 0 {
		cfg.ClaimAttempts = 6
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	return &Leadership{cfg: cfg, status: LeaderStatus{Instance: cfg.Instance, Since: cfg.Clock()}}
}

// Run campaigns for the role until ctx is done, running a term each time
// it is won. It returns nil on cancellation, and an error when the
// elector cannot campaign at all.
func (l *Leadership) Run(ctx context.Context) error {
	if l.cfg.Elector == nil || l.cfg.Instance == "" {
		return errors.New("leadership: Elector and Instance are required")
	}
	l.mu.Lock()
	l.status.Since = l.cfg.Clock()
	l.mu.Unlock()
	if err := l.cfg.Elector.Campaign(ctx, l.lead); err != nil {
		return fmt.Errorf("leadership of %s: %w", l.cfg.Instance, err)
	}
	return nil
}

// Status is the current role; safe for concurrent use.
func (l *Leadership) Status() LeaderStatus {
	l.mu.Lock()
	st := l.status
	l.mu.Unlock()
	if st.Leading {
		st.Leader = st.Instance
	} else if k, ok := l.cfg.Elector.(interface{ Leader() string }); ok {
		if name := k.Leader(); name != st.Instance {
			st.Leader = name
		}
	}
	return st
}

// lead is one term. It returns nil when the role was lost (or Run is
// stopping), and why the term ended otherwise, so the elector gives the
// role up.
func (l *Leadership) lead(ctx context.Context) error {
	start := l.cfg.Clock()
	l.setRole(true, start)
	if l.cfg.Observer != nil {
		l.cfg.Observer.Acquired(l.cfg.Instance, start)
	}
	tctx, end := context.WithCancelCause(ctx)
	reason := l.claim(tctx)
	if reason == nil {
		reason = l.runParts(tctx, end)
	}
	end(reason)
	lost := l.cfg.Clock()
	l.setRole(false, lost)
	if l.cfg.Observer != nil {
		l.cfg.Observer.Lost(l.cfg.Instance, lost.Sub(start), reason)
	}
	if ctx.Err() != nil {
		return nil
	}
	return reason
}

func (l *Leadership) setRole(leading bool, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.Leading, l.status.Since = leading, at
	l.status.Changes++
}

// claim runs Claim, retrying with back-off; the error ends the term.
func (l *Leadership) claim(ctx context.Context) error {
	if l.cfg.Claim == nil {
		return nil
	}
	wait := l.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := l.cfg.Claim(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if attempt >= l.cfg.ClaimAttempts || errors.Is(err, domain.ErrClosed) {
			return fmt.Errorf("claim (attempt %d): %w", attempt, err)
		}
		if sleepCtx(ctx, wait) != nil {
			return context.Cause(ctx)
		}
		wait = min(wait*2, l.cfg.RetryMax)
	}
}

// runParts runs every part until the term ends or one returns, then stops
// them all (end) and waits for them. It returns why the term ended.
func (l *Leadership) runParts(ctx context.Context, end context.CancelCauseFunc) error {
	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(l.cfg.Parts))
	var wg sync.WaitGroup
	for name, run := range l.cfg.Parts {
		wg.Go(func() { done <- result{name, run(ctx)} })
	}
	var reason error
	select {
	case <-ctx.Done():
		reason = context.Cause(ctx)
	case r := <-done:
		if ctx.Err() != nil {
			reason = context.Cause(ctx) // it returned because the term ended
		} else if r.err != nil {
			reason = fmt.Errorf("%s: %w", r.name, r.err)
		} else {
			reason = fmt.Errorf("%s stopped while leading", r.name)
		}
	}
	end(reason)
	wg.Wait()
	return reason
}
