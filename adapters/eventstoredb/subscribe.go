package eventstoredb

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/bookworm-ledger/ledger/domain"
)

// streamFilter selects streams server-side: the prefix, or every
// non-system stream.
func streamFilter(prefix string) *esdb.SubscriptionFilter {
	if prefix == "" {
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: `^[^$]`}
	}
	return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{prefix}}
}

// subscribeAll opens a filtered $all subscription. The client waits for
// the confirmation without a context, so the wait happens here.
func (l *Log) subscribeAll(ctx context.Context, c *esdb.Client, after *domain.Position, prefix string) (*esdb.Subscription, error) {
	var from esdb.AllPosition = esdb.Start{}
	if after != nil {
		from = esdb.Position{Commit: after.Commit, Prepare: after.Prepare}
	}
	type result struct {
		sub *esdb.Subscription
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var sub *esdb.Subscription
		var err error
		defer func() { ch <- result{sub, err} }()
		defer recoverClosed(&err)
		// The subscription outlives ctx: it ends with Close.
		sub, err = c.SubscribeToAll(context.WithoutCancel(ctx), esdb.SubscribeToAllOptions{From: from, Filter: streamFilter(prefix)})
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, l.fail(c, r.err)
		}
		return r.sub, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.sub != nil {
				_ = r.sub.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Subscribe implements domain.EventLog with a catch-up subscription to
// $all, filtered by stream prefix on the server. Checkpoints and
// caught-up markers are not events and are skipped. ctx bounds the setup
// only; the subscription lasts until Close (its own or the log's).
func (l *Log) Subscribe(ctx context.Context, opts domain.SubscribeOptions) (domain.Subscription, error) {
	c, err := l.current()
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	inner, err := l.subscribeAll(ctx, c, opts.After, opts.StreamPrefix)
	if err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", opts.StreamPrefix, err)
	}
	s := &subscription{
		log:    l,
		inner:  inner,
		after:  opts.After,
		prefix: opts.StreamPrefix,
		items:  make(chan item, 256),
		done:   make(chan struct{}),
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = inner.Close()
		return nil, fmt.Errorf("subscribe: %w", domain.ErrClosed)
	}
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	go s.pump(c)
	return s, nil
}

type item struct {
	ev  domain.RecordedEvent
	err error
}

type subscription struct {
	log    *Log
	inner  *esdb.Subscription
	after  *domain.Position
	prefix string
	items  chan item
	done   chan struct{}
	once   sync.Once

	mu  sync.Mutex
	err error // sticky: after an error the subscription is finished
}

// pump moves client messages to items; the bounded channel and gRPC flow
// control hold the server back when the reader is slow.
func (s *subscription) pump(c *esdb.Client) {
	for {
		m := s.inner.Recv()
		var it item
		switch {
		case m.SubscriptionDropped != nil:
			err := m.SubscriptionDropped.Error
			it.err = fmt.Errorf("subscription dropped: %w", s.log.fail(c, err))
		case m.EventAppeared != nil:
			e := m.EventAppeared.OriginalEvent()
			p := domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
			// The server filters and starts after the position; checked
			// again so an older server's inclusive start cannot leak.
			if isSystem(e.StreamID) || !strings.HasPrefix(e.StreamID, s.prefix) || (s.after != nil && !s.after.Less(p)) {
				continue
			}
			it.ev = toDomain(e)
		default:
			continue // checkpoint, caught up, fell behind
		}
		select {
		case s.items <- it:
		case <-s.done:
			return
		}
		if it.err != nil {
			return
		}
	}
}

// Next implements domain.Subscription.
func (s *subscription) Next(ctx context.Context) (domain.RecordedEvent, error) {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return domain.RecordedEvent{}, err
	}
	select {
	case <-s.done:
		return domain.RecordedEvent{}, domain.ErrClosed
	default:
	}
	select {
	case <-s.done:
		return domain.RecordedEvent{}, domain.ErrClosed
	case <-ctx.Done():
		return domain.RecordedEvent{}, ctx.Err()
	case it := <-s.items:
		if it.err != nil {
			s.mu.Lock()
			s.err = it.err
			s.mu.Unlock()
			return domain.RecordedEvent{}, it.err
		}
		return it.ev, nil
	}
}

// Close implements domain.Subscription.
func (s *subscription) Close() error {
	s.once.Do(func() {
		close(s.done)
		_ = s.inner.Close()
		s.log.mu.Lock()
		delete(s.log.subs, s)
		s.log.mu.Unlock()
	})
	return nil
}

// ListStreams implements domain.EventLog by a filtered catch-up pass over
// $all: distinct stream names with their highest revision, until the
// server says caught up (or reports a position at the head of the log,
// for servers older than 23.10 that send no caught-up).
func (l *Log) ListStreams(ctx context.Context, prefix, after string, limit int) (_ []domain.StreamInfo, err error) {
	defer recoverClosed(&err)
	c, err := l.current()
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	head, hasHead, err := l.rawHead(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	if !hasHead {
		return nil, nil
	}
	sub, err := l.subscribeAll(ctx, c, nil, prefix)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	defer sub.Close()
	stop := context.AfterFunc(ctx, func() { _ = sub.Close() })
	defer stop()
	last := map[string]uint64{}
	for {
		m := sub.Recv()
		var p esdb.Position
		switch {
		case m.SubscriptionDropped != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("list streams: %w", ctx.Err())
			}
			return nil, fmt.Errorf("list streams: %w", l.fail(c, m.SubscriptionDropped.Error))
		case m.CaughtUp != nil:
			return page(last, after, limit), nil
		case m.CheckPointReached != nil:
			p = *m.CheckPointReached
		case m.EventAppeared != nil:
			e := m.EventAppeared.OriginalEvent()
			p = e.Position
			if !isSystem(e.StreamID) && strings.HasPrefix(e.StreamID, prefix) {
				if r, ok := last[e.StreamID]; !ok || e.EventNumber > r {
					last[e.StreamID] = e.EventNumber
				}
			}
		default:
			continue
		}
		if p.Commit > head.Commit || (p.Commit == head.Commit && p.Prepare >= head.Prepare) {
			return page(last, after, limit), nil
		}
	}
}

func page(last map[string]uint64, after string, limit int) []domain.StreamInfo {
	names := make([]string, 0, len(last))
	for n := range last {
		if n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make([]domain.StreamInfo, len(names))
	for i, n := range names {
		out[i] = domain.StreamInfo{Name: n, LastRevision: last[n], Count: last[n] + 1}
	}
	return out
}

// rawHead is the position of the last record of $all, system or not.
func (l *Log) rawHead(ctx context.Context, c *esdb.Client) (esdb.Position, bool, error) {
	var p esdb.Position
	var ok bool
	err := l.read(ctx, c, func() (*esdb.ReadStream, error) {
		return c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	}, func(e *esdb.RecordedEvent) bool { p, ok = e.Position, true; return false })
	return p, ok, err
}
