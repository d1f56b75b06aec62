package eventstoredb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/bookworm-ledger/ledger/domain"
	"go.uber.org/zap"
)

var _ domain.EventLog = (*Log)(nil)

// Log is a domain.EventLog on EventStoreDB. Safe for concurrent use.
type Log struct {
	cfg    Config
	conf   *esdb.Configuration
	logger *zap.Logger
	ids    *idCache

	mu     sync.Mutex
	client *esdb.Client
	closed bool
	subs   map[*subscription]struct{}
}

// Open connects to EventStoreDB and checks the connection with one read.
// A nil logger discards logs.
func Open(ctx context.Context, cfg Config, logger *zap.Logger) (*Log, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventstoredb config: %w", err)
	}
	conf, err := cfg.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("eventstoredb config: %w", err)
	}
	// The client's own messages go to zap at debug level: what matters
	// reaches the caller as an error.
	clientLog := logger.Named("esdb-client").Sugar()
	conf.Logger = func(_ esdb.LogLevel, format string, args ...any) { clientLog.Debugf(format, args...) }
	if conf.Username != "" && conf.DisableTLS {
		logger.Warn("eventstoredb credentials are not sent: tls is disabled")
	}
	l := &Log{cfg: cfg, conf: conf, logger: logger, ids: newIDCache(cfg.IDCacheStreams), subs: map[*subscription]struct{}{}}
	if l.client, err = esdb.NewClient(conf); err != nil {
		return nil, fmt.Errorf("eventstoredb client: %w", err)
	}
	// A stream read works for every user; $all reads need admin rights.
	if _, err := l.ReadStream(ctx, "$ledger-connection-check", 0, domain.Forwards, 1); err != nil && !errors.Is(err, domain.ErrStreamNotFound) {
		_ = l.Close()
		return nil, fmt.Errorf("eventstoredb connect %s: %w", Redact(cfg.ConnectionString), err)
	}
	logger.Info("eventstoredb connected",
		zap.String("address", address(conf)), zap.Bool("tls", !conf.DisableTLS),
		zap.Bool("credentials", conf.Username != ""))
	return l, nil
}

func address(c *esdb.Configuration) string {
	if len(c.GossipSeeds) == 0 {
		return c.Address
	}
	seeds := make([]string, len(c.GossipSeeds))
	for i, s := range c.GossipSeeds {
		seeds[i] = s.String()
	}
	return strings.Join(seeds, ",")
}

// current returns the client, or ErrClosed.
func (l *Log) current() (*esdb.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, domain.ErrClosed
	}
	return l.client, nil
}

// fail classifies err. A client whose discovery failed is closed for good
// (ErrorCodeConnectionClosed on every later call); it is replaced so the
// next call can connect again. The call that met the failed discovery
// itself gets "maximum discovery attempt count reached" (the client has
// already marked itself closed): it replaces the client too, at once,
// because calls blocked on the dead client are set free only by closing
// it (see recoverClosed), and they may be every caller there is.
func (l *Log) fail(c *esdb.Client, err error) error {
	if isCode(err, esdb.ErrorCodeConnectionClosed) || discoveryFailed(err) {
		l.mu.Lock()
		if !l.closed && l.client == c {
			if fresh, nerr := esdb.NewClient(l.conf); nerr == nil {
				l.client = fresh
				_ = c.Close()
				l.logger.Warn("eventstoredb client closed after failed discovery; replaced")
			}
		}
		l.mu.Unlock()
	}
	return classify(err)
}

// discoveryFailed reports the error of the call that ended a client's
// connection loop. The client gives it no code of its own.
func discoveryFailed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// Close closes the subscriptions and the connection.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return domain.ErrClosed
	}
	l.closed = true
	subs := l.subs
	l.subs = nil
	c := l.client
	l.mu.Unlock()
	for s := range subs {
		_ = s.Close()
	}
	return c.Close()
}

