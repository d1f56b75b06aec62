package rabbitmq_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// testUser creates a broker user with a password for the test (and with
// all permissions on vhost when vhost is not empty) and deletes it when
// the test ends.
func testUser(t *testing.T, vhost string) (user, pass string) {
	t.Helper()
	ctx := context.Background()
	user, pass = testenv.VhostName("ledger-h1-user"), testenv.VhostName("pw")
	_, err := testenv.Ctl(ctx, "add_user", user, pass)
	require.NoError(t, err)
	t.Cleanup(func() {
		if _, err := testenv.Ctl(context.Background(), "delete_user", user); err != nil {
			t.Logf("%v", err)
		}
	})
	if vhost != "" {
		_, err = testenv.Ctl(ctx, "set_permissions", "-p", vhost, user, ".*", ".*", ".*")
		require.NoError(t, err)
	}
	return user, pass
}

func withUser(raw, user, pass string) string {
	u, _ := url.Parse(raw)
	u.User = url.UserPassword(user, pass)
	return u.String()
}

func withVhost(raw, vhost string) string {
	u, _ := url.Parse(raw)
	u.Path, u.RawPath = "/"+url.PathEscape(vhost), ""
	return u.String()
}

// connectRefused connects with cfg and expects a *StartupError well
// before the context would end, with no second attempt.
func connectRefused(t *testing.T, cfg rabbitmq.Config) *rabbitmq.StartupError {
	t.Helper()
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 100*time.Millisecond
	b, err := rabbitmq.New(cfg, nil)
	require.NoError(t, err)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = b.Connect(ctx)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "no retry")
	var se *rabbitmq.StartupError
	require.ErrorAs(t, err, &se, "%v", err)
	assert.False(t, b.Connected())
	assert.NotContains(t, err.Error(), "\n", "one line")
	t.Log(err)
	return se
}

func TestStartupFailsFast(t *testing.T) {
	vhostURL := testenv.Vhost(t)
	vhost, err := testenv.VhostOf(vhostURL)
	require.NoError(t, err)

	t.Run("wrong password", func(t *testing.T) {
		se := connectRefused(t, rabbitmq.Config{URL: withUser(vhostURL, "guest", "not-the-secret")})
		assert.Equal(t, "url", se.Setting)
		assert.Contains(t, se.Error(), `url: authentication refused for user "guest" at 127.0.0.1:5672/`+vhost)
		assert.Contains(t, se.Error(), "check the user name and password")
		assert.NotContains(t, se.Error(), "not-the-secret")
	})
	t.Run("unknown user", func(t *testing.T) {
		se := connectRefused(t, rabbitmq.Config{URL: withUser(vhostURL, "nobody-h1", "secret-h1")})
		assert.Contains(t, se.Error(), `authentication refused for user "nobody-h1"`)
		assert.NotContains(t, se.Error(), "secret-h1")
	})
	t.Run("missing vhost", func(t *testing.T) {
		missing := testenv.VhostName("ledger-h1-missing")
		se := connectRefused(t, rabbitmq.Config{URL: withVhost(vhostURL, missing)})
		assert.Equal(t, "url", se.Setting)
		assert.Contains(t, se.Error(), `virtual host "`+missing+`" does not exist`)
		assert.NotContains(t, se.Error(), "guest:guest")
	})
	t.Run("vhost not allowed", func(t *testing.T) {
		user, pass := testUser(t, "") // no permissions anywhere
		se := connectRefused(t, rabbitmq.Config{URL: withUser(vhostURL, user, pass)})
		assert.Equal(t, "url", se.Setting)
		assert.Contains(t, se.Error(), `user "`+user+`" may not access virtual host "`+vhost+`"`)
		assert.Contains(t, se.Error(), "set_permissions")
		assert.NotContains(t, se.Error(), pass)
	})
	t.Run("TLS server not trusted", func(t *testing.T) {
		addr, _, _ := tlsFront(t)
		se := connectRefused(t, rabbitmq.Config{URL: "amqps://guest:guest@" + addr + "/"})
		assert.Equal(t, "ca_file", se.Setting)
		assert.Contains(t, se.Error(), "ca_file: TLS verification of the broker's certificate failed")
		assert.Contains(t, se.Error(), "unknown authority")
	})
	t.Run("TLS name mismatch", func(t *testing.T) {
		addr, caFile, _ := tlsFront(t)
		cfg := rabbitmq.Config{URL: "amqps://guest:guest@" + addr + "/"}
		cfg.TLS.CAFile, cfg.TLS.ServerName = caFile, "broker.example"
		se := connectRefused(t, cfg)
		assert.Equal(t, "server_name", se.Setting)
		assert.Contains(t, se.Error(), "broker.example")
	})
	t.Run("broker down is retried", func(t *testing.T) {
		b, err := rabbitmq.New(rabbitmq.Config{URL: "amqp://guest:guest@127.0.0.1:1/", ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond}, nil)
		require.NoError(t, err)
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err = b.Connect(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded, "connection refused may pass: retried until ctx ends")
		var se *rabbitmq.StartupError
		assert.False(t, errors.As(err, &se))
	})
}

// TestRefusalAfterStartIsRetried: once started, an authentication refusal
// (a password rotated on the broker before the ledger's) is an outage:
// retried until it passes.
func TestRefusalAfterStartIsRetried(t *testing.T) {
	vhostURL := testenv.Vhost(t)
	vhost, err := testenv.VhostOf(vhostURL)
	require.NoError(t, err)
	user, pass := testUser(t, vhost)
	u := withUser(vhostURL, user, pass)
	ctx := context.Background()
	require.NoError(t, testenv.WaitDial(ctx, u, 30*time.Second))

	e := newEnv(t, func(c *rabbitmq.Config) { c.URL = u })
	b, logs := e.loggedBroker(nil)
	require.True(t, b.Connected())

	_, err = testenv.Ctl(ctx, "change_password", user, "rotated-"+pass)
	require.NoError(t, err)
	require.NoError(t, testenv.CloseConnections(ctx, vhost, "password rotated"))
	require.Eventually(t, func() bool {
		for _, l := range logs.FilterMessage("connect failed, retrying").All() {
			if l.Level == zapcore.WarnLevel && strings.Contains(l.ContextMap()["error"].(string), "username or password not allowed") {
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "the refusal is retried")
	assert.False(t, b.Connected())

	_, err = testenv.Ctl(ctx, "change_password", user, pass)
	require.NoError(t, err)
	require.Eventually(t, b.Connected, 30*time.Second, 20*time.Millisecond, "reconnected once the password is back")
}
