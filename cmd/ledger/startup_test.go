package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// serveRefused runs `ledger serve` against amqpURL and expects it to exit
// by itself, quickly and non-zero, returning the last line it printed.
func serveRefused(t *testing.T, amqpURL string) string {
	t.Helper()
	addr, err := testenv.FreeAddr()
	require.NoError(t, err)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEDGER_") {
			env = append(env, kv)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ledgerBin, "serve")
	cmd.Env = append(env, "LEDGER_AMQP_URL="+amqpURL, "LEDGER_DATA_DIR="+t.TempDir(), "LEDGER_HTTP_ADDR="+addr, "LEDGER_LOG_FORMAT=json")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	t.Logf("exit after %s: %v\n%s", took, err, out.String())
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exited by itself, non-zero: %v", err)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Less(t, took, 20*time.Second, "no retrying")
	assert.Equal(t, 0, strings.Count(out.String(), "connect failed, retrying"), "not one retry")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1]
}

// TestServeFailsFastOnRefusal: what retrying cannot fix ends `ledger
// serve` at once with one line naming the setting to change, without the
// password.
func TestServeFailsFastOnRefusal(t *testing.T) {
	vhostURL := testenv.Vhost(t)
	vhost, err := testenv.VhostOf(vhostURL)
	require.NoError(t, err)
	u, err := url.Parse(vhostURL)
	require.NoError(t, err)

	t.Run("wrong password", func(t *testing.T) {
		bad := *u
		bad.User = url.UserPassword("guest", "s3cret-wrong")
		last := serveRefused(t, bad.String())
		assert.Equal(t, `ledger: amqp.url: authentication refused for user "guest" at 127.0.0.1:5672/`+vhost+
			`; check the user name and password in the url (retrying cannot fix this)`, last)
		assert.NotContains(t, last, "s3cret-wrong")
	})
	t.Run("missing vhost", func(t *testing.T) {
		missing := testenv.VhostName("ledger-h1-missing")
		bad := *u
		bad.Path, bad.RawPath = "/"+missing, ""
		last := serveRefused(t, bad.String())
		assert.True(t, strings.HasPrefix(last, `ledger: amqp.url: virtual host "`+missing+`" does not exist at 127.0.0.1:5672/`+missing), last)
		assert.NotContains(t, last, "guest:guest")
	})
}

// TestUnroutableBoundConfig: the bound's settings default to the
// adapter's defaults and reach the broker configuration.
func TestUnroutableBoundConfig(t *testing.T) {
	getenv := func(env map[string]string) func(string) string {
		return func(k string) string { return env[k] }
	}
	c, err := loadConfig("", nil, getenv(nil))
	require.NoError(t, err)
	bc := brokerConfig(c, nil)
	assert.Equal(t, rabbitmq.DefaultUnroutableMaxLength, bc.UnroutableMaxLength)
	assert.Equal(t, rabbitmq.DefaultUnroutableMaxAge, bc.UnroutableMaxAge)

	c, err = loadConfig("", nil, getenv(map[string]string{"LEDGER_AMQP_UNROUTABLE_MAX_LENGTH": "500", "LEDGER_AMQP_UNROUTABLE_MAX_AGE": "36h"}))
	require.NoError(t, err)
	bc = brokerConfig(c, nil)
	assert.Equal(t, 500, bc.UnroutableMaxLength)
	assert.Equal(t, 36*time.Hour, bc.UnroutableMaxAge)

	_, err = loadConfig("", nil, getenv(map[string]string{"LEDGER_AMQP_UNROUTABLE_MAX_LENGTH": "-3"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "amqp.unroutable_max_length -3: must be at least 1")
}