// ReadStream implements domain.EventLog.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, dir domain.Direction, max int) (_ []domain.RecordedEvent, err error) {
	defer recoverClosed(&err)
	c, err := l.current()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	count := ^uint64(0)
	if max > 0 {
		count = uint64(max)
	}
	opts := esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(from)}
	if dir == domain.Backwards {
		opts.Direction = esdb.Backwards
		if from == domain.EndOfStream {
			opts.From = esdb.End{}
		}
	} else if from == domain.EndOfStream {
		// Nothing lies past the end; a server fails forwards reads from End.
		if _, err := l.ReadStream(ctx, stream, domain.EndOfStream, domain.Backwards, 1); err != nil {
			return nil, err
		}
		return nil, nil
	}
	var out []domain.RecordedEvent
	err = l.read(ctx, c, func() (*esdb.ReadStream, error) { return c.ReadStream(ctx, stream, opts, count) },
		func(e *esdb.RecordedEvent) bool { out = append(out, toDomain(e)); return true })
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return out, nil
}

// read runs one read and hands each event to f until f returns false.
func (l *Log) read(ctx context.Context, c *esdb.Client, open func() (*esdb.ReadStream, error), f func(*esdb.RecordedEvent) bool) error {
	rs, err := open()
	if err != nil {
		return l.fail(c, err)
	}
	defer rs.Close()
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return l.fail(c, err)
		}
		if !f(e.OriginalEvent()) {
			return nil
		}
	}
}

// ReadAll implements domain.EventLog: pages through $all forwards (the
// server's start is inclusive, the port's is exclusive) and drops system
// events.
func (l *Log) ReadAll(ctx context.Context, after *domain.Position, max int) (_ []domain.RecordedEvent, err error) {
	defer recoverClosed(&err)
	c, err := l.current()
	if err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	var out []domain.RecordedEvent
	var from esdb.AllPosition = esdb.Start{}
	if after != nil {
		from = esdb.Position{Commit: after.Commit, Prepare: after.Prepare}
	}
	for {
		count := uint64(l.cfg.ReadBatch)
		if max > 0 {
			count = min(count, uint64(max-len(out)+1))
		}
		var n uint64
		var last *domain.Position
		err := l.read(ctx, c, func() (*esdb.ReadStream, error) {
			return c.ReadAll(ctx, esdb.ReadAllOptions{From: from}, count)
		}, func(e *esdb.RecordedEvent) bool {
			n++
			p := domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
			if after != nil && !after.Less(p) {
				return true
			}
			last = &p
			if !isSystem(e.StreamID) {
				out = append(out, toDomain(e))
			}
			return max <= 0 || len(out) < max
		})
		if err != nil {
			return nil, fmt.Errorf("read all: %w", err)
		}
		if n < count || (max > 0 && len(out) >= max) || last == nil {
			return out, nil
		}
		after = last
		from = esdb.Position{Commit: last.Commit, Prepare: last.Prepare}
	}
}

// Head implements domain.EventLog: the last non-system event, since only
// those are ever delivered (a consumer waiting to reach the head of a real
// log would otherwise wait for a $statsCollected event forever).
func (l *Log) Head(ctx context.Context) (_ domain.Position, _ bool, err error) {
	defer recoverClosed(&err)
	c, err := l.current()
	if err != nil {
		return domain.Position{}, false, fmt.Errorf("head: %w", err)
	}
	var from esdb.AllPosition = esdb.End{}
	const page = 64
	for {
		var n int
		var found, lastPos *domain.Position
		err := l.read(ctx, c, func() (*esdb.ReadStream, error) {
			return c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: from}, page)
		}, func(e *esdb.RecordedEvent) bool {
			n++
			p := domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
			lastPos = &p
			if !isSystem(e.StreamID) {
				found = &p
				return false
			}
			return true
		})
		if err != nil {
			return domain.Position{}, false, fmt.Errorf("head: %w", err)
		}
		if found != nil {
			return *found, true, nil
		}
		if n < page {
			return domain.Position{}, false, nil
		}
		from = esdb.Position{Commit: lastPos.Commit, Prepare: lastPos.Prepare} // backwards: exclusive
	}
}

func isSystem(stream string) bool { return strings.HasPrefix(stream, "$") }

func toDomain(e *esdb.RecordedEvent) domain.RecordedEvent {
	return domain.RecordedEvent{
		Stream:   e.StreamID,
		Revision: e.EventNumber,
		Position: domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare},
		ID:       e.EventID.String(),
		Type:     e.EventType,
		Data:     nonEmpty(e.Data),
		Metadata: nonEmpty(e.UserMetadata),
		Created:  e.CreatedDate,
	}
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
