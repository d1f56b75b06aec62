package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// openStore opens the configured event log.
func openStore(ctx context.Context, c Config, logger *zap.Logger) (domain.EventLog, error) {
	switch c.Store {
	case "esdb":
		l, err := eventstoredb.Open(ctx, eventstoredb.Config{
			ConnectionString: c.ESDB.URL, TLSCAFile: c.ESDB.CAFile, Username: c.ESDB.Username, Password: c.ESDB.Password,
		}, logger.Named("esdb"))
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

// service is a running `ledger serve`: everything it opened, closed in
// reverse order by Close.
type service struct {
	cfg     Config
	logger  *zap.Logger
	metrics *metrics
	store   domain.EventLog
	rm      *swappableReadModel
	broker  *rabbitmq.Broker
	http    *httpapi.Server
	addr    string

	orders *restartable

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

func brokerConfig(c Config, m *metrics) rabbitmq.Config {
	bc := rabbitmq.Config{
		URL: c.AMQP.URL, ConnectionName: "ledger",
		Queue: c.AMQP.Queue, QueueType: c.AMQP.QueueType, Prefetch: c.AMQP.Prefetch, DeliveryLimit: c.AMQP.DeliveryLimit,
		BatchSize: c.AMQP.BatchSize, BatchWait: c.AMQP.BatchWait,
	}
	bc.TLS.CAFile, bc.TLS.CertFile, bc.TLS.KeyFile, bc.TLS.ServerName = c.AMQP.CAFile, c.AMQP.CertFile, c.AMQP.KeyFile, c.AMQP.ServerName
	// Inbound bindings and outbound exchanges: the adapter's defaults are
	// exactly DESIGN §2 and §5.
	if c.AMQP.DeclareConsumerQueues {
		bc.ConsumerQueues = rabbitmq.DefaultConsumerQueues()
	}
	if m != nil {
		bc.Observer = brokerObserver{m}
	}
	return bc
}

// startService opens everything and starts the consumer, the projections
// and the HTTP server. The caller must Close it.
func startService(ctx context.Context, c Config, logger *zap.Logger) (*service, error) {
	s := &service{cfg: c, logger: logger, metrics: newMetrics(), errs: make(chan error, 8)}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	var err error
	if s.store, err = openStore(ctx, c, logger); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	rm, err := bolt.OpenReadModel(c.readModelPath())
	if err != nil {
		return nil, err
	}
	s.rm = &swappableReadModel{cur: rm}

	s.broker, err = rabbitmq.New(brokerConfig(c, s.metrics), logger.Named("amqp"))
	if err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	logger.Info("connecting to broker", zap.String("url", redactURL(c.AMQP.URL)), zap.String("queue", c.AMQP.Queue))
	if err := s.broker.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to broker %s: %w", redactURL(c.AMQP.URL), err)
	}
	if err := s.broker.DeclareTopology(ctx); err != nil {
		return nil, fmt.Errorf("declare topology: %w", err)
	}

	rules, out := c.rules(), c.outbound()
	obs := projectionObserver{m: s.metrics, log: func(msg, name string, err error) {
		logger.Warn(msg, zap.String("projection", name), zap.Error(err))
	}}
	s.http, err = httpapi.New(httpapi.Config{Addr: c.HTTP.Addr, Token: c.HTTP.Token, Currency: c.currency()}, httpapi.Deps{
		Log:    s.store,
		Orders: s.rm,
		Audit: func(ctx context.Context, id string) (projections.AuditReport, error) {
			return projections.Audit(ctx, s.store, rules, out, id)
		},
		Replay: func(ctx context.Context, dryRun, restate bool) (projections.ReplayResult, error) {
			return s.replay(ctx, dryRun, restate)
		},
		Ready:   s.readiness(),
		Metrics: promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}),
	}, logger.Named("http"))
	if err != nil {
		return nil, fmt.Errorf("http config: %w", err)
	}
	if s.addr, err = s.http.Start(ctx); err != nil {
		return nil, fmt.Errorf("start http on %s: %w", c.HTTP.Addr, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	in := &ingester{log: s.store, cur: c.currency(), now: time.Now, parallel: 64, metrics: s.metrics}
	s.goRun("consumer", func() error { return s.broker.Consume(runCtx, in.handle) })
	s.orders = &restartable{parent: runCtx, run: func(ctx context.Context) error {
		return projections.NewOrders(s.store, s.rm, projections.ReadModelConfig{Rules: rules, Observer: obs}).Run(ctx)
	}, errs: s.errs}
	s.orders.Start()
	s.goRun("timeouts", func() error {
		return projections.NewTimeouts(s.store, s.rm, projections.TimeoutsConfig{Currency: c.currency(), Observer: obs}).Run(runCtx)
	})
	if c.Projections.Publisher {
		pub := &outboundPublisher{broker: s.broker, envelope: c.AMQP.Envelope, queue: c.AMQP.Queue, metrics: s.metrics}
		s.goRun("lifecycle", func() error {
			return projections.NewLifecycle(s.store, pub, s.rm, projections.LifecycleConfig{Rules: rules, Outbound: out, Observer: obs}).Run(runCtx)
		})
	}
	s.goRun("lag", func() error { s.watchLag(runCtx); return nil })
	s.goRun("memory", func() error { s.releaseMemory(runCtx); return nil })
	logger.Info("ledger serving", zap.String("store", c.Store), zap.String("http", s.addr), zap.String("profile", c.Profile))
	ok = true
	return s, nil
}

func (s *service) goRun(name string, fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil {
			s.errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
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

func (s *service) lagOf(ctx context.Context, name string) (int64, error) {
	head, ok, err := s.store.Head(ctx)
	if err != nil || !ok {
		return 0, err
	}
	cp, err := s.rm.Checkpoint(ctx, name)
	if err != nil {
		return 0, err
	}
	if cp == nil {
		return int64(head.Commit) + 1, nil
	}
	return int64(head.Commit) - int64(cp.Commit), nil
}

func (s *service) watchLag(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		for _, name := range []string{projections.ReadModelName, projections.LifecycleName} {
			if lag, err := s.lagOf(ctx, name); err == nil {
				s.metrics.lag.WithLabelValues(name).Set(float64(lag))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops everything in reverse order of starting.
func (s *service) Close() error {
	var errs []error
	if s.cancel != nil {
		s.cancel()
	}
	if s.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.http.Shutdown(sctx))
		cancel()
	}
	if s.orders != nil {
		s.orders.Stop()
	}
	s.wg.Wait()
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
	s, err := startService(ctx, c, logger)
	if err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-s.errs:
		logger.Error("component failed; shutting down", zap.Error(runErr))
	}
	return errors.Join(runErr, s.Close())
}

// restartable is a projection a replay stops before it swaps the read model
// and starts again after, so the projection resumes from the new model's
// checkpoint rather than from where it was in the old one.
type restartable struct {
	parent context.Context
	run    func(ctx context.Context) error
	errs   chan error

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *restartable) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.parent)
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	go func() {
		defer close(done)
		if err := r.run(ctx); err != nil {
			r.errs <- fmt.Errorf("readmodel: %w", err)
		}
	}()
}

func (r *restartable) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel, r.done = nil, nil
}

// releaseMemory drops, now and then, the pages of the store's and the read
// model's files that the process has mapped in: they stay in the page cache
// and come back on the next read, but do not count against the service's
// resident memory meanwhile.
func (s *service) releaseMemory(ctx context.Context) {
	type releaser interface{ ReleaseMemory() error }
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r, ok := s.store.(releaser); ok {
			_ = r.ReleaseMemory()
		}
		s.rm.mu.RLock()
		_ = s.rm.cur.ReleaseMemory()
		s.rm.mu.RUnlock()
	}
}
