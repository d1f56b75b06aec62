// Package brokertest gives each test its own RabbitMQ virtual host on the
// local broker, so tests that share exchange names (the contract fixes
// them) run in parallel without seeing each other's messages.
package brokertest

import (
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
	base, err := url.Parse(BaseURL())
	if err != nil {
		t.Fatalf("LEDGER_TEST_AMQP_URL: %v", err)
	}
	user := base.User.Username()
	ctl(t, "add_vhost", name)
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "-q", "delete_vhost", name).Run() })
	ctl(t, "set_permissions", "-p", name, user, ".*", ".*", ".*")
	base.Path = "/" + url.PathEscape(name)
	u := base.String()
	// Permissions take a moment to reach the connection layer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := amqp.Dial(u)
		if err == nil {
			c.Close()
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to fresh vhost %s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ctl(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v: %s (is the broker up? run make broker)", strings.Join(args, " "), err, out)
	}
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
