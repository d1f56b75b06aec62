package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// The projections' Elector port, as the contract gives it.
var _ interface {
	Campaign(ctx context.Context, lead func(ctx context.Context) error) error
} = (*rabbitmq.Elector)(nil)

// Short timings; the lease is long enough that a busy machine does not
// lose a beat gap of it (a lost lease would only add a handover).
var leaseTest = rabbitmq.LeaseConfig{Beat: 100 * time.Millisecond, Lease: time.Second, Takeover: 100 * time.Millisecond}

// leaseRun is one test's election: candidates on Brokers of their own in
// one vhost, and every term they led.
type leaseRun struct {
	t     *testing.T
	url   string
	vhost string

	mu    sync.Mutex
	terms []*leaseTerm
}

type leaseTerm struct {
	inst       string
	ctx        context.Context
	start, end time.Time // end zero while leading
	leader     string    // Elector.Leader() when the term started
}

type candidate struct {
	inst, conn string
	b          *rabbitmq.Broker
	el         *rabbitmq.Elector
	cancel     context.CancelFunc
	done       chan error
	returned   time.Time // when Campaign returned (after done is read)
}

func newLeaseRun(t *testing.T) *leaseRun {
	u := testenv.Vhost(t)
	vh, err := testenv.VhostOf(u)
	require.NoError(t, err)
	return &leaseRun{t: t, url: u, vhost: vh}
}

func (r *leaseRun) connName(inst string) string {
	return fmt.Sprintf("ledgertest.%s.%s.%s", runID, sanitize(r.t.Name()), inst)
}

func (r *leaseRun) broker(amqpURL, inst string) *rabbitmq.Broker {
	r.t.Helper()
	b, err := rabbitmq.New(rabbitmq.Config{
		URL:            amqpURL,
		ConnectionName: r.connName(inst),
		ReconnectMin:   50 * time.Millisecond,
		ReconnectMax:   500 * time.Millisecond,
	}, zaptest.NewLogger(r.t).Named(inst))
	require.NoError(r.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(r.t, b.Connect(ctx))
	r.t.Cleanup(func() { _ = b.Close() })
	return b
}

// start campaigns as inst; hold is the work of each term (after the term
// is recorded), returning ends the term.
func (r *leaseRun) start(inst string, b *rabbitmq.Broker, hold func(ctx context.Context, n int) error) *candidate {
	r.t.Helper()
	if b == nil {
		b = r.broker(r.url, inst)
	}
	cfg := leaseTest
	cfg.Instance = inst
	el, err := b.Elector(cfg)
	require.NoError(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{inst: inst, conn: r.connName(inst), b: b, el: el, cancel: cancel, done: make(chan error, 1)}
	n := 0
	lead := func(ctx context.Context) error {
		term := &leaseTerm{inst: inst, ctx: ctx, start: time.Now(), leader: el.Leader()}
		r.mu.Lock()
		r.terms = append(r.terms, term)
		r.mu.Unlock()
		n++
		err := hold(ctx, n)
		r.mu.Lock()
		term.end = time.Now()
		r.mu.Unlock()
		return err
	}
	go func() { c.done <- el.Campaign(ctx, lead) }()
	r.t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			r.t.Errorf("%s: Campaign did not return after cancel", inst)
		}
	})
	return c
}

// stop cancels c's campaign and returns what Campaign returned.
func (r *leaseRun) stop(c *candidate) error {
	r.t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		c.returned = time.Now()
		c.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		r.t.Fatalf("%s: Campaign did not return within 20s of cancel", c.inst)
		return nil
	}
}

func (r *leaseRun) snapshot() []leaseTerm {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]leaseTerm, len(r.terms))
	for i, t := range r.terms {
		out[i] = *t
	}
	return out
}

