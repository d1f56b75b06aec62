package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Parking in the lifecycle publisher: which messages are held, how a lane
// is parked and stored, and the operator's retry.

// unheld drops the messages that wait behind a parked lane.
func (l *Lifecycle) unheld(msgs []domain.Outbound, srcs []source) ([]domain.Outbound, []source) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	keep := func(i int) bool {
		p, ok := l.parked[lane{msgs[i].OrderID, msgs[i].Kind}]
		return !ok || !p.holds(srcs[i].rev)
	}
	first := 0
	for first < len(msgs) && keep(first) {
		first++
	}
	if first == len(msgs) {
		return msgs, srcs // the usual case: nothing to copy
	}
	outM, outS := slices.Clone(msgs[:first]), slices.Clone(srcs[:first])
	for i := first + 1; i < len(msgs); i++ {
		if keep(i) {
			outM, outS = append(outM, msgs[i]), append(outS, srcs[i])
		}
	}
	return outM, outS
}

func (l *Lifecycle) newPark(m domain.Outbound, src source, reason string, err error) Parked {
	detail := reason
	if err != nil {
		detail = err.Error()
	}
	return Parked{OrderID: m.OrderID, Stream: src.stream, Kind: m.Kind, FromRevision: src.rev, Message: m.Name,
		MessageID: m.MessageID, Reason: reason, Detail: detail, ParkedAt: l.cfg.Clock().UTC()}
}

// parkUnbuildable parks the lanes of the messages re caused that cannot be
// built. The park is stored before the batch goes on; a store error fails
// the batch, which the follower retries.
func (l *Lifecycle) parkUnbuildable(ctx context.Context, re domain.RecordedEvent, ub []*domain.UnbuildableError) error {
	for _, u := range ub {
		m := domain.Outbound{OrderID: u.OrderID, Kind: u.Kind, Name: u.Name, MessageID: u.MessageID}
		if err := l.park(ctx, l.newPark(m, source{re.Stream, re.Revision}, ReasonUnbuildable, u.Err)); err != nil {
			return err
		}
	}
	return nil
}

// refused parks the lanes of messages refused for good, or nacked
// NackAttempts times, and returns the messages to publish again: the
// other nacked ones, in their order. Confirmed messages are never among
// them.
func (l *Lifecycle) refused(ctx context.Context, msgs []domain.Outbound, srcs []source, re *domain.RefusedError, nacks map[string]int) ([]domain.Outbound, []source, error) {
	byID := make(map[string]domain.Refusal, len(re.Refusals))
	for _, r := range re.Refusals {
		byID[r.MessageID] = r
	}
	var againM []domain.Outbound
	var againS []source
	for i, m := range msgs {
		r, ok := byID[m.MessageID]
		if !ok {
			continue // confirmed
		}
		reason := ReasonRefused
		if !r.Permanent {
			nacks[m.MessageID]++
			if nacks[m.MessageID] < l.cfg.NackAttempts {
				againM, againS = append(againM, m), append(againS, srcs[i])
				continue
			}
			reason = ReasonNacked
		}
		if err := l.parkRetrying(ctx, l.newPark(m, srcs[i], reason, r.Err)); err != nil {
			return nil, nil, err
		}
	}
	return againM, againS, nil
}

// parkRetrying parks p, retrying store errors until ctx ends: the flight
// is not done (and the checkpoint waits) until the park is stored.
func (l *Lifecycle) parkRetrying(ctx context.Context, p Parked) error {
	wait := l.cfg.RetryMin
	for {
		err := l.park(ctx, p)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.cfg.Observer.Retry(LifecycleName, err, wait)
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(wait*2, l.cfg.RetryMax)
	}
}

// park parks p's lane unless a park already holds p's message; a lane
// parked later in its stream moves back to p.
func (l *Lifecycle) park(ctx context.Context, p Parked) error {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if old, ok := l.parked[p.lane()]; ok {
		if old.holds(p.FromRevision) {
			return nil
		}
		p = old.merge(p)
	}
	return l.putPark(ctx, p)
}

// putPark stores p and then sets it in memory; pmu is held, so the store
// and the memory never disagree for long.
func (l *Lifecycle) putPark(ctx context.Context, p Parked) error {
	if err := l.cfg.Parking.Park(ctx, []Parked{p}); err != nil {
		return fmt.Errorf("park %s lane of %s: %w", p.Kind, p.OrderID, err)
	}
	l.parked[p.lane()] = p
	l.nparked.Store(int32(len(l.parked)))
	l.parkObserver().Parked(LifecycleName, p)
	return nil
}

