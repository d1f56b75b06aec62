package rabbitmq

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// The unroutable queue collects, through the alternate exchange, what an
// outbound exchange could not route (no consumer bound). Nothing reads it,
// so it is bounded: the oldest messages are dropped past a length and
// expire past an age. Its depth is read every UnroutablePoll for a metric
// and a log line when it reaches the bound.

// UnroutableStatus is the unroutable queue as last read.
type UnroutableStatus struct {
	Queue     string
	MaxLength int
	MaxAge    time.Duration
	// Bounded: the queue carries the bound as arguments. A queue declared
	// earlier without them is kept unbounded unless a policy bounds it
	// (which AMQP does not show); PolicyCommand applies one.
	Bounded bool
	// Depth is the message count read at ReadAt (-1 before the first read).
	Depth  int
	ReadAt time.Time
	// Full: the depth reached MaxLength and has not fallen back below 90%
	// of it since.
	Full bool
	// PolicyCommand is the rabbitmqctl command that bounds the queue.
	PolicyCommand string
}

// Unroutable returns the unroutable queue's bound and last depth.
func (b *Broker) Unroutable() UnroutableStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unroutable
}

func (b *Broker) unroutableArgs() amqp.Table {
	args := b.queueArgs(b.cfg.QueueType)
	if args == nil {
		args = amqp.Table{}
	}
	args["x-max-length"] = int64(b.cfg.UnroutableMaxLength)
	args["x-overflow"] = "drop-head" // keep the newest: they say what is wrong now
	args["x-message-ttl"] = b.cfg.UnroutableMaxAge.Milliseconds()
	return args
}

// unroutablePolicy is the policy that bounds the unroutable queue as its
// arguments would; priority 1 so it wins over catch-all policies at the
// default priority 0.
func (c Config) unroutablePolicy(vhost string) string {
	def, _ := json.Marshal(map[string]any{
		"max-length": c.UnroutableMaxLength, "overflow": "drop-head", "message-ttl": c.UnroutableMaxAge.Milliseconds(),
	})
	return fmt.Sprintf("rabbitmqctl set_policy -p %s --apply-to queues --priority 1 %s %s %s",
		shellQuote(vhost), shellQuote(c.UnroutableQueue+"-bound"),
		shellQuote("^"+regexp.QuoteMeta(c.UnroutableQueue)+"$"), shellQuote(string(def)))
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// noteUnroutable records what the declaration found and, for a queue
// declared earlier without the bound, warns once per change with the
// command that bounds it.
func (b *Broker) noteUnroutable(info QueueInfo) {
	_, hasLen := info.Args["x-max-length"]
	_, hasTTL := info.Args["x-message-ttl"]
	bounded := hasLen && hasTTL && info.Args["x-overflow"] == "drop-head"
	b.mu.Lock()
	st := &b.unroutable
	changed := st.Queue == "" || st.Bounded != bounded
	st.Queue, st.MaxLength, st.MaxAge, st.Bounded = b.cfg.UnroutableQueue, b.cfg.UnroutableMaxLength, b.cfg.UnroutableMaxAge, bounded
	st.PolicyCommand = b.cfg.unroutablePolicy(b.vhost)
	if st.ReadAt.IsZero() {
		st.Depth = -1
	}
	cmd := st.PolicyCommand
	b.mu.Unlock()
	if changed && !bounded {
		b.log.Warn("the unroutable queue exists without the length and age bound (declared by an earlier version); keeping it, unbounded unless a policy bounds it: apply the bound with a policy",
			zap.String("queue", info.Name), zap.Any("found", info.Args), zap.String("command", cmd))
	}
}

// startUnroutableWatch starts the depth poller once, after the first
// successful declaration; it runs until Close.
func (b *Broker) startUnroutableWatch() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watching || b.closed {
		return
	}
	b.watching = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.watchUnroutable(b.ctx)
	}()
}

func (b *Broker) watchUnroutable(ctx context.Context) {
	t := time.NewTimer(0) // read once at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := b.unroutableDepth(ctx)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Debug("read unroutable queue depth", zap.Error(err))
			}
		} else {
			b.obs.OnUnroutableDepth(n)
			b.recordDepth(n, time.Now())
		}
		t.Reset(b.cfg.UnroutablePoll)
	}
}

// unroutableDepth reads the message count with a passive declare on a
// channel of its own (a 404 would close it).
func (b *Broker) unroutableDepth(ctx context.Context) (int, error) {
	s, err := b.acquire(ctx)
	if err != nil {
		return 0, err
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(b.cfg.UnroutableQueue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", b.cfg.UnroutableQueue, err)
	}
	return q.Messages, nil
}

// recordDepth keeps the last depth and logs once when the queue reaches
// its bound and once when it falls back below 90% of it (the margin keeps
// a queue hovering at the bound, as drop-head and the age make it, from
// logging at every read).
func (b *Broker) recordDepth(n int, at time.Time) {
	b.mu.Lock()
	st := &b.unroutable
	st.Depth, st.ReadAt = n, at
	was := st.Full
	switch {
	case !was && n >= st.MaxLength:
		st.Full = true
	case was && n < st.MaxLength-st.MaxLength/10:
		st.Full = false
	}
	now, s := st.Full, *st
	b.mu.Unlock()
	fields := []zap.Field{zap.String("queue", s.Queue), zap.Int("messages", n), zap.Int("max_length", s.MaxLength), zap.Duration("max_age", s.MaxAge)}
	switch {
	case now && !was && s.Bounded:
		b.log.Warn("unroutable queue reached its bound: the broker now drops the oldest unroutable messages (is a consumer of the outbound exchanges not bound?)", fields...)
	case now && !was:
		b.log.Warn("unroutable queue reached unroutable_max_length but carries no bound: unless a policy bounds it, it keeps growing; apply the bound with a policy",
			append(fields, zap.String("command", s.PolicyCommand))...)
	case !now && was:
		b.log.Info("unroutable queue is below its bound again", fields...)
	}
}
