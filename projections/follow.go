package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Observer receives what projections do, for metrics and logs; the
// projections themselves never log. Nil methods are fine: use NopObserver.
type Observer interface {
	// Batch reports a batch handled by projection name, up to pos.
	Batch(name string, events int, pos domain.Position)
	// Poison reports a stored event the projection cannot decode; it is
	// skipped so one bad fact does not stop every order.
	Poison(name string, e domain.RecordedEvent, err error)
	// Retry reports a failed attempt that will be retried after wait.
	Retry(name string, err error, wait time.Duration)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Batch(string, int, domain.Position)         {}
func (NopObserver) Poison(string, domain.RecordedEvent, error) {}
func (NopObserver) Retry(string, error, time.Duration)         {}

// follower runs handle over batches of the order streams' events, from
// after the checkpoint, retrying a failed batch until it succeeds. handle
// must store the checkpoint itself (atomically with its effects where it
// can) and report the position it reached.
type follower struct {
	name      string
	log       domain.EventLog
	batchSize int
	batchWait time.Duration
	retryMin  time.Duration
	retryMax  time.Duration
	obs       Observer
}

type batchFunc func(ctx context.Context, batch []domain.RecordedEvent) error

func (f *follower) defaults() {
	if f.batchSize <= 0 {
		f.batchSize = 512
	}
	if f.batchWait <= 0 {
		f.batchWait = 10 * time.Millisecond
	}
	if f.retryMin <= 0 {
		f.retryMin = 100 * time.Millisecond
	}
	if f.retryMax <= 0 {
		f.retryMax = 10 * time.Second
	}
	if f.obs == nil {
		f.obs = NopObserver{}
	}
}

// run follows the log from after until ctx is done.
func (f *follower) run(ctx context.Context, after *domain.Position, handle batchFunc) error {
	f.defaults()
	wait := f.retryMin
	for {
		next, err := f.session(ctx, after, handle)
		if next != nil {
			after = next
			wait = f.retryMin
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue
		}
		f.obs.Retry(f.name, err, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, f.retryMax)
	}
}

type item struct {
	e   domain.RecordedEvent
	err error
}

// session subscribes once and handles batches until something fails. It
// returns the last position handled.
func (f *follower) session(ctx context.Context, after *domain.Position, handle batchFunc) (*domain.Position, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := f.log.Subscribe(sctx, domain.SubscribeOptions{After: after, StreamPrefix: domain.StreamPrefix})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", f.name, err)
	}
	defer sub.Close()

	ch := make(chan item, f.batchSize)
	go func() {
		defer close(ch)
		for {
			e, err := sub.Next(sctx)
			select {
			case ch <- item{e, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var last *domain.Position
	batch := make([]domain.RecordedEvent, 0, f.batchSize)
	for {
		batch = batch[:0]
		var subErr error
		// Block for the first event, then take what arrives within batchWait.
		select {
		case <-ctx.Done():
			return last, nil
		case it, ok := <-ch:
			if !ok {
				return last, errors.New("subscription ended")
			}
			if it.err != nil {
				return last, fmt.Errorf("subscription %s: %w", f.name, it.err)
			}
			batch = append(batch, it.e)
		}
		timer := time.NewTimer(f.batchWait)
	fill:
		for len(batch) < f.batchSize {
			select {
			case it, ok := <-ch:
				if !ok {
					subErr = errors.New("subscription ended")
					break fill
				}
				if it.err != nil {
					subErr = fmt.Errorf("subscription %s: %w", f.name, it.err)
					break fill
				}
				batch = append(batch, it.e)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()

		if err := f.handleWithRetry(ctx, batch, handle); err != nil {
			return last, err
		}
		p := batch[len(batch)-1].Position
		last = &p
		f.obs.Batch(f.name, len(batch), p)
		if subErr != nil {
			return last, subErr
		}
	}
}

// handleWithRetry retries one batch until it succeeds or ctx ends: the
// checkpoint must never move past a batch that was not handled.
func (f *follower) handleWithRetry(ctx context.Context, batch []domain.RecordedEvent, handle batchFunc) error {
	wait := f.retryMin
	for {
		err := handle(ctx, batch)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.obs.Retry(f.name, err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, f.retryMax)
	}
}
