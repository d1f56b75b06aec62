// Command ledger-chaos is the long form of the ledger's proof under fire:
// it runs `ledger serve` under a steady BookWorm load in its own vhost,
// kill -9s it at random moments (restarting it on the same data dir) and
// stops and starts the whole broker (rabbitmqctl stop_app / start_app),
// then checks the books: every inbound message a fact exactly once, every
// outbound message delivered at least once under its deterministic id, the
// read model equal to a fresh replay. It ends with a table and exits
// non-zero when a must-be-zero column is not.
//
// It stops the shared broker's application: run it alone (make chaos).
//
// `ledger-chaos ha [flags]` is the high-availability run (make chaos-ha,
// ha.go): several instances on one shared store, the leader killed and
// cut off under load.
package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

type options struct {
	amqpURL        string
	orders         int
	duration       time.Duration
	kills          int
	brokerRestarts int
	brokerDown     time.Duration
	poisonEvery    int
	seed           uint64
	ledgerBin      string
	keep           bool
	verbose        bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledger-chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "ha" {
		return runHA(ctx, args[1:], out)
	}
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(out, "ledger-chaos: %d orders over %s, %d kill -9, %d broker restarts, poison every %d, seed %d\n",
		o.orders, o.duration, o.kills, o.brokerRestarts, o.poisonEvery, o.seed)

	work, err := os.MkdirTemp("", "ledger-chaos-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "work dir (kept): %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := o.ledgerBin
	if bin == "" {
		o.progress("building ledger")
		if bin, err = testenv.BuildLedger(ctx, work); err != nil {
			return err
		}
	}

	vhost := testenv.VhostName("ledger-chaos")
	url, err := testenv.CreateVhost(ctx, o.amqpURL, vhost, 0)
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "vhost (kept): %s\n", vhost)
	} else {
		defer func() { _ = testenv.DeleteVhost(context.Background(), vhost) }()
	}
	// Whatever happens, leave the broker running.
	defer ensureBroker(o)

	// The service is restarted on the same data dir, vhost, port and log
	// after each kill.
	dataDir := filepath.Join(work, "data")
	logPath := filepath.Join(work, "ledger.log")
	p, err := testenv.StartServe(ctx, testenv.ServeOptions{
		Binary: bin, AMQPURL: url, DataDir: dataDir, LogPath: logPath,
		Env:          []string{"LEDGER_LOG_LEVEL=info"},
		ReadyTimeout: 90 * time.Second,
	})
	if err != nil {
		return err
	}
	defer func() { _ = p.Stop() }()
	if err := harness.PrepareCapture(url); err != nil {
		return err
	}

	load, faults, err := underLoad(ctx, o, url, p)
	if err != nil {
		return fmt.Errorf("under load: %w (service log: %s)", err, logPath)
	}
	o.progress("load done: %d messages in %s; waiting for the ledger to go quiet", load.Messages, load.Elapsed.Round(time.Second))
	if err := harness.WaitQuiet(ctx, url, p.URL(), 5*time.Minute); err != nil {
		return err
	}
	if err := p.Stop(); err != nil {
		return err
	}

	// The operator's own check first: `ledger replay --dry-run` on the files.
	dry, dryErr := dryRun(ctx, bin, url, dataDir)
	o.progress("verifying")
	rep, err := harness.Verify(ctx, url, dataDir, load)
	if err != nil {
		return err
	}
	return writeVerdict(out, outcome{
		load: load, faults: faults, rep: rep, dry: dry, dryErr: dryErr,
		exits: p.UnexpectedExits(), logPath: logPath, start: start,
	})
}

