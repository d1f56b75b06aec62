package rabbitmq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// ErrClosed is returned by calls on a closed Broker.
var ErrClosed = errors.New("rabbitmq broker closed")

// Broker owns one AMQP connection (re-established after a loss), the
// publisher channel and the consumers. Safe for concurrent use.
type Broker struct {
	cfg    Config
	log    *zap.Logger
	obs    Observer
	dec    Decoder
	tlsCfg *tls.Config
	where  string // host:port/vhost, no credentials
	vhost  string
	user   string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	window chan struct{} // confirm window slots

	mu        sync.Mutex
	cur       *session
	changed   chan struct{} // closed and replaced whenever cur changes
	started   bool          // supervisor running
	closed    bool
	declared  bool // DeclareTopology succeeded once: redeclare after reconnects
	wg        sync.WaitGroup
	declareMu sync.Mutex
	watching  bool // the unroutable depth poller runs

	queueInfo  QueueInfo        // the ledger queue as last declared
	unroutable UnroutableStatus // the unroutable queue's bound and depth

	attemptsMu sync.Mutex
	attempts   map[string]int // classic queues: Retry verdicts per message id

	pause pauseState // consuming paused while the store is unavailable (pause.go)
}

// New validates cfg; it does not connect (see Connect).
func New(cfg Config, logger *zap.Logger) (*Broker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rabbitmq config: %w", err)
	}
	tlsCfg, err := cfg.TLS.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq config: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	uri, _ := amqp.ParseURI(cfg.URL) // validated above
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:      cfg,
		obs:      cfg.Observer,
		dec:      Decoder{MaxBodyBytes: cfg.MaxBodyBytes, MaxDepth: cfg.MaxDepth},
		tlsCfg:   tlsCfg,
		where:    fmt.Sprintf("%s:%d/%s", uri.Host, uri.Port, uri.Vhost),
		vhost:    uri.Vhost,
		user:     uri.Username,
		ctx:      ctx,
		cancel:   cancel,
		window:   make(chan struct{}, cfg.ConfirmWindow),
		changed:  make(chan struct{}),
		attempts: map[string]int{},
	}
	b.log = logger.With(zap.String("component", "rabbitmq"), zap.String("broker", b.where))
	return b, nil
}

// Config returns the defaulted configuration in use.
func (b *Broker) Config() Config { return b.cfg }

// session is one live connection and its publisher channel.
type session struct {
	conn *amqp.Connection
	dead chan struct{} // closed when conn is gone

	pubMu sync.Mutex
	pub   *pubChan
}

func (s *session) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

func (b *Broker) dial() (*session, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(b.cfg.ConnectionName)
	conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{
		Heartbeat:       b.cfg.Heartbeat,
		TLSClientConfig: b.tlsCfg,
		Properties:      props,
		Locale:          "en_US",
	})
	if err != nil {
		// amqp091 dial errors name the address, never the URL's credentials.
		return nil, fmt.Errorf("dial %s: %w", b.where, err)
	}
	s := &session{conn: conn, dead: make(chan struct{})}
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		err, ok := <-closes
		if ok && err != nil {
			b.log.Warn("connection lost", zap.Int("code", err.Code), zap.String("reason", err.Reason))
		}
		close(s.dead)
	}()
	return s, nil
}

// Connect opens the first connection, retrying with backoff until ctx is
// done, and starts the supervisor that re-establishes it after a loss.
func (b *Broker) Connect(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.started {
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()

	s, err := b.dialRetry(ctx, false, true)
	var se *StartupError
	if errors.As(err, &se) {
		return se
	}
	if err != nil {
		return fmt.Errorf("connect %s: %w", b.where, err)
	}
	b.mu.Lock()
	if b.closed || b.started {
		b.mu.Unlock()
		_ = s.conn.Close()
		if b.closed {
			return ErrClosed
		}
		return nil
	}
	b.started = true
	b.setSessionLocked(s)
	b.wg.Add(1)
	b.mu.Unlock()
	b.log.Info("connected")
	go b.supervise(s)
	return nil
}

// dialRetry dials until it succeeds (redeclaring the topology when asked)
// or ctx / the broker is done. With failFast (the first connection) what
// retrying cannot fix ends it at once with a *StartupError.
func (b *Broker) dialRetry(ctx context.Context, redeclare, failFast bool) (*session, error) {
	delay := b.cfg.ReconnectMin
	for attempt := 1; ; attempt++ {
		s, err := b.dial()
		if err != nil && failFast {
			if se := b.startupError(err); se != nil {
				return nil, se
			}
		}
		if err == nil && redeclare {
			if err = b.declareOn(ctx, s); err != nil {
				_ = s.conn.Close()
			}
		}
		if err == nil {
			return s, nil
		}
		b.log.Warn("connect failed, retrying", zap.Int("attempt", attempt), zap.Duration("backoff", delay), zap.Error(err))
		if serr := sleep(ctx, b.ctx, delay); serr != nil {
			// Say why the last attempt failed, not only that time ran out.
			return nil, fmt.Errorf("%w (last attempt: %w)", serr, err)
		}
		delay = min(delay*2, b.cfg.ReconnectMax)
	}
}

func sleep(ctx, bctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-bctx.Done():
		return ErrClosed
	case <-t.C:
		return nil
	}
}