// waitFor waits (generously: this is not a speed test) until ok holds for
// the terms so far and returns them.
func (r *leaseRun) waitFor(what string, within time.Duration, ok func([]leaseTerm) bool) []leaseTerm {
	r.t.Helper()
	var terms []leaseTerm
	require.Eventually(r.t, func() bool {
		terms = r.snapshot()
		return ok(terms)
	}, within, 10*time.Millisecond, "%s; terms: %s", what, describeTerms(r.snapshot()))
	return terms
}

// open is the term being led, if any.
func open(terms []leaseTerm) (leaseTerm, bool) {
	for _, t := range terms {
		if t.end.IsZero() {
			return t, true
		}
	}
	return leaseTerm{}, false
}

func describeTerms(terms []leaseTerm) string {
	var sb strings.Builder
	for _, t := range terms {
		end := "leading"
		if !t.end.IsZero() {
			end = t.end.Format("15:04:05.000")
		}
		fmt.Fprintf(&sb, "\n  %s %s..%s cause=%v", t.inst, t.start.Format("15:04:05.000"), end, context.Cause(t.ctx))
	}
	return sb.String()
}

// requireNoOverlap: one leader at a time.
func requireNoOverlap(t *testing.T, terms []leaseTerm) {
	t.Helper()
	terms = slices.Clone(terms)
	slices.SortFunc(terms, func(a, b leaseTerm) int { return a.start.Compare(b.start) })
	for i := 1; i < len(terms); i++ {
		prev := terms[i-1]
		require.False(t, prev.end.IsZero(), "%s still leads while %s leads%s", prev.inst, terms[i].inst, describeTerms(terms))
		require.False(t, terms[i].start.Before(prev.end), "%s led before %s stopped%s", terms[i].inst, prev.inst, describeTerms(terms))
	}
}

func untilDone(ctx context.Context, _ int) error {
	<-ctx.Done()
	return nil
}

// Three candidates whose terms give the role up after a while: the role
// goes round, one leader at a time, and Campaign returns nil on cancel
// only after its lead returned.
func TestLeaseOneLeaderAtATime(t *testing.T) {
	r := newLeaseRun(t)
	hold := func(ctx context.Context, _ int) error {
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
		return nil
	}
	var cs []*candidate
	for _, inst := range []string{"a", "b", "c"} {
		cs = append(cs, r.start(inst, nil, hold))
	}
	terms := r.waitFor("six finished terms", 60*time.Second, func(ts []leaseTerm) bool {
		n := 0
		for _, t := range ts {
			if !t.end.IsZero() {
				n++
			}
		}
		return n >= 6
	})
	for _, c := range cs {
		require.NoError(t, r.stop(c))
	}
	terms = r.snapshot()
	requireNoOverlap(t, terms)
	leaders := map[string]bool{}
	for _, term := range terms {
		leaders[term.inst] = true
		assert.Equal(t, term.inst, term.leader, "Leader() names the leader itself")
		for _, c := range cs {
			if c.inst == term.inst {
				assert.False(t, term.end.After(c.returned), "%s: Campaign returned before its lead did", c.inst)
			}
		}
	}
	assert.GreaterOrEqual(t, len(leaders), 2, "the role went to another instance when given up%s", describeTerms(terms))
}

