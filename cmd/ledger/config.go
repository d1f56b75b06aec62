package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Config is everything the service can be told. It is read from a file
// (--config), LEDGER_* environment variables (LEDGER_AMQP_URL for
// amqp.url) and flags, in rising precedence, over the profile's defaults.
// A number's lower bound is its min tag, next to it (zero:"ok": 0 means
// the default; unit:"bytes": 96MiB is read too); Validate checks them.
type Config struct {
	Profile string `mapstructure:"profile"`
	Store   string `mapstructure:"store"` // embedded | esdb
	// MemoryLimit is the Go runtime's soft memory limit in bytes (GOMEMLIMIT
	// wins when set); 0 leaves the runtime's default.
	MemoryLimit int64  `mapstructure:"memory_limit" min:"32MiB" zero:"ok" unit:"bytes"`
	DataDir     string `mapstructure:"data_dir"`
	// Instance names this process among several (logs, metrics, the
	// broker connection, the lease); empty: "<hostname>-<pid>".
	Instance string `mapstructure:"instance"`

	ESDB struct {
		URL      string `mapstructure:"url"`
		CAFile   string `mapstructure:"ca_file"`
		Username string `mapstructure:"username"`
		Password string `mapstructure:"password"`
	} `mapstructure:"esdb"`

	AMQP struct {
		URL                   string        `mapstructure:"url"`
		Heartbeat             time.Duration `mapstructure:"heartbeat" min:"1s"` // a silent broker link is found dead after about this long
		CAFile                string        `mapstructure:"ca_file"`
		CertFile              string        `mapstructure:"cert_file"`
		KeyFile               string        `mapstructure:"key_file"`
		ServerName            string        `mapstructure:"server_name"`
		Queue                 string        `mapstructure:"queue"`
		QueueType             string        `mapstructure:"queue_type"` // quorum | classic
		Prefetch              int           `mapstructure:"prefetch" min:"1"`
		DeliveryLimit         int           `mapstructure:"delivery_limit" min:"1"` // deliveries before a message that keeps failing goes to <queue>_error
		BatchSize             int           `mapstructure:"batch_size" min:"1"`     // deliveries appended together
		BatchWait             time.Duration `mapstructure:"batch_wait" min:"100us"` // how long a batch waits to fill
		DeclareConsumerQueues bool          `mapstructure:"declare_consumer_queues"`
		Envelope              string        `mapstructure:"envelope"` // outbound commands: masstransit | cloudevents | bare
		// The unroutable queue's bound: the oldest messages are dropped past
		// this many, and expire past this age.
		UnroutableMaxLength int           `mapstructure:"unroutable_max_length" min:"1"`
		UnroutableMaxAge    time.Duration `mapstructure:"unroutable_max_age" min:"1s"`
	} `mapstructure:"amqp"`

	HTTP struct {
		Addr  string `mapstructure:"addr"`
		Token string `mapstructure:"token"` // required by endpoints that change state
	} `mapstructure:"http"`

	Rules struct {
		Currency             string        `mapstructure:"currency"`
		CurrencyDecimals     int           `mapstructure:"currency_decimals" min:"0"`
		CurrencySymbol       string        `mapstructure:"currency_symbol"`
		PlacementTimeout     time.Duration `mapstructure:"placement_timeout" min:"1s"`
		MaxPlacementAttempts int           `mapstructure:"max_placement_attempts" min:"1"`
		RefundSettlement     string        `mapstructure:"refund_settlement"` // immediate | provider
	} `mapstructure:"rules"`

	AccelByte struct {
		Namespace       string `mapstructure:"namespace"`
		ParentNamespace string `mapstructure:"parent_namespace"`
		ClientID        string `mapstructure:"client_id"`
	} `mapstructure:"accelbyte"`

	Projections struct {
		Publisher bool  `mapstructure:"publisher"`       // run the lifecycle publisher in this instance
		MaxLag    int64 `mapstructure:"max_lag" min:"1"` // readiness bound on the read model's lag (positions)
	} `mapstructure:"projections"`

	// Leader chooses the one instance that runs the lifecycle publisher
	// and the placement time-outs when several share one EventStoreDB.
	Leader struct {
		Election string        `mapstructure:"election"` // none | rabbitmq
		Queue    string        `mapstructure:"queue"`    // the single-active-consumer queue
		Beat     time.Duration `mapstructure:"beat" min:"10ms"`
		Lease    time.Duration `mapstructure:"lease" min:"20ms"`
		Takeover time.Duration `mapstructure:"takeover" min:"10ms"`
		// CheckpointEvery: how often the publisher's shared checkpoint is
		// written while busy; each write is an event in the store.
		CheckpointEvery time.Duration `mapstructure:"checkpoint_every" min:"10ms"`
	} `mapstructure:"leader"`

	// Seal: how often serve seals the log for `ledger verify`
	// (projections.Sealer); every 0 turns it off.
	Seal struct {
		Every    time.Duration `mapstructure:"every" min:"1s" zero:"ok"`
		MaxFacts int           `mapstructure:"max_facts" min:"1"` // events per seal
	} `mapstructure:"seal"`

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
	// electionNone runs the publisher wherever projections.publisher is
	// set; electionRabbitMQ takes it by the broker's lease.
	electionNone           = "none"
	electionRabbitMQ       = "rabbitmq"
	defaultCheckpointEvery = time.Second
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
	v.SetDefault("amqp.heartbeat", rabbitmq.DefaultHeartbeat)
	v.SetDefault("leader.election", electionNone)
	v.SetDefault("leader.queue", rabbitmq.DefaultLeaderQueue)
	v.SetDefault("leader.beat", rabbitmq.DefaultLeaseBeat)
	v.SetDefault("leader.lease", rabbitmq.DefaultLeaseTTL)
	v.SetDefault("leader.takeover", rabbitmq.DefaultLeaseTakeover)
	v.SetDefault("leader.checkpoint_every", defaultCheckpointEvery)
	v.SetDefault("seal.every", projections.DefaultSealEvery)
	v.SetDefault("seal.max_facts", projections.DefaultSealMaxFacts)
	v.SetDefault("log.level", "info")
	v.SetDefault("log.format", "console")
}