func (b *Broker) setSessionLocked(s *session) {
	b.cur = s
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *Broker) supervise(s *session) {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-s.dead:
		}
		b.mu.Lock()
		if b.cur == s {
			b.setSessionLocked(nil)
		}
		redeclare := b.declared
		b.mu.Unlock()

		ns, err := b.dialRetry(b.ctx, redeclare, false)
		if err != nil {
			return // closed
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = ns.conn.Close()
			return
		}
		b.setSessionLocked(ns)
		b.mu.Unlock()
		b.log.Info("reconnected", zap.Bool("topology_redeclared", redeclare))
		b.obs.OnReconnected()
		s = ns
	}
}

// acquire returns a live session, waiting through an outage until ctx is
// done.
func (b *Broker) acquire(ctx context.Context) (*session, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		s, changed := b.cur, b.changed
		b.mu.Unlock()
		if s != nil && !s.isDead() && !s.conn.IsClosed() {
			return s, nil
		}
		// A dead session is replaced by the supervisor, which signals changed.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.ctx.Done():
			return nil, ErrClosed
		case <-changed:
		}
	}
}

// Connected reports whether a connection is up (for readiness probes).
func (b *Broker) Connected() bool {
	b.mu.Lock()
	s := b.cur
	b.mu.Unlock()
	return s != nil && !s.isDead() && !s.conn.IsClosed()
}

// Close closes the connection; unacked deliveries return to the queue.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	s := b.cur
	b.cancel()
	b.mu.Unlock()
	var err error
	if s != nil && !s.conn.IsClosed() {
		if cerr := s.conn.Close(); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = fmt.Errorf("close connection: %w", cerr)
		}
	}
	b.wg.Wait()
	return err
}

// StartupError is what Connect returns, without retrying, when the broker
// refuses the first connection for a reason retrying cannot fix:
// authentication refused, virtual host missing or not allowed, TLS
// verification of the broker's certificate failed. After a good start
// the same refusals are retried like any connection loss (a password
// rotation or a broker being rebuilt is an outage, not a configuration
// error). Its text never holds the password.
type StartupError struct {
	// Setting is the setting to change, named as Validate names them:
	// "url", "ca_file" or "server_name".
	Setting string
	Problem string // what the broker or the TLS check refused
	Fix     string // what to change
	Err     error
}

func (e *StartupError) Error() string {
	return fmt.Sprintf("%s: %s; %s (retrying cannot fix this)", e.Setting, e.Problem, e.Fix)
}

func (e *StartupError) Unwrap() error { return e.Err }

// startupError classifies a dial error; nil when retrying may help.
func (b *Broker) startupError(err error) *StartupError {
	var (
		aerr     *amqp.Error
		verr     *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	se := &StartupError{Setting: "url", Err: err}
	switch {
	case errors.As(err, &hostname):
		se.Setting = "server_name"
		se.Problem = fmt.Sprintf("TLS verification failed at %s: %v", b.where, hostname)
		se.Fix = "connect with the host name the broker's certificate names, or set server_name to it"
	case errors.As(err, &verr), errors.As(err, &unknown), errors.As(err, &invalid):
		se.Setting = "ca_file"
		se.Problem = fmt.Sprintf("TLS verification of the broker's certificate failed at %s: %v", b.where, tlsCause(err))
		se.Fix = "set ca_file to the CA certificate (PEM) that signed the broker's certificate"
	case errors.Is(err, amqp.ErrSASL):
		se.Problem = fmt.Sprintf("%s offers no authentication mechanism the ledger speaks (PLAIN)", b.where)
		se.Fix = "enable PLAIN authentication on the broker"
	case errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused:
		se.Problem = fmt.Sprintf("authentication refused for user %q at %s", b.user, b.where)
		se.Fix = "check the user name and password in the url"
	case errors.Is(err, amqp.ErrVhost):
		se.Problem = fmt.Sprintf("user %q may not open virtual host %q at %s", b.user, b.vhost, b.where)
		se.Fix = "name an existing virtual host the user may access in the url's path"
	case errors.As(err, &aerr) && aerr.Code == amqp.NotAllowed && strings.Contains(aerr.Reason, "not found"):
		se.Problem = fmt.Sprintf("virtual host %q does not exist at %s", b.vhost, b.where)
		se.Fix = fmt.Sprintf("name an existing virtual host in the url's path (or create it: rabbitmqctl add_vhost %s)", shellQuote(b.vhost))
	case errors.As(err, &aerr) && aerr.Code == amqp.NotAllowed && strings.Contains(aerr.Reason, "refused for user"):
		se.Problem = fmt.Sprintf("user %q may not access virtual host %q at %s", b.user, b.vhost, b.where)
		se.Fix = fmt.Sprintf("use a user with access in the url, or grant it (rabbitmqctl set_permissions -p %s %s '.*' '.*' '.*')", shellQuote(b.vhost), shellQuote(b.user))
	default:
		// Anything else (refused, reset, timeout, a connection limit) may
		// pass: retried.
		return nil
	}
	return se
}

// tlsCause is the verification error itself, without the dial's wrapping.
func tlsCause(err error) error {
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) && verr.Err != nil {
		return verr.Err
	}
	return err
}