// The leader's connection is closed by the broker: another instance leads,
// the deposed one's term says the connection went, and once reconnected it
// campaigns again as a follower.
func TestLeaseConnectionLossHandsOver(t *testing.T) {
	r := newLeaseRun(t)
	cs := map[string]*candidate{}
	for _, inst := range []string{"a", "b", "c"} {
		cs[inst] = r.start(inst, nil, untilDone)
	}
	var deposed leaseTerm
	var killed time.Time
	// A busy machine may end a term on its own (a lost lease) between
	// picking the leader and closing its connection: then pick again.
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 3, "the leader kept changing on its own%s", describeTerms(r.snapshot()))
		ts := r.waitFor("a leader", 20*time.Second, func(ts []leaseTerm) bool { _, ok := open(ts); return ok })
		leader, _ := open(ts)
		killed = time.Now()
		if !closeServerSide(t, cs[leader.inst].conn) {
			t.Skip("rabbitmqctl cannot close the connection")
		}
		ts = r.waitFor("the deposed term ends", 10*time.Second, func(ts []leaseTerm) bool {
			for _, x := range ts {
				if x.inst == leader.inst && x.start.Equal(leader.start) {
					deposed = x
					return !x.end.IsZero()
				}
			}
			return false
		})
		if !deposed.end.Before(killed) {
			break
		}
	}
	cause := context.Cause(deposed.ctx)
	require.Error(t, cause)
	assert.Contains(t, cause.Error(), "connection", "the cause says the connection went")

	// Another instance takes over within a generous bound (not a speed test).
	r.waitFor("another leader", 10*time.Second, func(ts []leaseTerm) bool {
		for _, x := range ts {
			if x.inst != deposed.inst && x.start.After(killed) {
				return true
			}
		}
		return false
	})

	// The deposed one reconnected and campaigns again: its consumer is back.
	d := cs[deposed.inst]
	require.Eventually(t, d.b.Connected, 10*time.Second, 10*time.Millisecond, "reconnected")
	require.Eventually(t, func() bool {
		return slices.Contains(leaseConsumers(t, r.vhost), rabbitmq.LeaseConsumerPrefix+deposed.inst)
	}, 10*time.Second, 100*time.Millisecond, "the deposed instance consumes again")
	select {
	case err := <-d.done:
		t.Fatalf("the deposed Campaign returned: %v", err)
	default:
	}

	// Stopping the new leader hands the role over gracefully: one at a time.
	now, ok := open(r.snapshot())
	require.True(t, ok)
	require.NoError(t, r.stop(cs[now.inst]))
	r.waitFor("a leader after the stopped one", 10*time.Second, func(ts []leaseTerm) bool {
		x, ok := open(ts)
		return ok && x.start.After(now.start)
	})
	var after []leaseTerm
	for _, x := range r.snapshot() {
		if !x.start.Before(now.start) {
			after = append(after, x)
		}
	}
	requireNoOverlap(t, after)
	assert.Contains(t, context.Cause(now.ctx).Error(), "stopped")
}

// leaseConsumers lists the consumer tags on the vhost's queues.
func leaseConsumers(t *testing.T, vhost string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testenv.Ctl(ctx, "list_consumers", "-p", vhost, "--no-table-headers", "consumer_tag")
	require.NoError(t, err)
	return strings.Fields(out)
}

// A lead that returns (fenced, failed) gives the role to another instance.
func TestLeaseLeadReturningGivesTheRoleAway(t *testing.T) {
	r := newLeaseRun(t)
	fenced := errors.New("checkpoint fenced")
	var once sync.Once
	hold := func(ctx context.Context, n int) error {
		give := false
		once.Do(func() { give = true })
		if give {
			return fenced
		}
		return untilDone(ctx, n)
	}
	a := r.start("a", nil, hold)
	b := r.start("b", nil, hold)
	ts := r.waitFor("a second leader", 10*time.Second, func(ts []leaseTerm) bool {
		_, ok := open(ts)
		return len(ts) >= 2 && ok
	})
	require.NotEqual(t, ts[0].inst, ts[1].inst, "the role went to the other instance%s", describeTerms(ts))
	cause := context.Cause(ts[0].ctx)
	require.ErrorIs(t, cause, fenced)
	assert.Contains(t, cause.Error(), "lead returned")
	leader := map[string]*candidate{"a": a, "b": b}[ts[1].inst]
	assert.Equal(t, ts[1].inst, leader.el.Leader())
	requireNoOverlap(t, r.snapshot())

	// Closing the leader's Broker ends its term and its Campaign.
	require.NoError(t, leader.b.Close())
	select {
	case err := <-leader.done:
		require.ErrorIs(t, err, rabbitmq.ErrClosed)
		leader.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Campaign did not return after its Broker closed")
	}
	var last leaseTerm
	for _, x := range r.snapshot() {
		if x.inst == leader.inst {
			last = x
		}
	}
	require.False(t, last.end.IsZero(), "the term ended before Campaign returned")
	assert.Contains(t, context.Cause(last.ctx).Error(), "connection")
}

