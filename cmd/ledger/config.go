package main

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// Config is everything the service can be told. It is read from a file
// (--config), LEDGER_* environment variables (LEDGER_AMQP_URL for
// amqp.url) and flags, in rising precedence, over the profile's defaults.
type Config struct {
	Profile string `mapstructure:"profile"`
	Store   string `mapstructure:"store"` // embedded | esdb
	// MemoryLimit is the Go runtime's soft memory limit in bytes (GOMEMLIMIT
	// wins when set); 0 leaves the runtime's default.
	MemoryLimit int64  `mapstructure:"memory_limit"`
	DataDir     string `mapstructure:"data_dir"`

	ESDB struct {
		URL      string `mapstructure:"url"`
		CAFile   string `mapstructure:"ca_file"`
		Username string `mapstructure:"username"`
		Password string `mapstructure:"password"`
	} `mapstructure:"esdb"`

	AMQP struct {
		URL                   string        `mapstructure:"url"`
		CAFile                string        `mapstructure:"ca_file"`
		CertFile              string        `mapstructure:"cert_file"`
		KeyFile               string        `mapstructure:"key_file"`
		ServerName            string        `mapstructure:"server_name"`
		Queue                 string        `mapstructure:"queue"`
		QueueType             string        `mapstructure:"queue_type"` // quorum | classic
		Prefetch              int           `mapstructure:"prefetch"`
		DeliveryLimit         int           `mapstructure:"delivery_limit"` // deliveries before a message that keeps failing goes to <queue>_error
		BatchSize             int           `mapstructure:"batch_size"`     // deliveries appended together
		BatchWait             time.Duration `mapstructure:"batch_wait"`     // how long a batch waits to fill
		DeclareConsumerQueues bool          `mapstructure:"declare_consumer_queues"`
		Envelope              string        `mapstructure:"envelope"` // outbound commands: masstransit | cloudevents | bare
		// The unroutable queue's bound: the oldest messages are dropped past
		// this many, and expire past this age.
		UnroutableMaxLength int           `mapstructure:"unroutable_max_length"`
		UnroutableMaxAge    time.Duration `mapstructure:"unroutable_max_age"`
	} `mapstructure:"amqp"`

	HTTP struct {
		Addr  string `mapstructure:"addr"`
		Token string `mapstructure:"token"` // required by endpoints that change state
	} `mapstructure:"http"`

	Rules struct {
		Currency             string        `mapstructure:"currency"`
		CurrencyDecimals     int           `mapstructure:"currency_decimals"`
		CurrencySymbol       string        `mapstructure:"currency_symbol"`
		PlacementTimeout     time.Duration `mapstructure:"placement_timeout"`
		MaxPlacementAttempts int           `mapstructure:"max_placement_attempts"`
		RefundSettlement     string        `mapstructure:"refund_settlement"` // immediate | provider
	} `mapstructure:"rules"`

	AccelByte struct {
		Namespace       string `mapstructure:"namespace"`
		ParentNamespace string `mapstructure:"parent_namespace"`
		ClientID        string `mapstructure:"client_id"`
	} `mapstructure:"accelbyte"`

	Projections struct {
		Publisher bool  `mapstructure:"publisher"` // run the lifecycle publisher in this instance
		MaxLag    int64 `mapstructure:"max_lag"`   // readiness bound on the read model's lag (positions)
	} `mapstructure:"projections"`

	Log struct {
		Level  string `mapstructure:"level"`
		Format string `mapstructure:"format"` // console | json
	} `mapstructure:"log"`
}

// profiles are the seed's four environments plus "local", the default,
// which talks to a broker on this machine.
var profiles = map[string]map[string]any{
	"local":       {"amqp.url": "amqp://guest:guest@127.0.0.1:5672/", "log.format": "console", "log.level": "info"},
	"development": {"amqp.url": "amqp://dev.eventbus:5672/", "log.format": "console", "log.level": "debug"},
	"staging":     {"amqp.url": "amqp://stg.eventbus:5672/", "log.format": "json", "log.level": "info"},
	"qa":          {"amqp.url": "amqp://qa.eventbus:5672/", "log.format": "json", "log.level": "info"},
	"production":  {"amqp.url": "amqp://prod.eventbus:5672/", "log.format": "json", "log.level": "info", "store": "esdb"},
}

func profileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Defaults of the service's own settings; everything else defaults to
// what the package that owns the setting says.
const (
	defaultProfile     = "local"
	defaultStore       = "embedded"
	defaultDataDir     = "data"
	defaultMemoryLimit = 96 << 20
	defaultMaxLag      = 10000
)

func setDefaults(v *viper.Viper) {
	rules, out := domain.DefaultRules(), domain.DefaultOutboundConfig()
	v.SetDefault("profile", defaultProfile)
	v.SetDefault("store", defaultStore)
	v.SetDefault("data_dir", defaultDataDir)
	v.SetDefault("memory_limit", defaultMemoryLimit)
	v.SetDefault("esdb.url", eventstoredb.DefaultConnectionString)
	v.SetDefault("amqp.queue", domain.DefaultQueue)
	v.SetDefault("amqp.queue_type", rabbitmq.QueueQuorum)
	v.SetDefault("amqp.prefetch", rabbitmq.DefaultPrefetch)
	v.SetDefault("amqp.delivery_limit", rabbitmq.DefaultDeliveryLimit)
	v.SetDefault("amqp.batch_size", rabbitmq.DefaultBatchSize)
	v.SetDefault("amqp.batch_wait", rabbitmq.DefaultBatchWait)
	v.SetDefault("amqp.declare_consumer_queues", true)
	v.SetDefault("amqp.envelope", domain.EnvelopeMassTransit)
	v.SetDefault("amqp.unroutable_max_length", rabbitmq.DefaultUnroutableMaxLength)
	v.SetDefault("amqp.unroutable_max_age", rabbitmq.DefaultUnroutableMaxAge)
	v.SetDefault("http.addr", httpapi.DefaultAddr)
	v.SetDefault("rules.currency", rules.Currency.Code)
	v.SetDefault("rules.currency_decimals", rules.Currency.Decimals)
	v.SetDefault("rules.currency_symbol", out.CurrencySymbol)
	v.SetDefault("accelbyte.namespace", out.Namespace)
	v.SetDefault("accelbyte.parent_namespace", out.ParentNamespace)
	v.SetDefault("accelbyte.client_id", out.ClientID)
	v.SetDefault("rules.placement_timeout", rules.PlacementTimeout)
	v.SetDefault("rules.max_placement_attempts", rules.MaxPlacementAttempts)
	v.SetDefault("rules.refund_settlement", string(rules.RefundSettlement))
	v.SetDefault("projections.publisher", true)
	v.SetDefault("projections.max_lag", defaultMaxLag)
	v.SetDefault("log.level", "info")
	v.SetDefault("log.format", "console")
	// Every key must be known to viper for LEDGER_* to reach Unmarshal.
	for _, k := range []string{"esdb.ca_file", "esdb.username", "esdb.password", "amqp.url", "amqp.ca_file",
		"amqp.cert_file", "amqp.key_file", "amqp.server_name", "http.token"} {
		v.SetDefault(k, "")
	}
}

// loadConfig merges defaults, the profile, the file, the environment and
// flags, then validates.
func loadConfig(file string, flags *pflag.FlagSet, getenv func(string) string) (Config, error) {
	v := viper.New()
	setDefaults(v)
	if file == "" {
		file = getenv("LEDGER_CONFIG")
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	changed := map[string]bool{}
	if flags != nil {
		bind := map[string]string{"profile": "profile", "store": "store", "data-dir": "data_dir",
			"amqp-url": "amqp.url", "http-addr": "http.addr", "log-level": "log.level", "log-format": "log.format"}
		for flag, key := range bind {
			if f := flags.Lookup(flag); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, fmt.Errorf("bind flag %s: %w", flag, err)
				}
				changed[key] = f.Changed
			}
		}
	}
	// LEDGER_<SECTION>_<KEY> (amqp.url: LEDGER_AMQP_URL) ranks above the
	// file and below flags. The environment comes in through getenv so that
	// tests stay hermetic.
	for _, key := range v.AllKeys() {
		if changed[key] {
			continue
		}
		if val, ok := lookupEnv(getenv, "LEDGER_"+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))); ok {
			v.Set(key, val)
		}
	}
	// The profile supplies defaults below whatever was set explicitly.
	prof := v.GetString("profile")
	p, ok := profiles[prof]
	if !ok {
		return Config{}, fmt.Errorf("unknown profile %q: use one of %s", prof, strings.Join(profileNames(), ", "))
	}
	for k, val := range p {
		v.SetDefault(k, val) // defaults rank below file, environment and flags
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	return c, c.Validate()
}