// parseOptions reads the flags, checks them and picks a seed if none was
// given.
func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("ledger-chaos", flag.ContinueOnError)
	fs.StringVar(&o.amqpURL, "amqp-url", testenv.BaseURL(), "broker; the run makes its own vhost with rabbitmqctl")
	fs.IntVar(&o.orders, "orders", 30_000, "orders to publish (default mix of scenarios, about 3.3 messages each)")
	fs.DurationVar(&o.duration, "duration", 150*time.Second, "how long the load lasts (orders are started evenly over it)")
	fs.IntVar(&o.kills, "kills", 12, "kill -9 of the service during the load")
	fs.IntVar(&o.brokerRestarts, "broker-restarts", 2, "rabbitmqctl stop_app / start_app of the whole broker during the load")
	fs.DurationVar(&o.brokerDown, "broker-down", 5*time.Second, "how long the broker stays stopped each time")
	fs.IntVar(&o.poisonEvery, "poison-every", 0, "make every n-th order over-large (30,000,000.00 USD, beyond AccelByte's int32 price): it must be parked, every other order must complete (0: none)")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for the plan and the fault times (0: pick one and print it)")
	fs.StringVar(&o.ledgerBin, "ledger-bin", "", "ledger binary (default: go build ./cmd/ledger into a temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the vhost, the data dir and the service log")
	fs.BoolVar(&o.verbose, "v", true, "progress on stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.orders < 1 || o.duration <= 0 || o.kills < 0 || o.brokerRestarts < 0 || o.poisonEvery < 0 {
		return o, errors.New("orders must be positive, duration positive, kills, broker-restarts and poison-every not negative")
	}
	if o.seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		o.seed = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40
	}
	return o, nil
}

// underLoad runs the load against the service and injects the faults
// while it lasts.
func underLoad(ctx context.Context, o options, url string, p *testenv.Serve) (harness.Load, harness.Faults, error) {
	orders := traffic.Plan(o.seed, o.orders, nil)
	traffic.Poison(orders, o.poisonEvery)
	loader := &harness.Loader{
		URL:    url,
		Orders: orders,
		Rate:   float64(o.orders) / o.duration.Seconds(),
		Logf:   o.progress,
	}
	type loadResult struct {
		load harness.Load
		err  error
	}
	loadDone := make(chan loadResult, 1)
	go func() {
		l, err := loader.Run(ctx)
		loadDone <- loadResult{l, err}
	}()

	faults, faultErr := injectFaults(ctx, o, p, loader)
	res := <-loadDone
	return res.load, faults, errors.Join(faultErr, res.err)
}

// outcome is what a run found, for its closing report.
type outcome struct {
	load    harness.Load
	faults  harness.Faults
	rep     harness.Report
	dry     string // the first line `ledger replay --dry-run` printed
	dryErr  error
	exits   []string // the service's exits neither Stop nor Kill asked for
	logPath string
	start   time.Time
}

// writeVerdict prints the table and the figures under it, and returns an
// error naming every check that failed.
func writeVerdict(out io.Writer, v outcome) error {
	fmt.Fprintln(out)
	if err := harness.WriteTable(out, v.load, v.faults, v.rep); err != nil {
		return err
	}
	fmt.Fprintf(out, "ledger replay --dry-run: %s\n", v.dry)
	recs := make([]string, len(v.faults.Recoveries))
	for i, d := range v.faults.Recoveries {
		recs[i] = d.Round(100 * time.Millisecond).String()
	}
	fmt.Fprintf(out, "recoveries to readyz 200: %s\n", strings.Join(recs, " "))
	fmt.Fprintf(out, "total wall time %s\n", time.Since(v.start).Round(time.Second))

	fails := v.rep.Failures()
	if v.dryErr != nil {
		fails = append(fails, v.dryErr.Error())
	}
	fails = append(fails, v.exits...)
	if len(fails) > 0 {
		for _, pr := range v.rep.Problems {
			fmt.Fprintln(out, "  detail:", pr)
		}
		return fmt.Errorf("FAILED: %s (service log: %s; rerun with -keep to keep it)", strings.Join(fails, "; "), v.logPath)
	}
	fmt.Fprintln(out, "PASS: no fact lost or duplicated, every outbound message delivered under its deterministic id")
	return nil
}