// loadConfig merges defaults, the profile, the file, the environment and
// flags, then validates. It does not check the environment's names (see
// loadConfigEnv).
func loadConfig(file string, flags *pflag.FlagSet, getenv func(string) string) (Config, error) {
	return loadConfigEnv(file, flags, getenv, nil)
}

// loadConfigEnv is loadConfig that also refuses the LEDGER_* names of
// environ (NAME=VALUE entries, as os.Environ gives them) that look like a
// setting but are none. Every problem it finds is in the one error it
// returns, before anything connects: unknown keys, values of the wrong
// type, values out of bounds, settings that do not fit together.
func loadConfigEnv(file string, flags *pflag.FlagSet, getenv func(string) string, environ []string) (Config, error) {
	v := viper.New()
	setDefaults(v)
	var problems []error
	failed := map[string]bool{} // keys already reported: not again
	if file == "" {
		file = getenv("LEDGER_CONFIG")
	}
	if file != "" {
		fv := viper.New()
		fv.SetConfigFile(file)
		if err := fv.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
		unknown, misplaced := unknownFileKeys(filepath.Base(file), fv.AllKeys())
		problems = append(problems, unknown...)
		for _, k := range misplaced {
			failed[k] = true
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	problems = append(problems, unknownEnvNames(environ, getenv)...)
	changed := map[string]bool{}
	if flags != nil {
		for flag, key := range flagKeys {
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
	specs := configKeys()
	for _, k := range specs {
		if changed[k.key] {
			continue
		}
		if val, ok := lookupEnv(getenv, envName(k.key)); ok {
			v.Set(k.key, val)
		}
	}
	// The profile supplies defaults below whatever was set explicitly.
	prof := v.GetString("profile")
	p, ok := profiles[prof]
	if !ok {
		problems = append(problems, fmt.Errorf("unknown profile %q: use one of %s (LEDGER_PROFILE)", prof, strings.Join(profileNames(), ", ")))
		p = profiles[defaultProfile]
	}
	for k, val := range p {
		v.SetDefault(k, val) // defaults rank below file, environment and flags
	}
	var c Config
	if !ok {
		failed["profile"] = true
	}
	rv := reflect.ValueOf(&c).Elem()
	for _, k := range specs {
		if failed[k.key] {
			continue
		}
		val, err := k.decode(v.Get(k.key))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s %s", k.key, err))
			failed[k.key] = true
			continue
		}
		rv.FieldByIndex(k.index).Set(val)
	}
	// A value that could not be read is reported once, not again as out
	// of bounds.
	problems = append(problems, dropKeys(c.Validate(), failed)...)
	if len(problems) > 0 {
		return c, &configError{problems}
	}
	return c, nil
}

// configError is every problem of a configuration, one a line.
type configError struct{ problems []error }

func (e *configError) Error() string {
	if len(e.problems) == 1 {
		return e.problems[0].Error()
	}
	lines := make([]string, len(e.problems))
	for i, p := range e.problems {
		lines[i] = "  " + p.Error()
	}
	return fmt.Sprintf("%d problems:\n%s", len(e.problems), strings.Join(lines, "\n"))
}

func (e *configError) Unwrap() []error { return e.problems }

// flagKeys are the command line's settings: flag name -> key.
var flagKeys = map[string]string{"profile": "profile", "store": "store", "data-dir": "data_dir",
	"amqp-url": "amqp.url", "http-addr": "http.addr", "log-level": "log.level", "log-format": "log.format"}

// Validate reports every problem at once, each saying what to fix. Each
// setting is validated once, by the package that owns it; this only names
// the settings by their keys, and adds the lower bounds the Config's min
// tags declare.
func (c Config) Validate() error {
	bounds, bounded := c.checkBounds()
	errs := []error{bounds} // first: the bounds
	switch c.Store {
	case "embedded":
		if c.DataDir == "" {
			errs = append(errs, errors.New("data_dir: set a directory for the embedded store (LEDGER_DATA_DIR)"))
		}
	case "esdb":
		errs = append(errs, section("esdb", c.esdbConfig().Validate()))
		errs = append(errs, fileExists("esdb.ca_file", c.ESDB.CAFile))
	default:
		errs = append(errs, fmt.Errorf("store %q: use embedded or esdb (LEDGER_STORE)", c.Store))
	}
	if c.AMQP.Queue == "" {
		errs = append(errs, errors.New("amqp.queue: must not be empty"))
	}
	errs = append(errs, section("amqp", brokerConfig(c, nil).WithDefaults().Validate()))
	errs = append(errs, section("amqp", c.publisherConfig().Validate()))
	errs = append(errs, fileExists("amqp.ca_file", c.AMQP.CAFile), fileExists("amqp.cert_file", c.AMQP.CertFile),
		fileExists("amqp.key_file", c.AMQP.KeyFile))
	if c.HTTP.Addr == "" {
		errs = append(errs, errors.New("http.addr: set host:port, e.g. 127.0.0.1:8080"))
	} else {
		errs = append(errs, section("http", without(c.httpConfig().Validate(), domain.ErrInvalidCurrency)))
		if _, port, err := net.SplitHostPort(c.HTTP.Addr); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
				errs = append(errs, fmt.Errorf("http.addr %q: the port must be a number within 0..65535", c.HTTP.Addr))
			}
		}
	}
	errs = append(errs, section("rules", c.rules().Validate()))
	// The currency is the rules' setting: reported there, not twice.
	errs = append(errs, section("accelbyte", without(c.outbound().Validate(), domain.ErrInvalidCurrency)))
	errs = append(errs, c.validateLeader())
	errs = append(errs, section("seal", c.sealer(nil).Validate()))
	if _, err := zapcore.ParseLevel(c.Log.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level %q: use debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "console" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format %q: use console or json", c.Log.Format))
	}
	// A key out of bounds is reported by its bound only.
	return errors.Join(append(errs[:1], dropKeys(errors.Join(errs[1:]...), bounded)...)...)
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

// validateLeader checks the election settings: a lease among instances
// needs a store they share.
func (c Config) validateLeader() error {
	switch c.Leader.Election {
	case electionNone:
		return nil
	case electionRabbitMQ:
	default:
		return fmt.Errorf("leader.election %q: use none or rabbitmq (LEDGER_LEADER_ELECTION)", c.Leader.Election)
	}
	var errs []error
	if c.Store != "esdb" {
		errs = append(errs, fmt.Errorf("leader.election rabbitmq: needs store=esdb, the store several instances share "+
			"(the embedded store is one process's file); got store %q", c.Store))
	}
	lc := c.leaseConfig().WithDefaults()
	errs = append(errs, section("leader", lc.Validate()))
	if c.AMQP.Heartbeat > 0 && lc.Lease >= c.AMQP.Heartbeat {
		// A leader cut off without a close must give the role up before
		// the broker, finding the link dead, hands it to another.
		errs = append(errs, fmt.Errorf("leader.lease %s: must be shorter than amqp.heartbeat (%s)", lc.Lease, c.AMQP.Heartbeat))
	}
	return errors.Join(errs...)
}

// instance is this process's name among several.
func (c Config) instance() string {
	if c.Instance != "" {
		return c.Instance
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "ledger"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func (c Config) leaseConfig() rabbitmq.LeaseConfig {
	return rabbitmq.LeaseConfig{Queue: c.Leader.Queue, Instance: c.instance(), Beat: c.Leader.Beat, Lease: c.Leader.Lease,
		Takeover: c.Leader.Takeover}
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

// keySpec is one setting: its key, where it lives in Config, and the
// bound its tags declare.
type keySpec struct {
	key   string       // amqp.prefetch
	index []int        // the field in Config
	typ   reflect.Type // string, bool, int, int64 or time.Duration
	min   string       // the lower bound ("1", "1s", "32MiB"); "" for none
	zero  bool         // 0 is allowed below the bound (it means a default)
	bytes bool         // a size: a number of bytes or 96MiB, 1GiB...
}

var durationType = reflect.TypeFor[time.Duration]()

// configKeys lists every setting of Config, from its mapstructure tags.
func configKeys() []keySpec {
	var out []keySpec
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" {
				continue
			}
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, prefix+name+".", idx)
				continue
			}
			out = append(out, keySpec{key: prefix + name, index: idx, typ: f.Type, min: f.Tag.Get("min"),
				zero: f.Tag.Get("zero") == "ok", bytes: f.Tag.Get("unit") == "bytes"})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// sections are the keys that hold keys (amqp, rules, ...).
func sections() []string {
	var out []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Type.Kind() == reflect.Struct && f.Type != durationType {
			out = append(out, f.Tag.Get("mapstructure"))
		}
	}
	return out
}

func knownKeys() []string {
	specs := configKeys()
	keys := make([]string, len(specs))
	for i, k := range specs {
		keys[i] = k.key
	}
	return keys
}

// envName is the environment variable of a key: amqp.url is LEDGER_AMQP_URL.
func envName(key string) string {
	return "LEDGER_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// decode reads a raw value (from a default, the file, the environment or
// a flag) as the setting's type. The error starts with the value and
// says what is wanted.
func (k keySpec) decode(raw any) (reflect.Value, error) {
	out := reflect.New(k.typ).Elem()
	if raw == nil {
		return out, nil
	}
	switch raw.(type) {
	case map[string]any, []any:
		return out, errors.New("is a section or a list here: want a single value")
	}
	switch {
	case k.typ == durationType:
		switch x := raw.(type) {
		case time.Duration:
			out.SetInt(int64(x))
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(x))
			if err != nil {
				return out, fmt.Errorf("%q: want a duration with a unit, like 30s, 5m or 1h30m", x)
			}
			out.SetInt(int64(d))
		default:
			// A bare number would be nanoseconds: never what was meant.
			if n, ok := wholeNumber(x); ok && n == 0 {
				return out, nil
			}
			return out, fmt.Errorf("%v: want a duration with a unit, like 30s, 5m or 1h30m", x)
		}
	case k.typ.Kind() == reflect.String:
		switch x := raw.(type) {
		case string:
			out.SetString(x)
		default:
			out.SetString(fmt.Sprint(x)) // http.addr: 8080 in YAML is a number
		}
	case k.typ.Kind() == reflect.Bool:
		switch x := raw.(type) {
		case bool:
			out.SetBool(x)
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return out, fmt.Errorf("%q: want true or false", x)
			}
			out.SetBool(b)
		default:
			return out, fmt.Errorf("%v: want true or false", x)
		}
	case k.typ.Kind() == reflect.Int || k.typ.Kind() == reflect.Int64:
		var n int64
		switch x := raw.(type) {
		case string:
			var err error
			if n, err = parseInt(strings.TrimSpace(x), k.bytes); err != nil {
				if k.bytes {
					return out, fmt.Errorf("%q: want a number of bytes, or one with a unit like 96MiB or 1GiB", x)
				}
				return out, fmt.Errorf("%q: want a whole number", x)
			}
		default:
			var ok bool
			if n, ok = wholeNumber(x); !ok {
				return out, fmt.Errorf("%v: want a whole number", x)
			}
		}
		if out.OverflowInt(n) {
			return out, fmt.Errorf("%d: too large", n)
		}
		out.SetInt(n)
	default:
		return out, fmt.Errorf("has a type (%s) the configuration cannot read", k.typ)
	}
	return out, nil
}

// wholeNumber is x as an int64 when it is an integral number.
func wholeNumber(x any) (int64, bool) {
	switch n := x.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return int64(n), n <= math.MaxInt64
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float32:
		return wholeNumber(float64(n))
	case float64:
		if n != math.Trunc(n) || n > math.MaxInt64 || n < math.MinInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

var byteUnits = map[string]int64{"": 1, "b": 1, "kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}

// parseInt reads a whole number, or with bytes a size with a unit
// ("96MiB").
func parseInt(s string, bytes bool) (int64, error) {
	if !bytes {
		return strconv.ParseInt(s, 10, 64)
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '-' })
	if i < 0 {
		i = len(s)
	}
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", s[i:])
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/unit || n < math.MinInt64/unit {
		return 0, errors.New("too large")
	}
	return n * unit, nil
}

// checkBounds checks every setting that has a min tag and returns the
// problems and the keys that have one.
func (c Config) checkBounds() (error, map[string]bool) {
	var errs []error
	bad := map[string]bool{}
	rv := reflect.ValueOf(c)
	for _, k := range configKeys() {
		if k.min == "" {
			continue
		}
		lo, err := k.bound()
		if err != nil {
			panic(fmt.Sprintf("config key %s: bad min tag: %v", k.key, err)) // a programming error
		}
		n := rv.FieldByIndex(k.index).Int()
		if n >= lo || (k.zero && n == 0) {
			continue
		}
		bad[k.key] = true
		switch {
		case k.typ == durationType:
			errs = append(errs, fmt.Errorf("%s %s: must be at least %s (%s)", k.key, time.Duration(n), time.Duration(lo), envName(k.key)))
		case k.bytes && k.zero:
			errs = append(errs, fmt.Errorf("%s %d: must be at least %s (%d bytes), or 0 for the Go runtime's default (%s)", k.key, n, k.min, lo, envName(k.key)))
		default:
			errs = append(errs, fmt.Errorf("%s %d: must be at least %d (%s)", k.key, n, lo, envName(k.key)))
		}
	}
	return errors.Join(errs...), bad
}

// bound is the min tag as a number of the field's unit.
func (k keySpec) bound() (int64, error) {
	if k.typ == durationType {
		d, err := time.ParseDuration(k.min)
		return int64(d), err
	}
	return parseInt(k.min, k.bytes)
}

// dropKeys is err's problems less those about the keys in drop (their
// text starts with the key).
func dropKeys(err error, drop map[string]bool) []error {
	var out []error
next:
	for _, e := range flatten(err) {
		msg := e.Error()
		for k := range drop {
			if rest, ok := strings.CutPrefix(msg, k); ok && (rest == "" || strings.ContainsRune(" :,", rune(rest[0]))) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// unknownFileKeys reports the keys of a config file that are no setting,
// each with the nearest one, and the settings such a key misplaces (a
// section given a value, a value given keys): those are not reported
// again.
func unknownFileKeys(file string, keys []string) (errs []error, misplaced []string) {
	known := knownKeys()
	secs := sections()
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		switch {
		case slices.Contains(secs, k):
			under := keysUnder(known, k)
			misplaced = append(misplaced, under...)
			errs = append(errs, fmt.Errorf("%s: is a section in %s: write its keys under it (%s)", k, file, strings.Join(under, ", ")))
		case slices.ContainsFunc(known, func(s string) bool { return strings.HasPrefix(k, s+".") }):
			leaf := k[:strings.LastIndexByte(k, '.')]
			for !slices.Contains(known, leaf) {
				leaf = leaf[:strings.LastIndexByte(leaf, '.')]
			}
			misplaced = append(misplaced, leaf)
			errs = append(errs, fmt.Errorf("%s: unknown key in %s: %s is a value, not a section", k, file, leaf))
		default:
			errs = append(errs, fmt.Errorf("%s: unknown key in %s%s", k, file, didYouMean(k, known, func(s string) string { return s })))
		}
	}
	return errs, misplaced
}

func keysUnder(known []string, section string) []string {
	var out []string
	for _, k := range known {
		if strings.HasPrefix(k, section+".") {
			out = append(out, k)
		}
	}
	return out
}

// unknownEnvNames reports the LEDGER_* names of environ that look like a
// setting and are none. A name looks like one when it starts with a
// section (LEDGER_AMQP_...) or nearly (LEDGER_AMPQ_...), or is near a
// setting's name (LEDGER_MEMORY_LIMT); LEDGER_CONFIG and the names of
// other tools (LEDGER_TEST_AMQP_URL) pass.
func unknownEnvNames(environ []string, getenv func(string) string) []error {
	known := map[string]string{}
	var names []string
	for _, k := range knownKeys() {
		known[envName(k)] = k
		names = append(names, envName(k))
	}
	var secs []string
	for _, s := range sections() {
		secs = append(secs, strings.ToUpper(s))
	}
	var errs []error
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] || !strings.HasPrefix(name, "LEDGER_") || name == "LEDGER_CONFIG" || known[name] != "" || getenv(name) == "" {
			continue
		}
		seen[name] = true
		rest := strings.TrimPrefix(name, "LEDGER_")
		first, _, _ := strings.Cut(rest, "_")
		looks := slices.ContainsFunc(secs, func(s string) bool {
			return first == s || (len(s) >= 4 && osa(first, s) <= 1)
		})
		if !looks {
			for _, n := range names {
				if osa(rest, strings.TrimPrefix(n, "LEDGER_")) <= 2 {
					looks = true
					break
				}
			}
		}
		if !looks {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unknown setting in the environment%s", name,
			didYouMean(name, names, func(n string) string { return n + " (" + known[n] + ")" })))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// didYouMean is "; did you mean X?" for the candidate nearest to name,
// or "" when none is near enough to be a likely slip.
func didYouMean(name string, candidates []string, show func(string) string) string {
	best, ok := nearest(name, candidates)
	if !ok {
		return ""
	}
	return "; did you mean " + show(best) + "?"
}

// nearest is the candidate at the least edit distance from name (ties:
// the first in sorted order), if that distance is at most a third of
// name's length (and at least 2).
func nearest(name string, candidates []string) (string, bool) {
	best, bestD := "", math.MaxInt
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if d := osa(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best, best != "" && bestD <= max(2, len(name)/3)
}

// osa is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of neighbours ("ampq" is 1 from
// "amqp").
func osa(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// fileExists reports a file setting whose file cannot be read, now
// rather than when the broker or the store is first dialled.
func fileExists(key, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s %q: cannot read the file: %w", key, path, errors.Unwrap(err))
	}
	return f.Close()
}