// The queue deleted under the leader ends its term; it declares the queue
// again and leads again.
func TestLeaseQueueDeleted(t *testing.T) {
	r := newLeaseRun(t)
	r.start("a", nil, untilDone)
	ts := r.waitFor("a leads", 20*time.Second, func(ts []leaseTerm) bool { _, ok := open(ts); return ok })
	_, ch := testenv.Dial(t, r.url)
	_, err := ch.QueueDelete(rabbitmq.DefaultLeaderQueue, false, false, false)
	require.NoError(t, err)
	r.waitFor("a leads again", 20*time.Second, func(ts []leaseTerm) bool { x, ok := open(ts); return ok && len(ts) > 1 && x.start.After(ts[0].end) })
	assert.Contains(t, context.Cause(ts[0].ctx).Error(), "consumer cancelled by the broker")
}

// A partitioned leader (no frames either way, the connection not yet
// seen dead) stops leading once no beat came for the lease; the broker
// hands the role on when the partition heals.
func TestLeaseExpiresWithoutBeats(t *testing.T) {
	r := newLeaseRun(t)
	u, err := url.Parse(r.url)
	require.NoError(t, err)
	p := newProxy(t, u.Host)
	u.Host = p.addr()
	a := r.start("a", r.broker(u.String(), "a"), untilDone)
	r.waitFor("a leads", 20*time.Second, func(ts []leaseTerm) bool { x, ok := open(ts); return ok && x.inst == "a" })
	r.start("b", nil, untilDone)
	require.Eventually(t, func() bool {
		return slices.Contains(leaseConsumers(t, r.vhost), rabbitmq.LeaseConsumerPrefix+"b")
	}, 10*time.Second, 100*time.Millisecond, "b campaigns")

	ts := r.waitFor("a leads", 20*time.Second, func(ts []leaseTerm) bool { x, ok := open(ts); return ok && x.inst == "a" })
	term, _ := open(ts)
	p.pause()
	r.waitFor("a's lease expires", 10*time.Second, func(ts []leaseTerm) bool {
		for _, x := range ts {
			if x.start.Equal(term.start) && x.inst == "a" {
				return !x.end.IsZero()
			}
		}
		return false
	})
	assert.Contains(t, context.Cause(term.ctx).Error(), "no beat for 1s")
	assert.True(t, a.b.Connected(), "the client has not seen the connection die")
	p.resume()
	r.waitFor("b leads", 20*time.Second, func(ts []leaseTerm) bool { x, ok := open(ts); return ok && x.inst == "b" })
	requireNoOverlap(t, r.snapshot())
}

// proxy forwards TCP to target; paused, it forwards nothing either way
// (a network partition the heartbeats have not noticed yet).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	gate   chan struct{} // closed while forwarding
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, gate: make(chan struct{})}
	close(p.gate)
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		_ = ln.Close()
		p.resume()
		cmu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		cmu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, up)
			cmu.Unlock()
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

func (p *proxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = src.Close()
			}
			return
		}
	}
}