// injectFaults kills the service and restarts the broker at random moments
// while the load runs.
func injectFaults(ctx context.Context, o options, p *testenv.Serve, loader *harness.Loader) (harness.Faults, error) {
	var f harness.Faults
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x5eed))
	n := o.kills + o.brokerRestarts
	if n == 0 {
		return f, nil
	}
	// One fault per slot, at a random moment within it; broker restarts
	// take evenly spread slots.
	slot := o.duration / time.Duration(n+1)
	kinds := make([]string, n)
	for i := range kinds {
		kinds[i] = "kill"
	}
	for i := 0; i < o.brokerRestarts; i++ {
		kinds[(i+1)*n/(o.brokerRestarts+1)] = "broker"
	}
	begin := time.Now()
	times := make([]time.Duration, n)
	for i := range times {
		times[i] = slot/2 + time.Duration(i)*slot + time.Duration(rng.Int64N(int64(slot)))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for i, kind := range kinds {
		if wait := time.Until(begin.Add(times[i])); wait > 0 {
			select {
			case <-ctx.Done():
				return f, ctx.Err()
			case <-time.After(wait):
			}
		}
		if p.Alive() != nil { // it died by itself: counted by UnexpectedExits; bring it back
			if _, err := p.Restart(ctx); err != nil {
				return f, err
			}
		}
		sent := loader.Sent()
		switch kind {
		case "kill":
			if err := p.Kill(); err != nil {
				return f, err
			}
			f.Kills++
			d, err := p.Restart(ctx)
			if err != nil {
				return f, fmt.Errorf("restart after kill %d: %w", f.Kills, err)
			}
			f.Recoveries = append(f.Recoveries, d)
			o.progress("kill -9 #%d at %s (%d msgs sent); ready again after %s", f.Kills, time.Since(begin).Round(time.Second), sent, d.Round(100*time.Millisecond))
		case "broker":
			t0 := time.Now()
			if _, err := testenv.Ctl(ctx, "stop_app"); err != nil {
				return f, err
			}
			f.BrokerRestarts++
			o.progress("broker stop_app #%d at %s (%d msgs sent)", f.BrokerRestarts, time.Since(begin).Round(time.Second), sent)
			time.Sleep(o.brokerDown)
			if _, err := testenv.Ctl(ctx, "start_app"); err != nil {
				return f, err
			}
			// The service must come back by itself: no restart here.
			if _, err := p.WaitReady(ctx, 2*time.Minute); err != nil {
				return f, fmt.Errorf("after broker restart %d: %w", f.BrokerRestarts, err)
			}
			d := time.Since(t0)
			f.Recoveries = append(f.Recoveries, d)
			o.progress("broker back; ledger ready again %s after stop_app", d.Round(100*time.Millisecond))
		}
	}
	return f, nil
}

var dryRunRE = regexp.MustCompile(`dry run: (\d+) facts, (\d+) orders .*; (\d+) changed`)

// dryRun runs `ledger replay --dry-run` on the stopped service's files.
func dryRun(ctx context.Context, bin, amqpURL, dataDir string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "replay", "--dry-run")
	cmd.Env = append(os.Environ(), "LEDGER_AMQP_URL="+amqpURL, "LEDGER_DATA_DIR="+dataDir, "LEDGER_LOG_FORMAT=json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ledger replay --dry-run: %w: %s", err, stderr.String())
	}
	line := strings.TrimSpace(strings.SplitN(stdout.String(), "\n", 2)[0])
	m := dryRunRE.FindStringSubmatch(line)
	if m == nil {
		return line, fmt.Errorf("ledger replay --dry-run: unexpected output %q", line)
	}
	if m[3] != "0" {
		return line, fmt.Errorf("ledger replay --dry-run: %s orders changed", m[3])
	}
	return line, nil
}

// ensureBroker starts the broker's application again if a fault left it
// stopped, and the whole broker if it is gone.
func ensureBroker(o options) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := testenv.Ctl(ctx, "start_app"); err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "ledger-chaos: broker not answering; starting rabbitmq-server -detached")
	_ = exec.CommandContext(ctx, "rabbitmq-server", "-detached").Run()
	for ctx.Err() == nil {
		if _, err := testenv.Ctl(ctx, "await_startup"); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}

func (o options) progress(format string, a ...any) {
	if o.verbose {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
}