// Validate reports every problem at once, each saying what to fix. Each
// setting is validated once, by the package that owns it; this only names
// the settings by their keys.
func (c Config) Validate() error {
	var errs []error
	switch c.Store {
	case "embedded":
		if c.DataDir == "" {
			errs = append(errs, errors.New("data_dir: set a directory for the embedded store (LEDGER_DATA_DIR)"))
		}
	case "esdb":
		errs = append(errs, section("esdb", c.esdbConfig().Validate()))
	default:
		errs = append(errs, fmt.Errorf("store %q: use embedded or esdb (LEDGER_STORE)", c.Store))
	}
	if c.AMQP.Queue == "" {
		errs = append(errs, errors.New("amqp.queue: must not be empty"))
	}
	errs = append(errs, section("amqp", brokerConfig(c, nil).WithDefaults().Validate()))
	errs = append(errs, section("amqp", c.publisherConfig().Validate()))
	if c.HTTP.Addr == "" {
		errs = append(errs, errors.New("http.addr: set host:port, e.g. 127.0.0.1:8080"))
	} else {
		errs = append(errs, section("http", without(c.httpConfig().Validate(), domain.ErrInvalidCurrency)))
	}
	errs = append(errs, section("rules", c.rules().Validate()))
	// The currency is the rules' setting: reported there, not twice.
	errs = append(errs, section("accelbyte", without(c.outbound().Validate(), domain.ErrInvalidCurrency)))
	if c.Log.Format != "console" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format %q: use console or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

// section names each of err's problems by its key under prefix
// ("queue_type ..." becomes "amqp.queue_type ...").
func section(prefix string, err error) error {
	var out []error
	for _, e := range flatten(err) {
		out = append(out, fmt.Errorf("%s.%w", prefix, e))
	}
	return errors.Join(out...)
}

// without drops the problems of err that match target.
func without(err, target error) error {
	var out []error
	for _, e := range flatten(err) {
		if !errors.Is(e, target) {
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func (c Config) esdbConfig() eventstoredb.Config {
	return eventstoredb.Config{ConnectionString: c.ESDB.URL, TLSCAFile: c.ESDB.CAFile, Username: c.ESDB.Username, Password: c.ESDB.Password}
}

func (c Config) publisherConfig() rabbitmq.PublisherConfig {
	return rabbitmq.PublisherConfig{Envelope: c.AMQP.Envelope, Queue: c.AMQP.Queue}
}

func (c Config) httpConfig() httpapi.Config {
	return httpapi.Config{Addr: c.HTTP.Addr, Token: c.HTTP.Token, Currency: c.currency()}
}

func (c Config) currency() domain.Currency {
	return domain.Currency{Code: c.Rules.Currency, Decimals: c.Rules.CurrencyDecimals}
}

func (c Config) rules() domain.Rules {
	r := domain.DefaultRules()
	r.Currency = c.currency()
	r.PlacementTimeout = c.Rules.PlacementTimeout
	r.MaxPlacementAttempts = c.Rules.MaxPlacementAttempts
	r.RefundSettlement = domain.Settlement(c.Rules.RefundSettlement)
	return r
}

func (c Config) outbound() domain.OutboundConfig {
	return domain.OutboundConfig{
		Namespace: c.AccelByte.Namespace, ParentNamespace: c.AccelByte.ParentNamespace, ClientID: c.AccelByte.ClientID,
		Currency: c.currency(), CurrencySymbol: c.Rules.CurrencySymbol, CurrencyType: "REAL",
		DecimalsAsStrings: c.AMQP.Envelope == "masstransit",
	}
}

func (c Config) storePath() string     { return filepath.Join(c.DataDir, "ledger.db") }
func (c Config) readModelPath() string { return filepath.Join(c.DataDir, "readmodel.db") }

// connectError says what to change when the broker refused the first
// connection for a reason retrying cannot fix (the setting named by its
// key, amqp.url say), else which broker could not be reached.
func connectError(c Config, err error) error {
	var se *rabbitmq.StartupError
	if errors.As(err, &se) {
		return section("amqp", se)
	}
	return fmt.Errorf("connect to broker %s: %w", redactURL(c.AMQP.URL), err)
}

// redactURL drops the password from a URL so it can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}
