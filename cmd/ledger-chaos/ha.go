package main

// `ledger-chaos ha`: the high-availability run. Several `ledger serve`
// instances share one EventStoreDB (the esdbtest server) and one vhost;
// the broker's single-active-consumer lease picks the one that publishes.
// Under load the run kill -9s the leader and cuts its broker connection,
// then checks the books as the single-instance run does, plus: no two
// instances ever led at once (from their log lines) and every failover
// came within the bound.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

type haOptions struct {
	amqpURL     string
	orders      int
	duration    time.Duration
	instances   int
	kills       int
	cuts        int
	pause       time.Duration
	bound       time.Duration
	poisonEvery int
	seed        uint64
	ledgerBin   string
	esdbBin     string
	keep        bool
	verbose     bool
}

func parseHAOptions(args []string) (haOptions, error) {
	var o haOptions
	fs := flag.NewFlagSet("ledger-chaos ha", flag.ContinueOnError)
	fs.StringVar(&o.amqpURL, "amqp-url", testenv.BaseURL(), "broker; the run makes its own vhost with rabbitmqctl")
	fs.IntVar(&o.orders, "orders", 10_000, "orders to publish (default mix of scenarios, about 3.3 messages each)")
	fs.DurationVar(&o.duration, "duration", 120*time.Second, "how long the load lasts (orders are started evenly over it)")
	fs.IntVar(&o.instances, "instances", 3, "ledger serve instances on the shared store")
	fs.IntVar(&o.kills, "kills", 5, "kill -9 of the current leader during the load")
	fs.IntVar(&o.cuts, "cuts", 2, "cuts of the current leader's broker connection (rabbitmqctl close_connection) during the load")
	fs.DurationVar(&o.pause, "restart-pause", 3*time.Second, "how long a killed instance stays down before it is started again")
	fs.DurationVar(&o.bound, "failover-bound", harness.DefaultFailoverBound, "longest allowed time from a fault to another instance's \"leadership acquired\"")
	fs.IntVar(&o.poisonEvery, "poison-every", 0, "make every n-th order over-large: it must be parked (0: none)")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for the plan and the fault times (0: pick one and print it)")
	fs.StringVar(&o.ledgerBin, "ledger-bin", "", "ledger binary (default: go build ./cmd/ledger into a temp dir)")
	fs.StringVar(&o.esdbBin, "esdbtest-bin", "", "esdbtest binary (default: go build ./cmd/esdbtest into a temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the vhost, the data dirs and the service logs")
	fs.BoolVar(&o.verbose, "v", true, "progress on stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.orders < 1 || o.duration <= 0 || o.instances < 2 || o.kills < 0 || o.cuts < 0 || o.pause < 0 || o.bound <= 0 || o.poisonEvery < 0 {
		return o, errors.New("orders and duration must be positive, instances at least 2, kills, cuts, restart-pause and poison-every not negative, failover-bound positive")
	}
	if o.seed == 0 {
		o.seed = rand.Uint64() >> 16
	}
	return o, nil
}

func runHA(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseHAOptions(args)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(out, "ledger-chaos ha: %d instances, %d orders over %s, %d leader kill -9, %d leader connection cuts, seed %d\n",
		o.instances, o.orders, o.duration, o.kills, o.cuts, o.seed)
	work, err := os.MkdirTemp("", "ledger-chaos-ha-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "work dir (kept): %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin, esdbBin := o.ledgerBin, o.esdbBin
	if bin == "" {
		o.progress("building ledger")
		if bin, err = testenv.BuildLedger(ctx, work); err != nil {
			return err
		}
	}
	if esdbBin == "" {
		o.progress("building esdbtest")
		if esdbBin, err = buildESDBTest(ctx, work); err != nil {
			return err
		}
	}
	esdbURL, stopESDB, err := startESDBTest(ctx, esdbBin, filepath.Join(work, "esdbtest.log"))
	if err != nil {
		return err
	}
	defer stopESDB()

	vhost := testenv.VhostName("ledger-chaos-ha")
	url, err := testenv.CreateVhost(ctx, o.amqpURL, vhost, 0)
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "vhost (kept): %s\n", vhost)
	} else {
		defer func() { _ = testenv.DeleteVhost(context.Background(), vhost) }()
	}

	o.progress("starting %d instances on %s", o.instances, esdbURL)
	c, err := harness.StartCluster(ctx, harness.ClusterOptions{
		Binary: bin, AMQPURL: url, ESDBURL: esdbURL, Dir: work, Instances: o.instances,
	})
	if err != nil {
		return err
	}
	defer func() { _ = c.Stop() }()
	logs := filepath.Join(work, "i*.log")
	if _, err := c.WaitLeader(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("first leader: %w (logs: %s)", err, logs)
	}
	if err := harness.PrepareCapture(url); err != nil {
		return err
	}

	store, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: esdbURL}, nil)
	if err != nil {
		return err
	}
	defer store.Close()

	load, faults, err := haUnderLoad(ctx, o, url, c)
	if err != nil {
		return fmt.Errorf("under load: %w (logs: %s)", err, logs)
	}
	o.progress("load done: %d messages in %s; waiting for the cluster to go quiet", load.Messages, load.Elapsed.Round(time.Second))
	if err := c.WaitQuiet(ctx, store, 5*time.Minute); err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logs)
	}
	stopErr := c.Stop()
	end := time.Now()

	o.progress("verifying")
	rep, err := harness.VerifyShared(ctx, url, store, c.DataDirs(), load)
	if err != nil {
		return err
	}
	h, err := c.Report(end, o.bound)
	if err != nil {
		return err
	}
	exits := c.UnexpectedExits()
	if stopErr != nil {
		exits = append(exits, stopErr.Error())
	}
	return writeHAVerdict(out, load, faults, rep, h, exits, logs, start)
}

