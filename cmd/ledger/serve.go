package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

// openStore opens the configured event log.
func openStore(ctx context.Context, c Config, logger *zap.Logger) (domain.EventLog, error) {
	switch c.Store {
	case "esdb":
		l, err := eventstoredb.Open(ctx, c.esdbConfig(), logger.Named("esdb"))
		if err != nil {
			return nil, fmt.Errorf("open EventStoreDB: %w", err)
		}
		return l, nil
	default:
		if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		l, err := bolt.Open(c.storePath(), bolt.Config{}, logger.Named("store"))
		if err != nil {
			return nil, fmt.Errorf("open embedded store: %w", err)
		}
		return l, nil
	}
}

// service is a running `ledger serve`: what it opened, closed by Close in
// reverse order, and the parts Run runs.
type service struct {
	cfg     Config
	logger  *zap.Logger
	metrics *metrics
	store   domain.EventLog
	rm      *bolt.Swappable
	broker  *rabbitmq.Broker
	http    *httpapi.Server
	addr    string
	started time.Time             // when it took the store
	orders  *projections.Pausable // the read-model projection, paused by a replay's swap
	// lifecycle is the outbound publisher, nil when this instance does not
	// publish (projections.publisher=false); built by open so the HTTP API
	// can reach its parked lanes.
	lifecycle *projections.Lifecycle
	instance  string
	// With leader.election=rabbitmq, the publisher and the time-outs run
	// only in the terms leadership wins; their checkpoint and parked lanes
	// live in the shared store (shared), fenced against a deposed leader.
	leadership *projections.Leadership
	shared     *projections.SharedCheckpoint
	writer     atomic.Pointer[string] // the shared checkpoint's last writer, as last read
}

// open opens the store, the read model and the broker connection and
// declares the topology; nothing runs yet. On error what was opened is
// closed.
func open(ctx context.Context, c Config, logger *zap.Logger) (_ *service, err error) {
	s := &service{cfg: c, logger: logger, metrics: newMetrics(), instance: c.instance()}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	if s.store, err = openStore(ctx, c, logger); err != nil {
		return nil, lockedError(c, c.storePath(), err, true)
	}
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	rm, err := bolt.OpenReadModel(c.readModelPath())
	if err != nil {
		return nil, lockedError(c, c.readModelPath(), err, true)
	}
	s.rm = bolt.NewSwappable(rm)
	// This process owns the data dir now; the HTTP address follows once
	// it listens (Run). Until then the tools say serve is starting.
	s.started = time.Now().UTC()
	if err := writeOwner(c.DataDir, owner{PID: os.Getpid(), StartedAt: s.started, Version: version}); err != nil {
		logger.Warn("the tools will not find this server by themselves", zap.Error(err))
	}
	if s.broker, err = rabbitmq.New(brokerConfig(c, s.metrics), logger.Named("amqp")); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	logger.Info("connecting to broker", zap.String("url", redactURL(c.AMQP.URL)), zap.String("queue", c.AMQP.Queue))
	if err := s.broker.Connect(ctx); err != nil {
		return nil, connectError(c, err)
	}
	if err := s.broker.DeclareTopology(ctx); err != nil {
		return nil, fmt.Errorf("declare topology: %w", err)
	}
	if c.Projections.Publisher {
		if err := s.openPublisher(); err != nil {
			return nil, err
		}
	}
	s.metrics.registerRole(s.instance, s.role)
	if s.http, err = httpapi.New(c.httpConfig(), s.httpDeps(), logger.Named("http")); err != nil {
		return nil, fmt.Errorf("http config: %w", err)
	}
	return s, nil
}

func brokerConfig(c Config, m *metrics) rabbitmq.Config {
	bc := rabbitmq.Config{
		URL: c.AMQP.URL, ConnectionName: "ledger " + c.instance(), Heartbeat: c.AMQP.Heartbeat,
		Queue: c.AMQP.Queue, QueueType: c.AMQP.QueueType, Prefetch: c.AMQP.Prefetch, DeliveryLimit: c.AMQP.DeliveryLimit,
		BatchSize: c.AMQP.BatchSize, BatchWait: c.AMQP.BatchWait,
	}
	bc.TLS.CAFile, bc.TLS.CertFile, bc.TLS.KeyFile, bc.TLS.ServerName = c.AMQP.CAFile, c.AMQP.CertFile, c.AMQP.KeyFile, c.AMQP.ServerName
	bc.UnroutableMaxLength, bc.UnroutableMaxAge = c.AMQP.UnroutableMaxLength, c.AMQP.UnroutableMaxAge
	// Inbound bindings and outbound exchanges are the adapter's defaults:
	// the contract's exchanges.
	if c.AMQP.DeclareConsumerQueues {
		bc.ConsumerQueues = rabbitmq.DefaultConsumerQueues()
	}
	if m != nil {
		bc.Observer = brokerObserver{m}
	}
	return bc
}

