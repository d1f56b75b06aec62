package rabbitmq

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/bookworm-ledger/ledger/domain"
)

// Queue types for Config.QueueType.
const (
	QueueQuorum  = "quorum"
	QueueClassic = "classic"
)

// Defaults applied by Config for zero values; the service takes its
// defaults from here. The queue and the unroutable exchange and queue
// default to domain.DefaultQueue and domain.UnroutableQueue.
const (
	// DefaultDeliveryLimit leaves room for many crashes and broker
	// restarts, which count as deliveries on quorum queues; poison messages
	// never depend on it (they are dead-lettered on their first delivery).
	DefaultDeliveryLimit = 50
	DefaultPrefetch      = 512
	DefaultBatchSize     = 128
	DefaultBatchWait     = 2 * time.Millisecond
	DefaultConfirmWindow = 1024
	DefaultReconnectMin  = 200 * time.Millisecond
	DefaultReconnectMax  = 10 * time.Second
	DefaultRetryDelay    = time.Second
	DefaultRetryDelayMax = 30 * time.Second
	DefaultMaxBodyBytes  = 1 << 20
	DefaultMaxDepth      = 64
	// DefaultHeartbeat is the AMQP heartbeat: a link that goes silent
	// (no close, no reset) is found dead after about this long, by either
	// side; it bounds a silent failover of the leader lease.
	DefaultHeartbeat = 10 * time.Second

	// DefaultUnroutableMaxLength bounds the unroutable queue: nothing reads
	// it, so without a bound a consumer that never binds fills the broker's
	// disk. 10,000 recent messages are enough to see what went wrong; the
	// oldest are dropped first (every outbound message can be built again
	// from the event store, and its id is deterministic).
	DefaultUnroutableMaxLength = 10000
	// DefaultUnroutableMaxAge: a week, so what went unroutable on a Friday
	// is still there to look at after the weekend; the length bound, not
	// the age, is what protects the disk.
	DefaultUnroutableMaxAge = 7 * 24 * time.Hour
	// DefaultUnroutablePoll is how often the unroutable queue's depth is
	// read (a passive declare) for the metric and the dropping log line.
	DefaultUnroutablePoll = 15 * time.Second
)