func (l *Lifecycle) parkObserver() ParkObserver {
	if po, ok := l.cfg.Observer.(ParkObserver); ok {
		return po
	}
	return NopObserver{}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Parked lists every parked lane, as stored.
func (l *Lifecycle) Parked(ctx context.Context) ([]Parked, error) {
	if l.cfg.Parking == nil {
		return nil, fmt.Errorf("%s: no ParkStore configured", LifecycleName)
	}
	return l.cfg.Parking.ListParked(ctx)
}

// RetryParked publishes again the held messages of the parked lanes of
// orderIDs (every parked lane when all), in stream order: the stream is
// read and folded again, and the lane's messages from the park's fact up
// to the last fact the publisher has handled go out (same ids, so those
// that did go out before are harmless duplicates). A lane whose messages
// are all confirmed is unparked; one that fails again is parked again at
// the failing message with Retries+1. It runs between two batches, so no
// message of the lane is lost or overtaken. One result per lane; an id
// that is not parked gets a result whose Err matches ErrNotParked, and
// does not stop the others. The error is ErrNotRunning when the publisher
// does not run here (another instance may hold the lease).
func (l *Lifecycle) RetryParked(ctx context.Context, orderIDs []string, all bool) ([]RetryResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return nil, ErrNotRunning
	}
	var out []RetryResult
	for _, c := range l.chooseLanes(orderIDs, all) {
		if c.err != nil {
			out = append(out, RetryResult{OrderID: c.order, Err: c.err, Error: c.err.Error()})
			continue
		}
		out = append(out, l.retryLane(ctx, c.park))
	}
	return out, nil
}

type laneChoice struct {
	order string
	park  Parked
	err   error
}