func (s *service) httpDeps() httpapi.Deps {
	rules, out := s.cfg.rules(), s.cfg.outbound()
	d := httpapi.Deps{
		Log:    s.store,
		Orders: s.rm,
		Audit: func(ctx context.Context, id string, asOf time.Time) (projections.AuditReport, error) {
			rep, err := projections.AuditAsOf(ctx, s.store, rules, out, id, asOf)
			if err != nil || !asOf.IsZero() {
				return rep, err // the parked lanes are now's, not as of then
			}
			if rep.Parked, err = projections.ParkedOf(ctx, s.rm, id); err != nil {
				return rep, err
			}
			return rep, nil
		},
		Replay:      s.replay,
		Ready:       s.readiness(),
		Notes:       s.readyNotes(),
		Metrics:     promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}),
		DeadLetters: s.deadLetters,
		Role:        s.role,
	}
	if s.lifecycle != nil {
		d.Parked, d.RetryParked = s.lifecycle.Parked, s.lifecycle.RetryParked
	}
	d.Index, d.Lag, d.DeadLetterDepth = s.rm, s.lags, s.deadLetterDepth
	d.Rules = rules // the books as of a moment fold with them
	return d
}

// lags is how far each projection this instance runs is behind the log.
func (s *service) lags(ctx context.Context) (map[string]int64, error) {
	names := []string{projections.ReadModelName}
	if s.publishing() {
		names = append(names, projections.LifecycleName)
	}
	out := make(map[string]int64, len(names))
	for _, n := range names {
		lag, err := s.lagOf(ctx, n)
		if err != nil {
			return nil, err
		}
		out[n] = lag
	}
	return out, nil
}

// deadLetterDepth counts a dead-letter queue's messages for the home page.
func (s *service) deadLetterDepth(ctx context.Context, queue string) (int, error) {
	if !s.broker.Connected() {
		return 0, fmt.Errorf("dead letters: %w: not connected to the broker", domain.ErrUnavailable)
	}
	return s.broker.DeadLetterDepth(ctx, queue)
}

// projectionObserver reports the projections' progress, failures and
// parks into the metrics and the log.
func (s *service) projectionObserver() projectionObserver {
	return projectionObserver{m: s.metrics,
		log: func(msg, name string, err error) {
			s.logger.Warn(msg, zap.String("projection", name), zap.Error(err))
		},
		park: func(what string, p projections.Parked) {
			fields := []zap.Field{zap.String("order", p.OrderID), zap.String("kind", string(p.Kind)),
				zap.String("reason", p.Reason), zap.String("detail", p.Detail), zap.Uint64("from_revision", p.FromRevision),
				zap.String("message", p.Message), zap.String("message_id", p.MessageID), zap.Int("retries", p.Retries)}
			if what == "parked" {
				// Every other order goes on; this one waits for `ledger parked retry`.
				s.logger.Warn("outbound lane parked", fields...)
				return
			}
			s.logger.Info("outbound lane unparked", fields...)
		}}
}

// deadLetterTimeout bounds one browse of a dead-letter queue for the API.
const deadLetterTimeout = 20 * time.Second

