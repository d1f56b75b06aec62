package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Check is one readiness condition; /readyz runs them all.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Note is an informational line of /readyz ("parked: 2 orders"): it never
// makes the service unready, and its text is shown in the body, so it must
// name no host or secret. An empty text says nothing.
type Note struct {
	Name string
	Fn   func(ctx context.Context) (string, error)
}

// Deps are what the server reads from. Log, Orders and Audit are required.
type Deps struct {
	Log    domain.EventLog       // read only: ReadStream, ReadAll, ListStreams, Subscribe, Head
	Orders projections.ReadModel // read on every request: a replay may swap its rows
	// Audit folds an order's facts: those recorded at or before asOf, or
	// every one when asOf is zero (projections.AuditAsOf).
	Audit func(ctx context.Context, orderID string, asOf time.Time) (projections.AuditReport, error)
	// Replay rebuilds the read model; nil answers 501.
	Replay  func(ctx context.Context, dryRun, restate bool) (projections.ReplayResult, error)
	Ready   []Check
	Notes   []Note
	Metrics http.Handler // served at /metrics; nil: 404
	// Parked lists the parked lanes; RetryParked publishes them again
	// (nil: 501). See projections.Lifecycle.
	Parked      func(ctx context.Context) ([]projections.Parked, error)
	RetryParked func(ctx context.Context, orderIDs []string, all bool) ([]projections.RetryResult, error)
	// DeadLetters browses a dead-letter queue (DeadLetterError or
	// DeadLetterSkipped), at most limit messages, oldest first, leaving
	// them in place (nil: 501).
	DeadLetters func(ctx context.Context, queue string, limit int) ([]DeadLetter, error)
	// Observe, when set, is told about every request (for metrics). route
	// is the matched pattern ("GET /api/orders/{orderId}") or "unmatched".
	Observe func(route string, code int, elapsed time.Duration)

	// Index answers the stream browser's questions: orders by status,
	// sorted and searched by id prefix, money by day, the overview. nil:
	// /api/overview and /api/days answer 501, and /api/orders pages by
	// id only (after=), as before.
	Index projections.OrderIndex
	// Lag tells how many log positions each projection is behind the
	// log's head, by projection name. nil: the overview shows the read
	// model's own, from Log.Head and Orders.Checkpoint.
	Lag func(ctx context.Context) (map[string]int64, error)
	// DeadLetterDepth counts the messages in a dead-letter queue
	// (DeadLetterError or DeadLetterSkipped). nil: the overview says
	// dead-letter counts are not available.
	DeadLetterDepth func(ctx context.Context, queue string) (int, error)
	// Clock tells the overview which UTC day is today (nil: time.Now).
	Clock func() time.Time
	// Role says which instance this is and whether it leads (publishes);
	// /api/info shows it. nil: not shown.
	Role func() projections.LeaderStatus
	// Rules fold the facts for the books as of a moment (?as_of=, from
	// Log); zero fields are the defaults, the currency the server's.
	Rules domain.Rules
}

func (d Deps) validate() error {
	var errs []error
	if d.Log == nil {
		errs = append(errs, errors.New("deps: event log is required"))
	}
	if d.Orders == nil {
		errs = append(errs, errors.New("deps: read model is required"))
	}
	if d.Audit == nil {
		errs = append(errs, errors.New("deps: audit is required"))
	}
	for i, c := range d.Ready {
		if c.Name == "" || c.Fn == nil {
			errs = append(errs, fmt.Errorf("deps: ready check %d needs a name and a func", i))
		}
	}
	for i, n := range d.Notes {
		if n.Name == "" || n.Fn == nil {
			errs = append(errs, fmt.Errorf("deps: ready note %d needs a name and a func", i))
		}
	}
	return errors.Join(errs...)
}

// Server is the HTTP surface of the ledger.
type Server struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	handler http.Handler
	srv     *http.Server

	closing   chan struct{} // closed when Shutdown begins: ends live tails
	closeOnce sync.Once
	tails     chan struct{} // semaphore of live tails
	replaying atomic.Bool
	ready     atomic.Bool // last /readyz outcome, to log changes only

	mu       sync.Mutex
	serveErr error
	served   chan struct{}
}

// New builds a server. It does not listen until Start.
func New(cfg Config, deps Deps, logger *zap.Logger) (*Server, error) {
	if err := errors.Join(cfg.Validate(), deps.validate()); err != nil {
		return nil, fmt.Errorf("http api config: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		deps:    deps,
		log:     logger,
		closing: make(chan struct{}),
		tails:   make(chan struct{}, cfg.MaxTailClients),
	}
	s.ready.Store(true)
	s.handler = s.middleware(s.routes())
	s.srv = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(logger.Named("http")),
	}
	s.srv.RegisterOnShutdown(s.beginClose)
	return s, nil
}

