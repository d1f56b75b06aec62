package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/internal/testenv"
	"github.com/bookworm-ledger/ledger/projections"
)

// The log lines of a leadership term (cmd/ledger's leadershipLog).
const (
	MsgAcquired = "leadership acquired"
	MsgLost     = "leadership lost"
)

// DefaultFailoverBound is how long the run allows from losing the leader to
// another instance acquiring the role: the lease (3s), a beat (1s) and the
// take-over wait (1s), with room for a busy machine.
const DefaultFailoverBound = 15 * time.Second

// LeaderEvent is one "leadership acquired" or "leadership lost" line.
type LeaderEvent struct {
	Instance string
	At       time.Time
	Acquired bool // false: lost
	Reason   string
}

// ParseLeadership reads the JSON log of one instance (every run of it,
// appended) and returns its leadership lines in log order. Other lines,
// and lines that are not JSON (a killed process may leave half a line),
// are skipped. Lines without an instance field get instance.
func ParseLeadership(r io.Reader, instance string) ([]LeaderEvent, error) {
	var out []LeaderEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), "leadership") {
			continue
		}
		var rec struct {
			Msg      string `json:"msg"`
			TS       string `json:"ts"`
			At       string `json:"at"`
			Instance string `json:"instance"`
			Reason   string `json:"reason"`
		}
		if json.Unmarshal(line, &rec) != nil || (rec.Msg != MsgAcquired && rec.Msg != MsgLost) {
			continue
		}
		at, err := parseLogTime(rec.At)
		if err != nil {
			if at, err = parseLogTime(rec.TS); err != nil {
				return out, fmt.Errorf("%s line %q: %w", instance, line, err)
			}
		}
		e := LeaderEvent{Instance: rec.Instance, At: at, Acquired: rec.Msg == MsgAcquired, Reason: rec.Reason}
		if e.Instance == "" {
			e.Instance = instance
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// parseLogTime reads zap's ISO 8601 time ("2006-01-02T15:04:05.000Z0700")
// or RFC 3339.
func parseLogTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("no time")
	}
	for _, layout := range []string{"2006-01-02T15:04:05.000Z0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: not ISO 8601", s)
}

// Interval is one leadership term of an instance: the time it may have
// published.
type Interval struct {
	Instance string
	From, To time.Time
	// End says how the term ended: "lost" (its log line), "killed" (kill
	// -9 before a lost line) or "end of run" (still open when the run
	// stopped).
	End string
}

// Intervals builds one instance's terms from its leadership lines (in log
// order) and the times it was killed: a term still open at a kill ends
// there, one still open at the end of the run ends at end.
func Intervals(instance string, events []LeaderEvent, kills []time.Time, end time.Time) []Interval {
	kills = append([]time.Time(nil), kills...)
	sort.Slice(kills, func(i, j int) bool { return kills[i].Before(kills[j]) })
	var out []Interval
	var open *Interval
	// closeAtKills ends the open term at the first kill after it began and
	// before t (the next line's time): the process died holding the role.
	closeAtKills := func(t time.Time) {
		if open == nil {
			return
		}
		for _, k := range kills {
			if k.Before(open.From) {
				continue
			}
			if k.Before(t) {
				open.To, open.End = k, "killed"
				out = append(out, *open)
				open = nil
			}
			return
		}
	}
	for _, e := range events {
		closeAtKills(e.At)
		switch {
		case e.Acquired && open != nil:
			// Two acquired lines in a row without a kill between them:
			// the first term's end is unknown, so it lasts until the
			// second began (the conservative reading).
			open.To, open.End = e.At, "acquired again"
			out = append(out, *open)
			open = &Interval{Instance: instance, From: e.At}
		case e.Acquired:
			open = &Interval{Instance: instance, From: e.At}
		case open != nil:
			open.To, open.End = e.At, "lost"
			out = append(out, *open)
			open = nil
		}
	}
	closeAtKills(end.Add(time.Nanosecond))
	if open != nil {
		open.To, open.End = end, "end of run"
		out = append(out, *open)
	}
	return out
}

