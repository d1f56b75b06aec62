package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func getenvOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func environOf(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// loadEnv loads the configuration from env alone, checking its names.
func loadEnv(env map[string]string) (Config, error) {
	return loadConfigEnv("", nil, getenvOf(env), environOf(env))
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestConfigNearestKey(t *testing.T) {
	known := knownKeys()
	for name, want := range map[string]string{
		"amqp.urll":              "amqp.url",
		"amqp.ulr":               "amqp.url",
		"ampq.url":               "amqp.url",
		"rules.placement_timout": "rules.placement_timeout",
		"rules.placementtimeout": "rules.placement_timeout",
		"http.prefetch":          "amqp.prefetch",
		"memory_limt":            "memory_limit",
		"datadir":                "data_dir",
		"log.levle":              "log.level",
	} {
		got, ok := nearest(name, known)
		assert.True(t, ok, name)
		assert.Equal(t, want, got, name)
	}
	for _, far := range []string{"zzzzzzzz", "amqp.something_else_entirely", "x"} {
		got, ok := nearest(far, known)
		assert.False(t, ok, "%s: %s is no likely slip", far, got)
	}
	assert.Equal(t, 1, osa("ampq", "amqp"), "a transposition is one edit")
	assert.Equal(t, 3, osa("kitten", "sitting"))
	assert.Equal(t, 0, osa("", ""))
}

func TestConfigMisspeltKeysNameTheNearest(t *testing.T) {
	file := writeFile(t, "ledger.yaml", `amqp:
  urll: amqp://somewhere/
  queue: q
rules:
  placement_timout: 5m
amq:
  prefetch: 3
store:
  kind: embedded
http: 8080
`)
	_, err := loadConfigEnv(file, nil, getenvOf(nil), nil)
	require.Error(t, err)
	for _, want := range []string{
		"amqp.urll: unknown key in ledger.yaml; did you mean amqp.url?",
		"rules.placement_timout: unknown key in ledger.yaml; did you mean rules.placement_timeout?",
		"amq.prefetch: unknown key in ledger.yaml; did you mean amqp.prefetch?",
		"store.kind: unknown key in ledger.yaml: store is a value, not a section",
		"http: is a section in ledger.yaml: write its keys under it (http.addr, http.token)",
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.True(t, strings.HasPrefix(err.Error(), "5 problems:\n"), err.Error())

	// A file with only known keys is fine, whatever its case.
	file = writeFile(t, "ok.yaml", "AMQP:\n  Queue: from-file\nrules:\n  placement_timeout: 5m\n")
	c, err := loadConfigEnv(file, nil, getenvOf(nil), nil)
	require.NoError(t, err)
	assert.Equal(t, "from-file", c.AMQP.Queue)
}

func TestConfigUnknownEnvironmentNames(t *testing.T) {
	_, err := loadEnv(map[string]string{
		"LEDGER_AMQP_URLL":          "amqp://x/",
		"LEDGER_MEMORY_LIMT":        "64MiB",
		"LEDGER_AMPQ_PREFETCH":      "3",
		"LEDGER_RULES_NOPE":         "1",
		"LEDGER_CONFIG":             "",
		"LEDGER_TEST_AMQP_URL":      "amqp://test/", // the tests' own
		"LEDGER_TEST_ESDB_URL":      "esdb://test",
		"LEDGER_BENCH_SCAN_RELEASE": "-1",
		"LEDGER_BOLT_CRASH_CHILD":   "1",
		"LEDGER_ARTIFACTS_DIR":      "/tmp",
		"LEDGER_HTTP_TOKEN":         "t",
		"OTHER_AMQP_URLL":           "x",
	})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"LEDGER_AMQP_URLL: unknown setting in the environment; did you mean LEDGER_AMQP_URL (amqp.url)?",
		"LEDGER_MEMORY_LIMT: unknown setting in the environment; did you mean LEDGER_MEMORY_LIMIT (memory_limit)?",
		"LEDGER_AMPQ_PREFETCH: unknown setting in the environment; did you mean LEDGER_AMQP_PREFETCH (amqp.prefetch)?",
		"LEDGER_RULES_NOPE: unknown setting in the environment",
	} {
		assert.Contains(t, msg, want)
	}
	for _, not := range []string{"LEDGER_CONFIG", "LEDGER_TEST_", "LEDGER_BENCH", "LEDGER_BOLT", "LEDGER_ARTIFACTS", "OTHER_", "LEDGER_HTTP_TOKEN"} {
		assert.NotContains(t, msg, not)
	}
	assert.True(t, strings.HasPrefix(msg, "4 problems:\n"), msg)
}

func TestConfigTypeErrorsAllInOneRun(t *testing.T) {
	file := writeFile(t, "types.yaml", `amqp:
  prefetch: lots
  batch_wait: 5
  declare_consumer_queues: maybe
  delivery_limit: 2.5
rules:
  placement_timeout: soon
memory_limit: 96MiB
projections:
  max_lag: [1, 2]
`)
	c, err := loadConfigEnv(file, nil, getenvOf(map[string]string{"LEDGER_AMQP_UNROUTABLE_MAX_LENGTH": "ten"}), nil)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`amqp.prefetch "lots": want a whole number`,
		"amqp.batch_wait 5: want a duration with a unit, like 30s",
		`amqp.declare_consumer_queues "maybe": want true or false`,
		"amqp.delivery_limit 2.5: want a whole number",
		`rules.placement_timeout "soon": want a duration with a unit`,
		"projections.max_lag is a section or a list here: want a single value",
		`amqp.unroutable_max_length "ten": want a whole number`,
	} {
		assert.Contains(t, msg, want)
	}
	assert.True(t, strings.HasPrefix(msg, "7 problems:\n"), "a value that cannot be read is not reported again as out of bounds:\n%s", msg)
	assert.Equal(t, int64(96<<20), c.MemoryLimit, "sizes take a unit")
}

func TestConfigLowerBounds(t *testing.T) {
	refused := map[string]string{
		"LEDGER_MEMORY_LIMIT":                 "memory_limit 10: must be at least 32MiB (33554432 bytes), or 0 for the Go runtime's default",
		"LEDGER_AMQP_PREFETCH":                "amqp.prefetch 0: must be at least 1",
		"LEDGER_AMQP_BATCH_SIZE":              "amqp.batch_size 0: must be at least 1",
		"LEDGER_AMQP_DELIVERY_LIMIT":          "amqp.delivery_limit 0: must be at least 1",
		"LEDGER_AMQP_BATCH_WAIT":              "amqp.batch_wait 10µs: must be at least 100µs",
		"LEDGER_AMQP_UNROUTABLE_MAX_LENGTH":   "amqp.unroutable_max_length 0: must be at least 1",
		"LEDGER_AMQP_UNROUTABLE_MAX_AGE":      "amqp.unroutable_max_age 10ms: must be at least 1s",
		"LEDGER_RULES_PLACEMENT_TIMEOUT":      "rules.placement_timeout 500ms: must be at least 1s",
		"LEDGER_RULES_MAX_PLACEMENT_ATTEMPTS": "rules.max_placement_attempts 0: must be at least 1",
		"LEDGER_RULES_CURRENCY_DECIMALS":      "rules.currency_decimals -1: must be at least 0",
		"LEDGER_PROJECTIONS_MAX_LAG":          "projections.max_lag 0: must be at least 1",
	}
	values := map[string]string{
		"LEDGER_MEMORY_LIMIT": "10", "LEDGER_AMQP_PREFETCH": "0", "LEDGER_AMQP_BATCH_SIZE": "0", "LEDGER_AMQP_DELIVERY_LIMIT": "0",
		"LEDGER_AMQP_BATCH_WAIT": "10us", "LEDGER_AMQP_UNROUTABLE_MAX_LENGTH": "0", "LEDGER_AMQP_UNROUTABLE_MAX_AGE": "10ms",
		"LEDGER_RULES_PLACEMENT_TIMEOUT": "500ms", "LEDGER_RULES_MAX_PLACEMENT_ATTEMPTS": "0", "LEDGER_RULES_CURRENCY_DECIMALS": "-1",
		"LEDGER_PROJECTIONS_MAX_LAG": "0",
	}
	_, err := loadEnv(values)
	require.Error(t, err)
	for _, want := range refused {
		assert.Contains(t, err.Error(), want)
	}
	// Each bound once: the owning package's own check of the same key is
	// not repeated.
	assert.True(t, strings.HasPrefix(err.Error(), "11 problems:\n"), err.Error())

	// At the bound, and the zero that means the default, are fine.
	c, err := loadEnv(map[string]string{"LEDGER_MEMORY_LIMIT": "32MiB", "LEDGER_RULES_PLACEMENT_TIMEOUT": "1s",
		"LEDGER_AMQP_PREFETCH": "1", "LEDGER_AMQP_BATCH_SIZE": "1"})
	require.NoError(t, err)
	assert.Equal(t, int64(32<<20), c.MemoryLimit)
	assert.Equal(t, time.Second, c.Rules.PlacementTimeout)
	c, err = loadEnv(map[string]string{"LEDGER_MEMORY_LIMIT": "0"})
	require.NoError(t, err)
	assert.Zero(t, c.MemoryLimit)
}

// TestEveryNumericKeyHasABound: a new int or duration setting must say
// its lower bound (a min tag next to it).
func TestEveryNumericKeyHasABound(t *testing.T) {
	for _, k := range configKeys() {
		switch k.typ.Kind() {
		case reflect.Int, reflect.Int64:
			assert.NotEmpty(t, k.min, "%s has no min tag", k.key)
			_, err := k.bound()
			assert.NoError(t, err, k.key)
		}
	}
	// And every key has a default, an environment name and a decoder.
	c, err := loadConfig("", nil, getenvOf(nil))
	require.NoError(t, err)
	assert.NoError(t, c.Validate())
}

func TestConfigAddressesAndValues(t *testing.T) {
	for addr, want := range map[string]string{
		"8080":            `http.addr "8080": want host:port`,
		"127.0.0.1:99999": `http.addr "127.0.0.1:99999": the port must be a number within 0..65535`,
		"localhost:http2": `http.addr "localhost:http2": the port must be a number within 0..65535`,
	} {
		_, err := loadEnv(map[string]string{"LEDGER_HTTP_ADDR": addr})
		require.Error(t, err, addr)
		assert.Contains(t, err.Error(), want)
	}
	_, err := loadEnv(map[string]string{"LEDGER_AMQP_CA_FILE": "/nonexistent/ca.pem", "LEDGER_AMQP_URL": "amqps://h/"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `amqp.ca_file "/nonexistent/ca.pem": cannot read the file`)
}

func TestNormalizeServer(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":     "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":    "http://127.0.0.1:8080",
		"HTTP://127.0.0.1:8080":     "http://127.0.0.1:8080",
		"https://ledger.example":    "https://ledger.example",
		"https://ledger.example/l/": "https://ledger.example/l",
		"127.0.0.1:8080":            "http://127.0.0.1:8080",
		" localhost:9000 ":          "http://localhost:9000",
		"0.0.0.0:8080":              "http://127.0.0.1:8080",
		":8080":                     "http://127.0.0.1:8080",
		"[::1]:8080":                "http://[::1]:8080",
		"[::]:8080":                 "http://127.0.0.1:8080",
		"http://0.0.0.0:8080":       "http://127.0.0.1:8080",
	} {
		got, err := normalizeServer(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for in, why := range map[string]string{
		"":                        "empty",
		"8080":                    "not host:port",
		"127.0.0.1":               "not host:port",
		"127.0.0.1:0":             `port "0" is not within 1..65535`,
		"127.0.0.1:70000":         `port "70000" is not within 1..65535`,
		"ftp://127.0.0.1:21":      "the scheme must be http or https",
		"http://":                 "no host",
		"http://h:8080/?x=1":      "no query or fragment",
		"http://u:secret@h:8080/": "no credentials in the URL",
		"http://[::1":             "not a URL",
		"host:8080/path":          "not host:port",
	} {
		_, err := normalizeServer(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), why, in)
			assert.Contains(t, err.Error(), "want http://host:port, https://host:port or host:port", in)
			assert.NotContains(t, err.Error(), "secret")
		}
	}
}

// TestConfigManyProblemsBeforeConnecting: a service pointed at a broker
// that is not there, with many problems, says them all at once and at
// once, without trying the broker.
func TestConfigManyProblemsBeforeConnecting(t *testing.T) {
	file := writeFile(t, "ledger.yaml", "amqp:\n  urll: amqp://x/\n  prefetch: 0\nrules:\n  placement_timout: 5m\n")
	cmd := exec.Command(ledgerBin, "serve", "--config", file, "--http-addr", "8080")
	cmd.Env = append(os.Environ(), "LEDGER_AMQP_URL=amqp://guest:guest@127.0.0.1:1/", "LEDGER_DATA_DIR="+t.TempDir(),
		"LEDGER_MEMORY_LIMIT=10", "LEDGER_RULES_PLACEMENT_TIMEOUT=10ms", "LEDGER_AMQP_ENVELOPE=soap", "LEDGER_LOG_LEVL=debug")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	require.Error(t, err)
	text := string(out)
	for _, want := range []string{
		"amqp.urll: unknown key in ledger.yaml; did you mean amqp.url?",
		"rules.placement_timout: unknown key in ledger.yaml; did you mean rules.placement_timeout?",
		"LEDGER_LOG_LEVL: unknown setting in the environment; did you mean LEDGER_LOG_LEVEL (log.level)?",
		"amqp.prefetch 0: must be at least 1",
		"memory_limit 10: must be at least 32MiB",
		"rules.placement_timeout 10ms: must be at least 1s",
		`amqp.envelope "soap"`,
		`http.addr "8080": want host:port`,
	} {
		assert.Contains(t, text, want)
	}
	assert.Contains(t, text, "8 problems:")
	assert.NotContains(t, text, "connect", "nothing was dialled")
	assert.NotContains(t, text, "INFO")
	assert.Less(t, took, 5*time.Second, "no broker wait (race-built binary)")
}

func TestConfigLeaderElection(t *testing.T) {
	c, err := loadEnv(map[string]string{})
	require.NoError(t, err)
	assert.Equal(t, electionNone, c.Leader.Election, "no election unless asked: one instance needs none")
	assert.Equal(t, defaultCheckpointEvery, c.Leader.CheckpointEvery)
	host, _ := os.Hostname()
	assert.True(t, strings.HasPrefix(c.instance(), host+"-"), "default id is host and pid: %s", c.instance())

	_, err = loadEnv(map[string]string{"LEDGER_LEADER_ELECTION": "rabbitmq"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "leader.election rabbitmq: needs store=esdb")

	_, err = loadEnv(map[string]string{"LEDGER_LEADER_ELECTION": "zookeeper"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `leader.election "zookeeper": use none or rabbitmq`)

	c, err = loadEnv(map[string]string{"LEDGER_LEADER_ELECTION": "rabbitmq", "LEDGER_STORE": "esdb",
		"LEDGER_INSTANCE": "i7", "LEDGER_LEADER_BEAT": "200ms", "LEDGER_LEADER_LEASE": "1s"})
	require.NoError(t, err)
	assert.Equal(t, "i7", c.instance())
	lc := c.leaseConfig()
	assert.Equal(t, "i7", lc.Instance)
	assert.Equal(t, 200*time.Millisecond, lc.Beat)
	assert.Equal(t, "ledger i7", brokerConfig(c, nil).ConnectionName, "the harness and operators find an instance's connection by name")

	// A lease no longer than its beat would drop the role between beats.
	_, err = loadEnv(map[string]string{"LEDGER_LEADER_ELECTION": "rabbitmq", "LEDGER_STORE": "esdb",
		"LEDGER_LEADER_BEAT": "2s", "LEDGER_LEADER_LEASE": "1s"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "leader.")
}