// Handler is the server's full handler, middleware included.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on the configured address and serves in the background. It
// returns the bound address (useful with port 0). beforeServe, when not
// nil, runs with that address before the first request is answered: what
// a client that found the server must be able to rely on.
func (s *Server) Start(ctx context.Context, beforeServe func(addr string)) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.served = make(chan struct{})
	s.mu.Unlock()
	addr := ln.Addr().String()
	if beforeServe != nil {
		beforeServe(addr)
	}
	s.log.Info("http api listening", zap.String("addr", addr), zap.Bool("admin", s.cfg.Token != ""))
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http api stopped", zap.Error(err))
			s.mu.Lock()
			s.serveErr = err
			s.mu.Unlock()
		}
	}()
	return addr, nil
}

// Shutdown stops accepting connections, ends live tails and waits for
// requests in flight until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// Still busy at the deadline: drop the remaining connections.
		err = errors.Join(fmt.Errorf("http api shutdown: %w", err), s.srv.Close())
	}
	s.mu.Lock()
	served := s.served
	s.mu.Unlock()
	if served != nil {
		<-served
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.serveErr)
}

func (s *Server) beginClose() { s.closeOnce.Do(func() { close(s.closing) }) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.deps.Metrics != nil {
		mux.Handle("GET /metrics", s.deps.Metrics)
	}
	mux.HandleFunc("GET /api/info", s.info)
	// What matters first: orders by status, money today and in all, the
	// most recently active orders, projection lag, dead letters, parked.
	mux.HandleFunc("GET /api/overview", s.overview)
	mux.HandleFunc("GET /api/streams", s.listStreams)
	mux.HandleFunc("GET /api/streams/{stream}", s.readStream)
	// ?status=&sort=id|activity|amount&prefix=&cursor=&limit= (the index),
	// or ?after=&limit= (by id, without it).
	mux.HandleFunc("GET /api/orders", s.listOrders)
	// ?from=&to= (2006-01-02, UTC, inclusive): what moved on each day.
	mux.HandleFunc("GET /api/days", s.days)
	mux.HandleFunc("GET /api/orders/{orderId}", s.order)
	mux.HandleFunc("GET /api/orders/{orderId}/audit", s.audit)
	mux.HandleFunc("GET /api/orders/{orderId}/timeline.svg", s.timeline)
	mux.HandleFunc("GET /api/tail", s.tail)
	mux.HandleFunc("POST /api/admin/replay", s.replay)
	mux.HandleFunc("GET /api/parked", s.listParked)
	mux.HandleFunc("POST /api/admin/parked/retry", s.retryParked)
	mux.HandleFunc("GET /api/deadletters", s.listDeadLetters)
	mux.HandleFunc("GET /api/books/verify", s.verify)
	mux.HandleFunc("GET /api/books/trial-balance", s.trialBalance) // ?as_of=
	mux.HandleFunc("GET /api/books/report", s.booksReport)         // ?from=&to=&by=day|month&as_of=&format=json|csv
	mux.HandleFunc("GET /api/books/chart.svg", s.booksChart)       // the report's periods drawn
	mux.HandleFunc("GET /api/books/journal", s.booksJournal)       // ?from=&to=&order=&as_of=&format=json|csv
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /ui/static/{file}", s.static)
	mux.HandleFunc("GET /ui/", s.page)
	return mux
}

// middleware wraps every request: panics become 500s, security headers,
// the host check, the POST body limit, and observation.
func (s *Server) middleware(next http.Handler) http.Handler {
	hostOK := s.hostPolicy()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("http handler panic", zap.String("route", r.Pattern), zap.Any("panic", p), zap.Stack("stack"))
				if !rec.wrote {
					writeError(rec, http.StatusInternalServerError, "internal error")
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			if s.deps.Observe != nil {
				s.deps.Observe(route, code, time.Since(start))
			}
			s.log.Debug("http request", zap.String("method", r.Method), zap.String("route", route),
				zap.Int("code", code), zap.Duration("elapsed", time.Since(start)))
		}()
		h := rec.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		if !hostOK(r.Host) {
			writeError(rec, http.StatusMisdirectedRequest, "host not allowed")
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodDelete {
			r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(rec, r)
	})
}

// hostPolicy decides which Host headers are answered (DNS rebinding).
func (s *Server) hostPolicy() func(string) bool {
	allowed := map[string]bool{}
	for _, h := range s.cfg.AllowedHosts {
		if h == "*" {
			return func(string) bool { return true }
		}
		allowed[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	if len(allowed) == 0 {
		host, _, _ := net.SplitHostPort(s.cfg.Addr)
		if !isLoopback(host) {
			return func(string) bool { return true }
		}
	}
	return func(hostport string) bool {
		host := hostport
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if len(allowed) > 0 {
			return allowed[host]
		}
		return isLoopback(host)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// recorder remembers the status code; Unwrap lets http.ResponseController
// reach the connection (flush, write deadlines).
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.code, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