// An existing queue with other arguments is an error naming the queue and
// the argument, at once: campaigning again cannot fix it.
func TestLeaseQueueMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		args amqp.Table
		want []string
	}{
		{"other lease", amqp.Table{"x-queue-type": "classic", "x-single-active-consumer": true, "x-max-length": int64(16), "x-overflow": "drop-head", "x-message-ttl": int64(5000)},
			[]string{"x-message-ttl is 5000 there, the election declares 1000"}},
		{"plain queue", nil, []string{"exists with other arguments ("}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLeaseRun(t)
			_, ch := testenv.Dial(t, r.url)
			_, err := ch.QueueDeclare(rabbitmq.DefaultLeaderQueue, true, false, false, false, tc.args)
			require.NoError(t, err)
			cfg := leaseTest
			cfg.Instance = "a"
			el, err := r.broker(r.url, "a").Elector(cfg)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			led := false
			err = el.Campaign(ctx, func(context.Context) error { led = true; return nil })
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "an error at once, not a retry loop")
			t.Log(err)
			assert.False(t, led)
			assert.Contains(t, err.Error(), `leader queue "ledger.leader"`)
			assert.Contains(t, err.Error(), r.vhost)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLeaseConfig(t *testing.T) {
	b, err := rabbitmq.New(rabbitmq.Config{URL: "amqp://guest:guest@127.0.0.1:5672/"}, nil)
	require.NoError(t, err)

	el, err := b.Elector(rabbitmq.LeaseConfig{Instance: "host-1"})
	require.NoError(t, err)
	assert.Equal(t, rabbitmq.LeaseConfig{
		Queue: rabbitmq.DefaultLeaderQueue, Instance: "host-1",
		Beat: rabbitmq.DefaultLeaseBeat, Lease: rabbitmq.DefaultLeaseTTL, Takeover: rabbitmq.DefaultLeaseTakeover, Pause: 2 * rabbitmq.DefaultLeaseBeat,
	}, el.Config())
	assert.Empty(t, el.Leader(), "nobody known before campaigning")

	_, err = b.Elector(rabbitmq.LeaseConfig{Instance: "x", Beat: 2 * time.Second})
	require.NoError(t, err, "the default lease follows a longer beat")

	for _, tc := range []struct {
		name string
		cfg  rabbitmq.LeaseConfig
		want []string
	}{
		{"no instance", rabbitmq.LeaseConfig{}, []string{"instance: required"}},
		{"blank instance", rabbitmq.LeaseConfig{Instance: "  "}, []string{"instance: required"}},
		{"long instance", rabbitmq.LeaseConfig{Instance: strings.Repeat("i", 250)}, []string{"instance: longer than 242 bytes"}},
		{"negative beat", rabbitmq.LeaseConfig{Instance: "x", Beat: -time.Second, Lease: time.Second}, []string{"beat -1s: must be positive"}},
		{"lease not above beat", rabbitmq.LeaseConfig{Instance: "x", Beat: time.Second, Lease: time.Second}, []string{"lease 1s: must be longer than beat (1s)"}},
		{"negative lease", rabbitmq.LeaseConfig{Instance: "x", Lease: -1}, []string{"lease -1ns: must be positive"}},
		{"lease not whole ms", rabbitmq.LeaseConfig{Instance: "x", Lease: 1500 * time.Microsecond, Beat: time.Millisecond}, []string{"whole milliseconds"}},
		{"huge lease", rabbitmq.LeaseConfig{Instance: "x", Lease: 2000 * time.Hour}, []string{"lease 2000h0m0s: must be at most"}},
		{"negative takeover and pause", rabbitmq.LeaseConfig{Instance: "x", Takeover: -1, Pause: -1}, []string{"takeover -1ns: must not be negative", "pause -1ns: must not be negative"}},
		{"reserved queue", rabbitmq.LeaseConfig{Instance: "x", Queue: "amq.leader"}, []string{`queue "amq.leader": names starting with amq. are reserved`}},
		{"long queue", rabbitmq.LeaseConfig{Instance: "x", Queue: strings.Repeat("q", 256)}, []string{"queue: longer than 255 bytes"}},
		{"every problem at once", rabbitmq.LeaseConfig{Beat: -1, Takeover: -1}, []string{"instance: required", "beat -1ns", "takeover -1ns"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Elector(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "rabbitmq leader election config: ")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	err = el.Campaign(context.Background(), nil)
	assert.ErrorContains(t, err, "nil lead")
}