// Overlap is a stretch of time two terms of different instances share:
// two publishers at once.
type Overlap struct {
	A, B     Interval
	From, To time.Time
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s [%s, %s] and %s [%s, %s] overlap by %s", o.A.Instance, clock(o.A.From), clock(o.A.To),
		o.B.Instance, clock(o.B.From), clock(o.B.To), o.To.Sub(o.From))
}

// Overlaps returns every pair of terms that share time. Terms that only
// touch (one ends the moment the other begins) do not overlap; neither do
// two terms of one instance, which cannot publish twice at once.
func Overlaps(terms []Interval) []Overlap {
	ts := append([]Interval(nil), terms...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].From.Before(ts[j].From) })
	var out []Overlap
	for i := range ts {
		for j := i + 1; j < len(ts) && ts[j].From.Before(ts[i].To); j++ {
			if ts[i].Instance == ts[j].Instance {
				continue
			}
			to := ts[i].To
			if ts[j].To.Before(to) {
				to = ts[j].To
			}
			out = append(out, Overlap{A: ts[i], B: ts[j], From: ts[j].From, To: to})
		}
	}
	return out
}

// HAFault is a blow to the leader: a kill -9 or a cut of its broker
// connection.
type HAFault struct {
	Kind     string // "kill" or "cut"
	Instance string // the leader hit
	At       time.Time
	// Done is when the cut's rabbitmqctl close_connection returned: the
	// broker closed the connection somewhere in [At, Done] (zero for a
	// kill, which is at At).
	Done time.Time
}

// cutMoments moves each cut's time to the victim's "leadership lost" line
// when that falls within the rabbitmqctl call: the broker had closed the
// connection by then. rabbitmqctl takes seconds to start on a busy
// machine, which is no part of the failover.
func cutMoments(faults []HAFault, events map[string][]LeaderEvent) []HAFault {
	out := append([]HAFault(nil), faults...)
	for i, f := range out {
		if f.Kind != "cut" || f.Done.IsZero() {
			continue
		}
		for _, e := range events[f.Instance] {
			if !e.Acquired && !e.At.Before(f.At) && !e.At.After(f.Done) {
				out[i].At = e.At
				break
			}
		}
	}
	return out
}

// Failover is how long the role took to reach another instance after a
// fault.
type Failover struct {
	Fault HAFault
	To    string        // the instance that acquired the role; "" when none did
	Took  time.Duration // from the fault to its "leadership acquired"
}

// Failovers finds, for every fault, the first "leadership acquired" of
// another instance at or after it.
func Failovers(faults []HAFault, events []LeaderEvent) []Failover {
	acq := make([]LeaderEvent, 0, len(events))
	for _, e := range events {
		if e.Acquired {
			acq = append(acq, e)
		}
	}
	sort.Slice(acq, func(i, j int) bool { return acq[i].At.Before(acq[j].At) })
	out := make([]Failover, 0, len(faults))
	for _, f := range faults {
		fo := Failover{Fault: f}
		for _, e := range acq {
			if e.Instance != f.Instance && !e.At.Before(f.At) {
				fo.To, fo.Took = e.Instance, e.At.Sub(f.At)
				break
			}
		}
		out = append(out, fo)
	}
	return out
}

// Quantile is the q-quantile (0..1) of ds by the nearest rank; 0 for none.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// HAReport is what the leadership checks found.
type HAReport struct {
	Instances int
	Terms     []Interval
	Overlaps  []Overlap
	Failovers []Failover
	Bound     time.Duration // a failover must take no longer
	Changes   int           // "leadership acquired" lines over every instance
}

