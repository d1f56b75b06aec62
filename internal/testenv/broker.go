package testenv

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

// VhostName is prefix followed by random hex: a name no other run uses.
func VhostName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Vhost creates a fresh virtual host for t on the broker at BaseURL,
// deletes it when t ends, and returns its AMQP URL.
func Vhost(t testing.TB) string {
	t.Helper()
	name := VhostName("ledger-test")
	u, err := CreateVhost(context.Background(), BaseURL(), name, 0)
	if err != nil {
		t.Fatalf("%v (is the broker up? run make broker)", err)
	}
	t.Cleanup(func() {
		if err := DeleteVhost(context.Background(), name); err != nil {
			t.Logf("%v", err)
		}
	})
	return u
}

// CreateVhost makes the virtual host name on the broker behind base, grants
// base's user everything on it, waits until it takes connections, and
// returns its URL. A broker that is restarting (the chaos run does that)
// is waited for up to wait.
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
		if time.Now().After(deadline) {
			return "", err
		}
		if err := Sleep(ctx, time.Second); err != nil {
			return "", err
		}
	}
	if _, err := Ctl(ctx, "set_permissions", "-p", name, u.User.Username(), ".*", ".*", ".*"); err != nil {
		_ = DeleteVhost(context.WithoutCancel(ctx), name)
		return "", err
	}
	u.Path = "/" + url.PathEscape(name)
	u.RawPath = ""
	vu := u.String()
	// Permissions take a moment to reach the connection layer.
	if err := WaitDial(ctx, vu, 30*time.Second); err != nil {
		_ = DeleteVhost(context.WithoutCancel(ctx), name)
		return "", fmt.Errorf("connect to fresh vhost %s: %w", name, err)
	}
	return vu, nil
}

// WaitDial waits until amqpURL accepts a connection (new users and
// permissions take a moment to reach the broker's connection layer), for
// at most wait.
func WaitDial(ctx context.Context, amqpURL string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		c, err := amqp.Dial(amqpURL)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		if err := Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// DeleteVhost removes the virtual host and everything in it. It gives up
// after 30 seconds, so a cleanup cannot hang on a broker that is gone.
func DeleteVhost(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := Ctl(ctx, "delete_vhost", name)
	return err
}

// VhostOf returns the virtual host named by an AMQP URL.
func VhostOf(amqpURL string) (string, error) {
	u, err := amqp.ParseURI(amqpURL)
	if err != nil {
		return "", fmt.Errorf("parse amqp url: %w", err)
	}
	return u.Vhost, nil
}

// Ctl runs rabbitmqctl -q with args and returns what it printed.
func Ctl(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CloseConnections makes the broker close every connection to vhost, as
// an operator or a broker restart would; other vhosts are not touched.
func CloseConnections(ctx context.Context, vhost, reason string) error {
	_, err := Ctl(ctx, "close_all_connections", "-p", vhost, reason)
	return err
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

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