// TLS configures an amqps:// connection. Zero value: system roots, server
// name from the URL.
type TLS struct {
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

func (t TLS) set() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Binding binds the ledger queue to an inbound exchange, declared durable
// with Kind (default "fanout", as MassTransit's message-type exchanges).
type Binding struct {
	Exchange   string
	Kind       string
	RoutingKey string
}

// ExchangeSpec is an outbound exchange, durable, of Kind "fanout" or "topic".
type ExchangeSpec struct {
	Name string
	Kind string
	// NoAlternate declares the exchange without the alternate-exchange
	// argument. BookWorm's MassTransit services declare the command
	// exchanges themselves, without arguments; a declaration with different
	// arguments fails (406), so the ledger must not add one to theirs.
	NoAlternate bool
}

// QueueBinding is a downstream consumer's queue (a BookWorm MassTransit
// receive endpoint) declared and bound ahead of the consumer, so nothing
// published before it starts is dropped. It is declared the way MassTransit
// declares it (durable, classic unless QueueType says otherwise, plus a
// same-named fanout exchange bound to the queue and to Exchange), so the
// consumer's own declaration later is equivalent.
type QueueBinding struct {
	Queue      string
	Exchange   string
	RoutingKey string
	QueueType  string // "" = classic
}

// Observer receives metrics hooks; implementations must be cheap and safe
// for concurrent use. Embed NopObserver to stay compatible with new hooks.
type Observer interface {
	// OnConsumed is called once per delivery taken from the ledger queue;
	// msgType is "" when the envelope could not be decoded.
	OnConsumed(msgType string)
	// OnDeadLettered is called per message parked in `<queue>_error` or
	// `<queue>_skipped` by the adapter, with the verdict's reason.
	OnDeadLettered(reason string)
	// OnPublished is called per publication the broker confirmed.
	OnPublished(exchange string)
	// OnOutboundConfirmed is called per message of a Publisher.Publish
	// call once the broker confirmed the whole call; kind is the message's
	// domain.OutboundKind.
	OnOutboundConfirmed(kind string)
	// OnConfirmLatency is the time from publish to confirm.
	OnConfirmLatency(d time.Duration)
	// OnReturned is called per publication the broker returned as unroutable.
	OnReturned(exchange string)
	// OnRequeued is called per delivery nacked with requeue (Retry verdict).
	OnRequeued()
	// OnReconnected is called after a lost connection was re-established.
	OnReconnected()
	// OnUnroutableDepth is called with the unroutable queue's message count
	// each time it is read (every UnroutablePoll).
	OnUnroutableDepth(n int)
}

// NopObserver implements Observer and does nothing.
type NopObserver struct{}

func (NopObserver) OnConsumed(string)              {}
func (NopObserver) OnDeadLettered(string)          {}
func (NopObserver) OnPublished(string)             {}
func (NopObserver) OnOutboundConfirmed(string)     {}
func (NopObserver) OnConfirmLatency(time.Duration) {}
func (NopObserver) OnReturned(string)              {}
func (NopObserver) OnRequeued()                    {}
func (NopObserver) OnReconnected()                 {}
func (NopObserver) OnUnroutableDepth(int)          {}

var _ Observer = NopObserver{}

// Config configures a Broker. Zero values take the defaults above.
type Config struct {
	URL            string // amqp:// or amqps://; credentials never logged
	TLS            TLS
	ConnectionName string // shown in the management UI; default "ledger"
	Heartbeat      time.Duration

	Queue         string // ledger queue
	QueueType     string // "quorum" (default) or "classic"
	DeliveryLimit int    // deliveries before dead-lettering (quorum x-delivery-limit; counted in process for classic)
	Prefetch      int
	BatchSize     int
	BatchWait     time.Duration
	// RetryDelay is the pause before a Retry verdict is nacked, doubling per
	// consecutive retried batch up to RetryDelayMax, so that a store outage
	// does not burn the delivery limit in milliseconds.
	RetryDelay    time.Duration
	RetryDelayMax time.Duration
	// HoldMax bounds how long deliveries that wait for the store are held unacked before they are re-published (pause.go); default DefaultHoldMax.
	HoldMax time.Duration

	// InboundBindings: nil means DefaultInboundBindings(); an empty non-nil
	// slice binds nothing.
	InboundBindings []Binding
	// OutboundExchanges: nil means DefaultOutboundExchanges().
	OutboundExchanges []ExchangeSpec
	// ConsumerQueues are optional (see DefaultConsumerQueues).
	ConsumerQueues []QueueBinding

	UnroutableExchange string
	UnroutableQueue    string
	// NoAlternateExchangeArg declares outbound exchanges without the
	// `alternate-exchange` argument; set it when the exchanges are shared
	// with MassTransit services that declare them without arguments (an
	// argument mismatch makes either side's declaration fail) and set the
	// alternate exchange through a broker policy instead.
	NoAlternateExchangeArg bool
	// UnroutableMaxLength and UnroutableMaxAge bound the unroutable queue
	// (x-max-length with x-overflow drop-head, x-message-ttl); an existing
	// queue declared without them is kept, with a warning giving the
	// policy that bounds it. UnroutablePoll is how often its depth is read.
	UnroutableMaxLength int
	UnroutableMaxAge    time.Duration
	UnroutablePoll      time.Duration

	ConfirmWindow int // publications in flight awaiting confirms
	ReconnectMin  time.Duration
	ReconnectMax  time.Duration

	MaxBodyBytes int // inbound body limit, default 1 MiB
	MaxDepth     int // inbound JSON nesting limit, default 64

	Observer Observer
}

// DefaultInboundBindings bind the ledger queue to the exchange of each
// inbound type (the five BookWorm integration events and the six payment
// facts, domain.InboundTypes), all durable fanout.
func DefaultInboundBindings() []Binding {
	var bs []Binding
	for _, t := range domain.InboundTypes() {
		bs = append(bs, Binding{Exchange: domain.InboundExchange(t), Kind: "fanout"})
	}
	return bs
}

// DefaultOutboundExchanges: the AccelByte order-events topic exchange and
// the fanout exchange of each BookWorm command the ledger sends. The
// command exchanges are BookWorm's own (its services declare them without
// arguments), so they get no alternate-exchange argument.
func DefaultOutboundExchanges() []ExchangeSpec {
	out := []ExchangeSpec{{Name: domain.AccelByteExchange, Kind: "topic"}}
	for _, c := range domain.Commands() {
		out = append(out, ExchangeSpec{Name: domain.CommandExchange(c), Kind: "fanout", NoAlternate: true})
	}
	return out
}

// DefaultConsumerQueues are BookWorm's receive endpoints for the commands
// (the Basket and Notification services' queues, domain.ConsumerQueues).
func DefaultConsumerQueues() []QueueBinding {
	var out []QueueBinding
	for _, q := range domain.ConsumerQueues() {
		out = append(out, QueueBinding{Queue: q.Queue, Exchange: domain.CommandExchange(q.Command)})
	}
	return out
}

func (c *Config) setDefaults() {
	if c.ConnectionName == "" {
		c.ConnectionName = "ledger"
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Queue == "" {
		c.Queue = domain.DefaultQueue
	}
	if c.QueueType == "" {
		c.QueueType = QueueQuorum
	}
	if c.DeliveryLimit == 0 {
		c.DeliveryLimit = DefaultDeliveryLimit
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.BatchSize == 0 {
		c.BatchSize = min(DefaultBatchSize, c.Prefetch)
	}
	if c.BatchWait == 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.RetryDelayMax == 0 {
		c.RetryDelayMax = max(DefaultRetryDelayMax, c.RetryDelay)
	}
	if c.InboundBindings == nil {
		c.InboundBindings = DefaultInboundBindings()
	}
	if c.OutboundExchanges == nil {
		c.OutboundExchanges = DefaultOutboundExchanges()
	}
	for i := range c.InboundBindings {
		if c.InboundBindings[i].Kind == "" {
			c.InboundBindings[i].Kind = "fanout"
		}
	}
	for i := range c.OutboundExchanges {
		if c.OutboundExchanges[i].Kind == "" {
			c.OutboundExchanges[i].Kind = "fanout"
		}
	}
	for i := range c.ConsumerQueues {
		if c.ConsumerQueues[i].QueueType == "" {
			c.ConsumerQueues[i].QueueType = QueueClassic
		}
	}
	if c.UnroutableExchange == "" {
		c.UnroutableExchange = domain.UnroutableQueue // an exchange of the same name
	}
	if c.UnroutableQueue == "" {
		c.UnroutableQueue = domain.UnroutableQueue
	}
	if c.UnroutableMaxLength == 0 {
		c.UnroutableMaxLength = DefaultUnroutableMaxLength
	}
	if c.UnroutableMaxAge == 0 {
		c.UnroutableMaxAge = DefaultUnroutableMaxAge
	}
	if c.UnroutablePoll == 0 {
		c.UnroutablePoll = DefaultUnroutablePoll
	}
	if c.ConfirmWindow == 0 {
		c.ConfirmWindow = DefaultConfirmWindow
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
}

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	c.InboundBindings = append([]Binding(nil), c.InboundBindings...)
	c.OutboundExchanges = append([]ExchangeSpec(nil), c.OutboundExchanges...)
	c.ConsumerQueues = append([]QueueBinding(nil), c.ConsumerQueues...)
	c.setDefaults()
	return c
}

// Validate reports every problem of a defaulted config at once. Problems
// name the settings as the service's configuration keys do (queue_type,
// batch_size, ...).
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	uri, err := amqp.ParseURI(c.URL)
	switch {
	case c.URL == "":
		add("url: must not be empty")
	case err != nil:
		// The parser's message may echo the URL; keep credentials out of it.
		add("url: not a valid amqp:// or amqps:// URL")
	case uri.Scheme != "amqp" && uri.Scheme != "amqps":
		add("url: scheme must be amqp or amqps")
	case c.TLS.set() && uri.Scheme != "amqps":
		add("url: TLS settings need an amqps:// url")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("cert_file, key_file: the cert file and key file go together")
	}
	name := func(field, v string) {
		switch {
		case v == "":
			add("%s: must not be empty", field)
		case len(v) > 255:
			add("%s: longer than 255 bytes", field)
		}
	}
	name("queue", c.Queue)
	if c.QueueType != QueueQuorum && c.QueueType != QueueClassic {
		add("queue_type %q: the queue type must be quorum or classic", c.QueueType)
	}
	if c.DeliveryLimit < 1 {
		add("delivery_limit: must be at least 1")
	}
	if c.Prefetch < 1 || c.Prefetch > 65535 {
		add("prefetch %d: must be within 1..65535", c.Prefetch)
	}
	if c.BatchSize < 1 || c.BatchSize > c.Prefetch {
		add("batch_size %d: the batch size must be within 1..prefetch (%d)", c.BatchSize, c.Prefetch)
	}
	if c.BatchWait <= 0 {
		add("batch_wait: must be positive")
	}
	if c.RetryDelay <= 0 || c.RetryDelayMax < c.RetryDelay {
		add("retry delay: must be positive and not above retry delay max")
	}
	for i, b := range c.InboundBindings {
		name(fmt.Sprintf("inbound binding %d exchange", i), b.Exchange)
		if !validKind(b.Kind) {
			add("inbound binding %q: kind %q unknown", b.Exchange, b.Kind)
		}
	}
	for i, x := range c.OutboundExchanges {
		name(fmt.Sprintf("outbound exchange %d", i), x.Name)
		if x.Kind != "fanout" && x.Kind != "topic" {
			add("outbound exchange %q: kind %q, use fanout or topic", x.Name, x.Kind)
		}
	}
	for i, q := range c.ConsumerQueues {
		name(fmt.Sprintf("consumer queue %d", i), q.Queue)
		name(fmt.Sprintf("consumer queue %d exchange", i), q.Exchange)
		if q.QueueType != QueueQuorum && q.QueueType != QueueClassic {
			add("consumer queue %q: queue type %q, use quorum or classic", q.Queue, q.QueueType)
		}
	}
	name("unroutable exchange", c.UnroutableExchange)
	name("unroutable queue", c.UnroutableQueue)
	if c.UnroutableMaxLength < 1 {
		add("unroutable_max_length %d: must be at least 1", c.UnroutableMaxLength)
	}
	// x-message-ttl is whole milliseconds, at most 2^32-1 on the broker.
	if c.UnroutableMaxAge < time.Millisecond || c.UnroutableMaxAge.Milliseconds() > math.MaxUint32 {
		add("unroutable_max_age %s: must be within 1ms..%s", c.UnroutableMaxAge, time.Duration(math.MaxUint32)*time.Millisecond)
	}
	if c.UnroutablePoll <= 0 {
		add("unroutable poll: must be positive")
	}
	if c.ConfirmWindow < 1 {
		add("confirm window: must be at least 1")
	}
	if c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin {
		add("reconnect backoff: min must be positive and not above max")
	}
	if c.MaxBodyBytes < 1 {
		add("max body bytes: must be positive")
	}
	if c.MaxDepth < 2 {
		add("max depth: must be at least 2")
	}
	return errors.Join(errs...)
}

func validKind(k string) bool {
	switch k {
	case "fanout", "topic", "direct", "headers":
		return true
	}
	return false
}

// tlsConfig loads the files named in the config (nil when none is set).
func (t TLS) tlsConfig() (*tls.Config, error) {
	if !t.set() {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca file %s: no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