// BuildHAReport reads the leadership lines of every instance (instance ->
// events), ends the terms at the kills and at end, and measures the
// failovers after faults.
func BuildHAReport(events map[string][]LeaderEvent, faults []HAFault, end time.Time, bound time.Duration) HAReport {
	h := HAReport{Instances: len(events), Bound: bound}
	names := make([]string, 0, len(events))
	for n := range events {
		names = append(names, n)
	}
	sort.Strings(names)
	var all []LeaderEvent
	for _, n := range names {
		var kills []time.Time
		for _, f := range faults {
			if f.Kind == "kill" && f.Instance == n {
				kills = append(kills, f.At)
			}
		}
		h.Terms = append(h.Terms, Intervals(n, events[n], kills, end)...)
		for _, e := range events[n] {
			if e.Acquired {
				h.Changes++
			}
		}
		all = append(all, events[n]...)
	}
	h.Overlaps = Overlaps(h.Terms)
	h.Failovers = Failovers(cutMoments(faults, events), all)
	return h
}

// FailoverTimes are the measured failovers, missing ones left out.
func (h HAReport) FailoverTimes() []time.Duration {
	var ds []time.Duration
	for _, f := range h.Failovers {
		if f.To != "" {
			ds = append(ds, f.Took)
		}
	}
	return ds
}

// Failures lists what broke, one line each.
func (h HAReport) Failures() []string {
	var f []string
	if n := len(h.Overlaps); n > 0 {
		f = append(f, fmt.Sprintf("%d intervals with two publishers", n))
	}
	missing, slow := h.failoverProblems()
	if missing > 0 {
		f = append(f, fmt.Sprintf("%d faults after which no other instance acquired the role", missing))
	}
	if slow > 0 {
		f = append(f, fmt.Sprintf("%d failovers took longer than %s", slow, h.Bound))
	}
	return f
}

// failoverProblems counts the faults no other instance took over from,
// and the failovers beyond the bound.
func (h HAReport) failoverProblems() (missing, slow int) {
	for _, fo := range h.Failovers {
		switch {
		case fo.To == "":
			missing++
		case fo.Took > h.Bound:
			slow++
		}
	}
	return missing, slow
}

// Details lists every overlap and failover, for under the table.
func (h HAReport) Details() []string {
	var out []string
	for _, o := range h.Overlaps {
		out = append(out, "two publishers: "+o.String())
	}
	for i, fo := range h.Failovers {
		to := "no other instance acquired the role"
		if fo.To != "" {
			to = fmt.Sprintf("%s acquired after %s", fo.To, fo.Took.Round(time.Millisecond))
		}
		out = append(out, fmt.Sprintf("fault %d: %s %s at %s; %s", i+1, fo.Fault.Kind, fo.Fault.Instance, clock(fo.Fault.At), to))
	}
	return out
}

