package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/bookworm-ledger/ledger/cmd/internal/brokertest"
)

// vhost is a throw-away RabbitMQ virtual host, so the bench sees only its
// own traffic and leaves nothing behind.
type vhost struct {
	name string
	url  string
}

func newVhost(ctx context.Context, base, label string) (*vhost, error) {
	var b [5]byte
	_, _ = rand.Read(b[:])
	name := "ledger-bench-" + label + "-" + hex.EncodeToString(b[:])
	// The broker may be restarting (make chaos does that): wait for it.
	u, err := brokertest.CreateVhost(ctx, base, name, 90*time.Second)
	if err != nil {
		return nil, err
	}
	return &vhost{name: name, url: u}, nil
}

// delete removes the vhost and everything in it; it works after ctx ended.
func (v *vhost) delete() { brokertest.DeleteVhost(v.name) }
