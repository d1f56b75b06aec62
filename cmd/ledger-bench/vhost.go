package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// vhost is a throw-away RabbitMQ virtual host (made with rabbitmqctl, like
// brokertest.Vhost, which needs a testing.TB), so the bench sees only its
// own traffic and leaves nothing behind.
type vhost struct {
	name string
	url  string
}

func newVhost(ctx context.Context, base, label string) (*vhost, error) {
	var b [5]byte
	_, _ = rand.Read(b[:])
	name := "ledger-bench-" + label + "-" + hex.EncodeToString(b[:])
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("amqp url: %w", err)
	}
	// The broker may be restarting (make chaos does that): wait for it.
	for deadline := time.Now().Add(90 * time.Second); ; {
		err := rabbitmqctl(ctx, "add_vhost", name)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(time.Second)
	}
	v := &vhost{name: name}
	if err := rabbitmqctl(ctx, "set_permissions", "-p", name, u.User.Username(), ".*", ".*", ".*"); err != nil {
		v.delete()
		return nil, err
	}
	u.Path = "/" + url.PathEscape(name)
	u.RawPath = ""
	v.url = u.String()
	// Permissions take a moment to reach the connection layer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := amqp.Dial(v.url)
		if err == nil {
			c.Close()
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			v.delete()
			return nil, fmt.Errorf("connect to fresh vhost %s: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// delete removes the vhost and everything in it; it works after ctx ended.
func (v *vhost) delete() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = rabbitmqctl(ctx, "delete_vhost", v.name)
}

func rabbitmqctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %w: %s (is the broker up? run make broker)", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