// deadLetters browses a dead-letter queue for the stream browser.
func (s *service) deadLetters(ctx context.Context, queue string, limit int) ([]httpapi.DeadLetter, error) {
	if !s.broker.Connected() {
		return nil, fmt.Errorf("dead letters: %w: not connected to the broker", domain.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	msgs, err := s.broker.DeadLetters(ctx, queue, limit)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.DeadLetter, len(msgs))
	for i, m := range msgs {
		out[i] = httpapi.DeadLetter{MessageID: m.MessageID, Type: m.Type, Time: m.Time, Reason: m.Reason, Detail: m.Detail,
			Exchange: m.Exchange, RoutingKey: m.RoutingKey, ContentType: m.ContentType, Headers: m.Headers, Body: m.Body}
	}
	return out, nil
}

// Run runs every part until ctx is done or one of them fails, then stops
// them all and returns the first failure. Shutdown order: the parts share
// one context, so all of them stop together when it ends: the consumer
// stops taking deliveries (unacked ones go back to the queue), the
// projections finish their batch (the lifecycle publisher writes its last
// confirmed checkpoint), the HTTP server drains its requests. Run returns
// only when every one of them has returned; Close then closes the broker
// connection, the read model and the store, in that order.
func (s *service) Run(ctx context.Context) error {
	// The tools find this process by the owner file (see discover.go),
	// written before the first request is answered: whoever saw this
	// server ready finds it there.
	addr, err := s.http.Start(ctx, func(addr string) {
		if err := writeOwner(s.cfg.DataDir, owner{PID: os.Getpid(), HTTP: addr, StartedAt: s.started, Version: version}); err != nil {
			s.logger.Warn("the tools will not find this server by themselves", zap.Error(err))
		}
	})
	if err != nil {
		return fmt.Errorf("start http on %s: %w", s.cfg.HTTP.Addr, err)
	}
	s.addr = addr
	c, rules := s.cfg, s.cfg.rules()
	obs := s.projectionObserver()
	in := &ingest.Ingester{Log: s.store, Currency: c.currency(), Observer: ingestObserver{s.metrics}}
	s.orders = projections.NewPausable(func(ctx context.Context) error {
		return projections.NewOrders(s.store, s.rm, projections.ReadModelConfig{Rules: rules, Observer: obs}).Run(ctx)
	})

	g, gctx := errgroup.WithContext(ctx)
	part := func(name string, run func(context.Context) error) {
		g.Go(func() error {
			if err := run(gctx); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	part("http", s.serveHTTP)
	part("consumer", func(ctx context.Context) error { return s.broker.Consume(ctx, rabbitmq.IngestHandler(in)) })
	part("readmodel", s.orders.Run)
	switch {
	case s.leadership != nil:
		part("leadership", s.leadership.Run)
	case c.Leader.Election == electionNone:
		part("timeouts", s.timeouts().Run)
		if s.lifecycle != nil {
			part("lifecycle", s.lifecycle.Run)
		}
	}
	part("lag", s.watchLag)
	part("memory", s.releaseMemory)
	if c.Seal.Every > 0 {
		part("seal", s.sealer().Run) // verify.go
	}
	s.logger.Info("ledger serving", zap.String("instance", s.instance), zap.String("store", c.Store), zap.String("http", s.addr),
		zap.String("profile", c.Profile), zap.String("election", c.Leader.Election))
	err = g.Wait()
	if err != nil && ctx.Err() == nil {
		s.logger.Error("component failed; shutting down", zap.Error(err))
	} else {
		s.logger.Info("shut down")
	}
	return err
}

// serveHTTP holds the HTTP server for the life of ctx and then drains it.
func (s *service) serveHTTP(ctx context.Context) error {
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.http.Shutdown(sctx)
}

// Close closes what open opened, in reverse order. Call it after Run has
// returned (or instead of Run).
func (s *service) Close() error {
	var errs []error
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	if s.rm != nil {
		errs = append(errs, s.rm.Close())
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// serve runs the service until ctx is done or a component fails.
func serve(ctx context.Context, c Config, logger *zap.Logger) error {
	if c.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit keeps the heap near what is live instead of letting
		// it double between collections.
		debug.SetMemoryLimit(c.MemoryLimit)
	}
	s, err := open(ctx, c, logger)
	if err != nil {
		return errors.Join(err, removeOwner(c.DataDir, os.Getpid()))
	}
	// The owner file goes once the store is closed: a tool that still
	// reads it finds a server that does not answer, then a free store.
	return errors.Join(s.Run(ctx), s.Close(), removeOwner(c.DataDir, os.Getpid()))
}

// replay rebuilds the read model through the running service. A real
// replay pauses the read-model projection across the swap, so that it
// resumes from the rebuilt model's checkpoint.
func (s *service) replay(ctx context.Context, dryRun, restate bool) (projections.ReplayResult, error) {
	if !dryRun {
		resume, err := s.orders.Pause(ctx)
		if err != nil {
			return projections.ReplayResult{}, fmt.Errorf("pause the read-model projection: %w", err)
		}
		defer resume()
	}
	res, restated, err := s.rm.Rebuild(ctx, s.store, bolt.RebuildOptions{Rules: s.cfg.rules(), DryRun: dryRun, Restate: restate})
	if err == nil {
		s.logger.Info("replay finished", zap.Int64("facts", res.Facts), zap.Int64("orders", res.Orders),
			zap.Int("changes", len(res.Changes)), zap.Int("restated", restated), zap.Bool("dry_run", dryRun))
	}
	return res, err
}

// readiness lists what /readyz checks.
func (s *service) readiness() []httpapi.Check {
	return []httpapi.Check{
		{Name: "broker", Fn: func(ctx context.Context) error {
			if !s.broker.Connected() {
				return errors.New("not connected to the broker")
			}
			return nil
		}},
		{Name: "store", Fn: func(ctx context.Context) error {
			_, _, err := s.store.Head(ctx)
			return err
		}},
		// A consumer holding its deliveries for a store outage takes no
		// new ones: not ready, though the process is healthy.
		{Name: "ingest", Fn: func(context.Context) error {
			if reason, _, paused := s.broker.Paused(); paused {
				return fmt.Errorf("ingest paused: %s", reason)
			}
			return nil
		}},
		{Name: "projections", Fn: func(ctx context.Context) error {
			lag, err := s.lagOf(ctx, projections.ReadModelName)
			if err != nil {
				return err
			}
			if lag > s.cfg.Projections.MaxLag {
				return fmt.Errorf("read model lags %d positions behind (bound %d)", lag, s.cfg.Projections.MaxLag)
			}
			return nil
		}},
	}
}

// readyNotes lists what /readyz tells without deciding: how many orders
// are parked, and why ingest is paused (the "ingest" check is what fails).
func (s *service) readyNotes() []httpapi.Note {
	notes := []httpapi.Note{{Name: "role", Fn: func(context.Context) (string, error) { return roleNote(s.role()), nil }},
		{Name: "ingest", Fn: func(context.Context) (string, error) {
			reason, since, paused := s.broker.Paused()
			if !paused {
				return "", nil
			}
			// The reason is the store's error: shown, as /readyz must say why,
			// with any credentials in it scrubbed like the logs.
			return fmt.Sprintf("ingest paused since %s: %s", since.UTC().Format(time.RFC3339), scrub([]byte(reason))), nil
		}}}
	if s.lifecycle != nil {
		notes = append(notes, httpapi.Note{Name: "parked", Fn: func(ctx context.Context) (string, error) {
			lanes, err := s.lifecycle.Parked(ctx)
			if err != nil {
				return "", err
			}
			orders := map[string]bool{}
			for _, p := range lanes {
				orders[p.OrderID] = true
			}
			return fmt.Sprintf("parked: %d orders (%d lanes)", len(orders), len(lanes)), nil
		}})
	}
	return notes
}

func (s *service) lagOf(ctx context.Context, name string) (int64, error) {
	head, ok, err := s.store.Head(ctx)
	if err != nil || !ok {
		return 0, err
	}
	var cps projections.CheckpointStore = s.rm
	if name == projections.LifecycleName && s.shared != nil {
		cps = s.shared
	}
	cp, err := cps.Checkpoint(ctx, name)
	if err != nil {
		return 0, err
	}
	if cp == nil {
		return int64(head.Commit) + 1, nil
	}
	return int64(head.Commit) - int64(cp.Commit), nil
}

func (s *service) watchLag(ctx context.Context) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		for _, name := range []string{projections.ReadModelName, projections.LifecycleName} {
			if name == projections.LifecycleName && !s.publishing() {
				continue // a follower's publisher checkpoint is the leader's
			}
			if lag, err := s.lagOf(ctx, name); err == nil {
				s.metrics.lag.WithLabelValues(name).Set(float64(lag))
			}
		}
		if s.lifecycle != nil {
			if lanes, err := s.lifecycle.Parked(ctx); err == nil {
				s.metrics.setParked(lanes)
			}
		}
		s.watchWriter(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// releaseMemory drops, now and then, the pages of the store's and the read
// model's files that the process has mapped in: they stay in the page cache
// and come back on the next read, but do not count against the service's
// resident memory meanwhile.
func (s *service) releaseMemory(ctx context.Context) error {
	type releaser interface{ ReleaseMemory() error }
	// Every second: under load the commits and the projections' reads map
	// in tens of MB of file pages within a few seconds.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if r, ok := s.store.(releaser); ok {
			_ = r.ReleaseMemory()
		}
		_ = s.rm.ReleaseMemory()
	}
}