// WriteHATable prints the run's table: WriteTable's rows and the
// leadership rows.
func WriteHATable(w io.Writer, load Load, f Faults, r Report, h HAReport) error {
	tw := newTable(w)
	writeRows(tw, load, f, r)
	row := func(name, value, note string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", name, value, note) }
	row("intervals with two publishers", fmt.Sprint(len(h.Overlaps)),
		fmt.Sprintf("%s; %d terms over %d instances", must0(len(h.Overlaps)), len(h.Terms), h.Instances))
	ds := h.FailoverTimes()
	note := fmt.Sprintf("ok (bound %s)", h.Bound)
	if missing, slow := h.failoverProblems(); missing+slow > 0 {
		note = fmt.Sprintf("FAIL (bound %s: %d missing, %d slower)", h.Bound, missing, slow)
	}
	row("failover p50 / max", fmt.Sprintf("%s / %s", Quantile(ds, 0.5).Round(time.Millisecond), Quantile(ds, 1).Round(time.Millisecond)),
		fmt.Sprintf("%s; %d of %d faults failed over; %d leadership terms began", note, len(ds), len(h.Failovers), h.Changes))
	return tw.Flush()
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

// BrokerConnections lists the connections of vhost whose client-provided
// name is name (rabbitmqctl list_connections), by their pids.
func BrokerConnections(ctx context.Context, vhost, name string) ([]string, error) {
	out, err := testenv.Ctl(ctx, "list_connections", "--no-table-headers", "pid", "vhost", "client_properties")
	if err != nil {
		return nil, err
	}
	return connectionsNamed(out, vhost, name), nil
}

var connNameRE = regexp.MustCompile(`\{"connection_name","((?:[^"\\]|\\.)*)"\}`)

// connectionsNamed picks from rabbitmqctl's "pid vhost client_properties"
// rows the pids of vhost's connections named name.
func connectionsNamed(out, vhost, name string) []string {
	var pids []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 || f[1] != vhost {
			continue
		}
		if m := connNameRE.FindStringSubmatch(f[2]); m != nil && m[1] == name {
			pids = append(pids, f[0])
		}
	}
	return pids
}

// CloseNamedConnections closes the connections of vhost named name (the
// broker side of one instance) and returns how many it closed.
func CloseNamedConnections(ctx context.Context, vhost, name, reason string) (int, error) {
	pids, err := BrokerConnections(ctx, vhost, name)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pid := range pids {
		if _, err := testenv.Ctl(ctx, "close_connection", pid, reason); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// sharedParked lists the parked lanes kept in the shared log.
func sharedParked(ctx context.Context, log domain.EventLog) ([]projections.Parked, error) {
	return projections.NewSharedParks(log).ListParked(ctx)
}

// ClusterOptions say how to run several `ledger serve` instances on one
// shared EventStoreDB and one vhost, electing a leader over the broker.
type ClusterOptions struct {
	Binary    string // the ledger binary
	AMQPURL   string // the vhost's URL
	ESDBURL   string // the shared store's connection string
	Dir       string // each instance's data dir and log go under it
	Instances int    // default 3; named i1, i2, …
	Env       []string
	// ReadyTimeout bounds each start and restart (default 90s).
	ReadyTimeout time.Duration
}

// Instance is one member of a Cluster.
type Instance struct {
	Name    string
	DataDir string
	LogPath string
	*testenv.Serve
}

// ConnectionName is the client-provided name of the instance's broker
// connections.
func (in *Instance) ConnectionName() string { return "ledger " + in.Name }

// Cluster is several instances of the ledger sharing a store and a vhost.
type Cluster struct {
	Instances []*Instance
	vhost     string

	mu     sync.Mutex
	faults []HAFault
}

// StartCluster starts every instance and waits until each is ready.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.Instances <= 0 {
		o.Instances = 3
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	vhost, err := testenv.VhostOf(o.AMQPURL)
	if err != nil {
		return nil, err
	}
	c := &Cluster{vhost: vhost}
	for i := 1; i <= o.Instances; i++ {
		name := fmt.Sprintf("i%d", i)
		in := &Instance{Name: name, DataDir: filepath.Join(o.Dir, name), LogPath: filepath.Join(o.Dir, name+".log")}
		env := append([]string{
			"LEDGER_LOG_LEVEL=info", "LEDGER_STORE=esdb", "LEDGER_ESDB_URL=" + o.ESDBURL,
			"LEDGER_INSTANCE=" + name, "LEDGER_LEADER_ELECTION=rabbitmq",
		}, o.Env...)
		in.Serve, err = testenv.Spawn(testenv.ServeOptions{
			Binary: o.Binary, AMQPURL: o.AMQPURL, DataDir: in.DataDir, LogPath: in.LogPath,
			Env: env, ReadyTimeout: o.ReadyTimeout,
		})
		if err != nil {
			_ = c.Stop()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		c.Instances = append(c.Instances, in)
	}
	for _, in := range c.Instances {
		if _, err := in.WaitReady(ctx, o.ReadyTimeout); err != nil {
			_ = c.Stop()
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
	}
	return c, nil
}

// leading reports whether the instance's /metrics says it leads.
func leading(ctx context.Context, in *Instance) (bool, error) {
	m, err := in.Metrics(ctx)
	if err != nil {
		return false, err
	}
	for k, v := range m {
		if (k == "ledger_leader" || strings.HasPrefix(k, "ledger_leader{")) && v == 1 {
			return true, nil
		}
	}
	return false, nil
}

// WaitLeader waits until exactly one running instance says it leads, and
// returns it.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (*Instance, error) {
	deadline := time.Now().Add(timeout)
	var why string
	for {
		var leaders []*Instance
		why = ""
		for _, in := range c.Instances {
			if in.Alive() != nil {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ok, err := leading(sctx, in)
			cancel()
			if err != nil {
				why = fmt.Sprintf("%s: %v", in.Name, err)
			}
			if ok {
				leaders = append(leaders, in)
			}
		}
		if len(leaders) == 1 {
			return leaders[0], nil
		}
		if why == "" {
			why = fmt.Sprintf("%d instances say they lead", len(leaders))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no single leader after %s: %s", timeout, why)
		}
		if err := testenv.Sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (c *Cluster) record(f HAFault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, f)
}

// Faults are the blows dealt so far.
func (c *Cluster) Faults() []HAFault {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]HAFault(nil), c.faults...)
}

// KillLeader kill -9s the current leader, waits pause and starts it again
// on the same data dir; it returns the fault and how long the restart
// took to be ready.
func (c *Cluster) KillLeader(ctx context.Context, pause, waitLeader time.Duration) (HAFault, time.Duration, error) {
	in, err := c.WaitLeader(ctx, waitLeader)
	if err != nil {
		return HAFault{}, 0, err
	}
	f := HAFault{Kind: "kill", Instance: in.Name, At: time.Now()}
	if err := in.Kill(); err != nil {
		return f, 0, err
	}
	c.record(f)
	if err := testenv.Sleep(ctx, pause); err != nil {
		return f, 0, err
	}
	d, err := in.Restart(ctx)
	if err != nil {
		return f, d, fmt.Errorf("restart %s: %w", in.Name, err)
	}
	return f, d, nil
}

// CutLeader closes the current leader's broker connections (rabbitmqctl
// close_connection, that instance's only); it reconnects by itself.
func (c *Cluster) CutLeader(ctx context.Context, waitLeader time.Duration) (HAFault, error) {
	in, err := c.WaitLeader(ctx, waitLeader)
	if err != nil {
		return HAFault{}, err
	}
	pids, err := BrokerConnections(ctx, c.vhost, in.ConnectionName())
	if err != nil {
		return HAFault{}, err
	}
	if len(pids) == 0 {
		return HAFault{}, fmt.Errorf("no broker connection named %q in vhost %s", in.ConnectionName(), c.vhost)
	}
	f := HAFault{Kind: "cut", Instance: in.Name, At: time.Now()}
	for _, pid := range pids {
		// A connection that closed meanwhile is gone already: good enough.
		_, _ = testenv.Ctl(ctx, "close_connection", pid, "chaos-ha: cut the leader")
	}
	f.Done = time.Now()
	c.record(f)
	return f, nil
}

// WaitQuiet waits until the cluster has consumed everything and published
// every fact: the ledger queue is empty (ready and unacked), the shared
// lifecycle checkpoint is at the last fact of log, every running
// instance's read model is caught up, and no new fact came for a few
// rounds.
func (c *Cluster) WaitQuiet(ctx context.Context, log domain.EventLog, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	lagRM := fmt.Sprintf("ledger_projection_lag{projection=%q}", projections.ReadModelName)
	var after, lastFact *domain.Position
	still := 0
	why := "not checked yet"
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not quiet after %s: %s", timeout, why)
		}
		if err := testenv.Sleep(ctx, 1500*time.Millisecond); err != nil {
			return err
		}
		// The facts since the last round.
		grew := false
		for {
			evs, err := log.ReadAll(ctx, after, 8192)
			if err != nil {
				return fmt.Errorf("read the shared log: %w", err)
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if !bookkeeping(e.Stream) {
					p := e.Position
					lastFact, grew = &p, true
				}
			}
			p := evs[len(evs)-1].Position
			after = &p
		}
		if grew {
			still = 0
			why = "facts still coming"
			continue
		}
		d, err := QueueDepths(ctx, c.vhost)
		if err != nil {
			why, still = err.Error(), 0
			continue
		}
		if n := d[LedgerQueue][0]; n != 0 {
			why, still = fmt.Sprintf("%d messages in %s", n, LedgerQueue), 0
			continue
		}
		cp, err := sharedCheckpoint(ctx, log, projections.CheckpointStream(projections.LifecycleName))
		if err != nil {
			why, still = err.Error(), 0
			continue
		}
		if lastFact != nil && (cp == nil || cp.Less(*lastFact)) {
			why, still = fmt.Sprintf("lifecycle checkpoint %v behind the last fact %v", cp, *lastFact), 0
			continue
		}
		// The service's lag is the head's commit position less the read
		// model's checkpoint; the head may be a bookkeeping event after
		// the last fact, which the read model never follows.
		head, _, err := log.Head(ctx)
		if err != nil {
			why, still = err.Error(), 0
			continue
		}
		var allowed float64
		if lastFact != nil && lastFact.Less(head) {
			allowed = float64(head.Commit - lastFact.Commit)
		}
		lagging := ""
		for _, in := range c.Instances {
			if in.Alive() != nil {
				continue
			}
			m, err := in.Metrics(ctx)
			if lag, ok := m[lagRM]; err != nil || !ok || lag > allowed {
				lagging = fmt.Sprintf("%s: read model lag %v (at most %v) %v", in.Name, m[lagRM], allowed, err)
				break
			}
		}
		if lagging != "" {
			why, still = lagging, 0
			continue
		}
		if still++; still >= 3 {
			return nil
		}
		why = "settling"
	}
}

// sharedCheckpoint reads the position of the last event of a shared
// checkpoint stream (nil: absent or at the start).
func sharedCheckpoint(ctx context.Context, log domain.EventLog, stream string) (*domain.Position, error) {
	evs, err := log.ReadStream(ctx, stream, domain.EndOfStream, domain.Backwards, 1)
	if errors.Is(err, domain.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return lastCheckpoint(evs, stream)
}

// Stop stops the followers first, then the leader, so no term begins
// while the cluster shuts down. It returns the first unclean stop.
func (c *Cluster) Stop() error {
	var leaders, others []*Instance
	for _, in := range c.Instances {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, _ := leading(ctx, in)
		cancel()
		if ok {
			leaders = append(leaders, in)
		} else {
			others = append(others, in)
		}
	}
	var errs []error
	for _, in := range append(others, leaders...) {
		if err := in.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.Name, err))
		}
	}
	return errors.Join(errs...)
}

// DataDirs are the instances' data dirs.
func (c *Cluster) DataDirs() []string {
	out := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		out[i] = in.DataDir
	}
	return out
}

// UnexpectedExits lists every instance's exits nobody asked for.
func (c *Cluster) UnexpectedExits() []string {
	var out []string
	for _, in := range c.Instances {
		for _, e := range in.UnexpectedExits() {
			out = append(out, in.Name+": "+e)
		}
	}
	return out
}

// Report reads every instance's log and builds the leadership report,
// terms still open ending at end.
func (c *Cluster) Report(end time.Time, bound time.Duration) (HAReport, error) {
	events := map[string][]LeaderEvent{}
	for _, in := range c.Instances {
		evs, err := ParseLeadership(strings.NewReader(in.Logs()), in.Name)
		if err != nil {
			return HAReport{}, err
		}
		events[in.Name] = evs
	}
	return BuildHAReport(events, c.Faults(), end, bound), nil
}
