// Package brokertest gives each test its own RabbitMQ virtual host on the
// local broker, so tests that share exchange names (the contract fixes
// them) run in parallel without seeing each other's messages.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BaseURL is the broker the tests use: LEDGER_TEST_AMQP_URL or the local
// guest account.
func BaseURL() string {
	if u := os.Getenv("LEDGER_TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Vhost creates a fresh virtual host for t, grants the test user all
// rights on it, deletes it when t ends, and returns its AMQP URL.
func Vhost(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "ledger-test-" + hex.EncodeToString(b[:])
	u, err := CreateVhost(context.Background(), BaseURL(), name, 0)
	if err != nil {
		t.Fatalf("%v (is the broker up? run make broker)", err)
	}
	t.Cleanup(func() { DeleteVhost(name) })
	return u
}

// CreateVhost makes the virtual host name on the broker behind base, grants
// base's user everything on it, waits until it takes connections, and
// returns its URL. A broker that is restarting (make chaos does that) is
// waited for up to wait.
func CreateVhost(ctx context.Context, base, name string, wait time.Duration) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("amqp url: %w", err)
	}
	for deadline := time.Now().Add(wait); ; {
		_, err := Ctl(ctx, "add_vhost", name)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", err
		}
		time.Sleep(time.Second)
	}
	if _, err := Ctl(ctx, "set_permissions", "-p", name, u.User.Username(), ".*", ".*", ".*"); err != nil {
		DeleteVhost(name)
		return "", err
	}
	u.Path = "/" + url.PathEscape(name)
	u.RawPath = ""
	vu := u.String()
	// Permissions take a moment to reach the connection layer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := amqp.Dial(vu)
		if err == nil {
			c.Close()
			return vu, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			DeleteVhost(name)
			return "", fmt.Errorf("connect to fresh vhost %s: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeleteVhost removes the virtual host and everything in it.
func DeleteVhost(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = Ctl(ctx, "delete_vhost", name)
}

// Ctl runs rabbitmqctl -q with args and returns what it printed.
func Ctl(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Capture declares an exclusive queue bound to exchange (declared by the
// caller's system) with routing key key, and returns its deliveries.
func Capture(t testing.TB, ch *amqp.Channel, exchange, key string) <-chan amqp.Delivery {
	t.Helper()
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("declare capture queue: %v", err)
	}
	if err := ch.QueueBind(q.Name, key, exchange, false, nil); err != nil {
		t.Fatalf("bind capture queue to %s: %v", exchange, err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", q.Name, err)
	}
	return d
}

// Dial opens a connection and channel, closed when t ends.
func Dial(t testing.TB, u string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	c, err := amqp.Dial(u)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return c, ch
}

// Describe is for failure messages.
func Describe(d amqp.Delivery) string {
	return fmt.Sprintf("%s %s id=%s %s", d.Exchange, d.RoutingKey, d.MessageId, d.Body)
}