// haUnderLoad runs the load and, while it lasts, kills the leader and cuts
// its broker connection at random moments, one per slot.
func haUnderLoad(ctx context.Context, o haOptions, url string, c *harness.Cluster) (harness.Load, harness.Faults, error) {
	orders := traffic.Plan(o.seed, o.orders, nil)
	traffic.Poison(orders, o.poisonEvery)
	loader := &harness.Loader{URL: url, Orders: orders, Rate: float64(o.orders) / o.duration.Seconds(), Logf: o.progress}
	type loadResult struct {
		load harness.Load
		err  error
	}
	done := make(chan loadResult, 1)
	go func() {
		l, err := loader.Run(ctx)
		done <- loadResult{l, err}
	}()
	f, ferr := haFaults(ctx, o, c, loader)
	res := <-done
	return res.load, f, errors.Join(ferr, res.err)
}

func haFaults(ctx context.Context, o haOptions, c *harness.Cluster, loader *harness.Loader) (harness.Faults, error) {
	var f harness.Faults
	n := o.kills + o.cuts
	if n == 0 {
		return f, nil
	}
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0xa11))
	kinds := make([]string, n)
	for i := range kinds {
		kinds[i] = "kill"
	}
	for i := range o.cuts {
		kinds[(i+1)*n/(o.cuts+1)] = "cut"
	}
	slot := o.duration / time.Duration(n+1)
	times := make([]time.Duration, n)
	for i := range times {
		times[i] = slot/2 + time.Duration(i)*slot + time.Duration(rng.Int64N(int64(slot)))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	begin := time.Now()
	for i, kind := range kinds {
		if err := testenv.Sleep(ctx, time.Until(begin.Add(times[i]))); err != nil {
			return f, err
		}
		sent := loader.Sent()
		switch kind {
		case "kill":
			fault, d, err := c.KillLeader(ctx, o.pause, time.Minute)
			if err != nil {
				return f, fmt.Errorf("kill #%d: %w", f.Kills+1, err)
			}
			f.Kills++
			f.Recoveries = append(f.Recoveries, d)
			o.progress("kill -9 #%d of leader %s at %s (%d msgs sent); restarted after %s, ready after %s",
				f.Kills, fault.Instance, time.Since(begin).Round(time.Second), sent, o.pause, d.Round(100*time.Millisecond))
		case "cut":
			fault, err := c.CutLeader(ctx, time.Minute)
			if err != nil {
				return f, fmt.Errorf("cut #%d: %w", f.ConnectionKills+1, err)
			}
			f.ConnectionKills++
			o.progress("cut #%d of leader %s's broker connection at %s (%d msgs sent)",
				f.ConnectionKills, fault.Instance, time.Since(begin).Round(time.Second), sent)
		}
	}
	return f, nil
}

// writeHAVerdict prints the table and the failovers, and returns an error
// naming every check that failed.
func writeHAVerdict(out io.Writer, load harness.Load, f harness.Faults, rep harness.Report, h harness.HAReport, exits []string, logs string, start time.Time) error {
	fmt.Fprintln(out)
	if err := harness.WriteHATable(out, load, f, rep, h); err != nil {
		return err
	}
	for _, d := range h.Details() {
		fmt.Fprintln(out, "  "+d)
	}
	fmt.Fprintf(out, "total wall time %s\n", time.Since(start).Round(time.Second))
	fails := append(rep.Failures(), h.Failures()...)
	fails = append(fails, exits...)
	if len(fails) > 0 {
		for _, pr := range rep.Problems {
			fmt.Fprintln(out, "  detail:", pr)
		}
		return fmt.Errorf("FAILED: %s (service logs: %s; rerun with -keep to keep them)", strings.Join(fails, "; "), logs)
	}
	fmt.Fprintln(out, "PASS: no fact lost or duplicated, every outbound message delivered under its deterministic id, one publisher at a time, every failover within the bound")
	return nil
}

// buildESDBTest builds ./cmd/esdbtest into dir.
func buildESDBTest(ctx context.Context, dir string) (string, error) {
	root, err := testenv.ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "esdbtest")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/esdbtest")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/esdbtest: %w: %s", err, out)
	}
	return bin, nil
}

// startESDBTest runs the esdbtest server on a free port and returns its
// connection string (its first line on stdout) and how to stop it.
func startESDBTest(ctx context.Context, bin, logPath string) (string, func(), error) {
	addr, err := testenv.FreeAddr()
	if err != nil {
		return "", nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-addr", addr)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start esdbtest: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- strings.TrimSpace(sc.Text())
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case u, ok := <-line:
		if ok && strings.HasPrefix(u, "esdb://") {
			return u, stop, nil
		}
		stop()
		return "", nil, fmt.Errorf("esdbtest printed %q, not a connection string (log: %s)", u, logPath)
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, fmt.Errorf("esdbtest: no connection string within 30s (log: %s)", logPath)
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
}

func (o haOptions) progress(format string, a ...any) {
	if o.verbose {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
}