// chooseLanes lists the lanes to retry, by order (as asked, or by id for
// all) then kind.
func (l *Lifecycle) chooseLanes(orderIDs []string, all bool) []laneChoice {
	l.pmu.Lock()
	lanes := make([]Parked, 0, len(l.parked))
	for _, p := range l.parked {
		lanes = append(lanes, p)
	}
	l.pmu.Unlock()
	slices.SortFunc(lanes, func(a, b Parked) int {
		if a.OrderID != b.OrderID {
			return cmp.Compare(a.OrderID, b.OrderID)
		}
		return cmp.Compare(string(a.Kind), string(b.Kind))
	})
	var out []laneChoice
	if all {
		for _, p := range lanes {
			out = append(out, laneChoice{order: p.OrderID, park: p})
		}
		return out
	}
	seen := map[string]bool{}
	for _, id := range orderIDs {
		if c, ok := domain.CanonicalUUID(id); ok {
			id = c
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		n := len(out)
		for _, p := range lanes {
			if p.OrderID == id {
				out = append(out, laneChoice{order: id, park: p})
			}
		}
		if len(out) == n {
			out = append(out, laneChoice{order: id, err: fmt.Errorf("retry %s: %w", id, ErrNotParked)})
		}
	}
	return out
}

// retryLane publishes one parked lane's held messages; l.mu is held.
func (l *Lifecycle) retryLane(ctx context.Context, p Parked) RetryResult {
	res := RetryResult{OrderID: p.OrderID, Kind: p.Kind}
	fail := func(err error) RetryResult {
		res.Err, res.Error, res.Parked = err, err.Error(), &p
		return res
	}
	msgs, srcs, stuck, err := l.laneMessages(ctx, p)
	if err != nil {
		return fail(err)
	}
	n, refusal, err := l.publishLane(ctx, msgs, srcs)
	res.Published = n
	if err != nil {
		return fail(fmt.Errorf("retry %s lane of %s: %w", p.Kind, p.OrderID, err))
	}
	if refusal == nil {
		refusal = stuck
	}
	if refusal != nil {
		np, err := l.repark(ctx, p, *refusal)
		if err != nil {
			return fail(err)
		}
		res.Parked = &np
		return res
	}
	cur, err := l.unpark(ctx, p)
	if err != nil {
		return fail(err)
	}
	res.Unparked, res.Parked = cur == nil, cur
	return res
}

// laneMessages folds p's stream and returns the lane's messages caused by
// the facts from p.FromRevision up to the last one handled. stuck is the
// park of a message among them that cannot be built: the messages stop
// before its fact.
func (l *Lifecycle) laneMessages(ctx context.Context, p Parked) ([]domain.Outbound, []source, *Parked, error) {
	evs, err := l.log.ReadStream(ctx, p.Stream, 0, domain.Forwards, 0)
	if err != nil && !errors.Is(err, domain.ErrStreamNotFound) {
		return nil, nil, nil, fmt.Errorf("retry %s lane of %s: read %s: %w", p.Kind, p.OrderID, p.Stream, err)
	}
	f := domain.NewFolder(l.cfg.Rules, domain.State{})
	var msgs []domain.Outbound
	var srcs []source
	for _, re := range evs {
		if l.handled == nil || l.handled.Less(re.Position) {
			break // not handled yet: handle publishes it
		}
		ev, err := toEventWithMeta(re)
		if err != nil {
			continue // reported where it is met live
		}
		oc := f.Apply(ev)
		if re.Revision < p.FromRevision || len(oc.Transitions) == 0 {
			continue
		}
		out, ub, err := OutboundFor(l.cfg.Outbound, re.Stream, f.State(), oc)
		if err != nil {
			return nil, nil, nil, err
		}
		src := source{re.Stream, re.Revision}
		for _, u := range ub {
			if u.OrderID == p.OrderID && u.Kind == p.Kind {
				m := domain.Outbound{OrderID: u.OrderID, Kind: u.Kind, Name: u.Name, MessageID: u.MessageID}
				stuck := l.newPark(m, src, ReasonUnbuildable, u.Err)
				return msgs, srcs, &stuck, nil
			}
		}
		for _, m := range out {
			if m.OrderID == p.OrderID && m.Kind == p.Kind {
				msgs, srcs = append(msgs, m), append(srcs, src)
			}
		}
	}
	return msgs, srcs, nil, nil
}

// publishLane publishes a retried lane's messages, at most NackAttempts
// times each. It returns how many were confirmed and the park of the first
// refused for good (or nacked every time); err is anything else (the
// broker unavailable): the park stays as it was.
func (l *Lifecycle) publishLane(ctx context.Context, msgs []domain.Outbound, srcs []source) (int, *Parked, error) {
	published := 0
	nacks := map[string]int{}
	wait := l.cfg.RetryMin
	for attempt := 1; len(msgs) > 0; attempt++ {
		err := l.pub.Publish(ctx, msgs)
		if err == nil {
			return published + len(msgs), nil, nil
		}
		var refused *domain.RefusedError
		if !errors.As(err, &refused) {
			if attempt >= l.cfg.NackAttempts || ctx.Err() != nil {
				return published, nil, err
			}
		} else {
			published += len(msgs) - len(refused.Refusals)
			if p := l.firstStuck(msgs, srcs, refused, nacks); p != nil {
				return published, p, nil
			}
			msgs, srcs = refusedOnly(msgs, srcs, refused)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return published, nil, err
		}
		wait = min(wait*2, l.cfg.RetryMax)
	}
	return published, nil, nil
}

// firstStuck counts the nacks of a retry's refusals and returns the park
// of the first message, in lane order, refused for good or nacked
// NackAttempts times.
func (l *Lifecycle) firstStuck(msgs []domain.Outbound, srcs []source, re *domain.RefusedError, nacks map[string]int) *Parked {
	byID := make(map[string]domain.Refusal, len(re.Refusals))
	for _, r := range re.Refusals {
		byID[r.MessageID] = r
	}
	for i, m := range msgs {
		r, ok := byID[m.MessageID]
		if !ok {
			continue
		}
		nacks[m.MessageID]++
		reason := ""
		switch {
		case r.Permanent:
			reason = ReasonRefused
		case nacks[m.MessageID] >= l.cfg.NackAttempts:
			reason = ReasonNacked
		default:
			continue
		}
		p := l.newPark(m, srcs[i], reason, r.Err)
		return &p
	}
	return nil
}

// refusedOnly keeps the refused messages, in order.
func refusedOnly(msgs []domain.Outbound, srcs []source, re *domain.RefusedError) ([]domain.Outbound, []source) {
	ids := make(map[string]bool, len(re.Refusals))
	for _, r := range re.Refusals {
		ids[r.MessageID] = true
	}
	var outM []domain.Outbound
	var outS []source
	for i, m := range msgs {
		if ids[m.MessageID] {
			outM, outS = append(outM, m), append(outS, srcs[i])
		}
	}
	return outM, outS
}

// repark parks a retried lane again at next, keeping the first ParkedAt
// and counting the retry; a park set meanwhile earlier in the stream wins.
func (l *Lifecycle) repark(ctx context.Context, old, next Parked) (Parked, error) {
	next.ParkedAt, next.Retries = old.ParkedAt, old.Retries+1
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if cur, ok := l.parked[old.lane()]; ok && cur.FromRevision < next.FromRevision && cur.FromRevision != old.FromRevision {
		next = cur.merge(next)
	}
	if err := l.putPark(ctx, next); err != nil {
		return old, err
	}
	return next, nil
}

// unpark releases a retried lane, unless a flight parked it meanwhile at
// another message: then it returns that park.
func (l *Lifecycle) unpark(ctx context.Context, p Parked) (*Parked, error) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	cur, ok := l.parked[p.lane()]
	if ok && cur.FromRevision != p.FromRevision {
		return &cur, nil
	}
	if err := l.cfg.Parking.Unpark(ctx, p.OrderID, p.Kind); err != nil {
		return nil, fmt.Errorf("unpark %s lane of %s: %w", p.Kind, p.OrderID, err)
	}
	delete(l.parked, p.lane())
	l.nparked.Store(int32(len(l.parked)))
	l.parkObserver().Unparked(LifecycleName, p)
	return nil, nil
}
