package bolt

import (
	"context"
	"fmt"
	"sync"

	"github.com/bookworm-ledger/ledger/domain"
)

// subscribeChunk is how many events a subscription reads from the file
// at a time.
const subscribeChunk = 512

// Subscribe starts a subscription; see [domain.EventLog].
//
// A subscription is a reader of the file, not a queue fed by appends:
// it reads in chunks strictly after the last position it has seen and
// waits for the head to move when it has seen everything. Catch-up and
// live are the same loop, so there is no boundary to lose or repeat an
// event at, appends never wait for a subscriber, and a slow subscriber
// simply reads further behind.
func (l *Log) Subscribe(ctx context.Context, opts domain.SubscribeOptions) (domain.Subscription, error) {
	if l.isClosed() {
		return nil, fmt.Errorf("subscribe: %w", domain.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s := &subscription{l: l, prefix: opts.StreamPrefix, closed: make(chan struct{})}
	if opts.After != nil {
		s.after = opts.After.Commit
	}
	return s, nil
}

type subscription struct {
	l         *Log
	prefix    string
	closed    chan struct{}
	closeOnce sync.Once

	mu    sync.Mutex             // serialises Next
	after uint64                 // last position looked at
	buf   []domain.RecordedEvent // read ahead; buf[next:] not yet delivered
	next  int
	err   error // final error; the subscription is finished
}

// Next returns the next matching event, waiting for one if needed.
func (s *subscription) Next(ctx context.Context) (domain.RecordedEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.err != nil {
			return domain.RecordedEvent{}, s.err
		}
		select {
		case <-s.closed:
			s.err = fmt.Errorf("subscription: %w", domain.ErrClosed)
			continue
		case <-s.l.closing:
			s.err = fmt.Errorf("subscription: %w", domain.ErrClosed)
			continue
		default:
		}
		if s.next < len(s.buf) {
			e := s.buf[s.next]
			s.buf[s.next] = domain.RecordedEvent{} // drop references early
			s.next++
			return e, nil
		}
		head, moved := s.l.headState()
		if head > s.after {
			if err := s.fill(); err != nil {
				s.err = fmt.Errorf("subscription after %d: %w", s.after, err)
			}
			continue
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return domain.RecordedEvent{}, fmt.Errorf("subscription: %w", ctx.Err())
		case <-s.closed:
		case <-s.l.closing:
		}
	}
}

// fill reads the next chunk of matching events from the file.
func (s *subscription) fill() error {
	if s.buf == nil {
		s.buf = make([]domain.RecordedEvent, 0, subscribeChunk)
	}
	d := getDecoder("")
	defer d.free()
	out, last, err := s.l.scan(s.buf[:0], d, s.after, subscribeChunk, s.prefix, true)
	if err != nil {
		return err
	}
	d.finish(out)
	s.buf, s.next, s.after = out, 0, last
	return nil
}

// Close ends the subscription; a blocked Next returns ErrClosed.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}
