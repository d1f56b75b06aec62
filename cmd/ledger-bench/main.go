// Command ledger-bench measures the ledger against baselines taken in the
// same run: the broker's own ceiling on this machine against the ledger end
// to end (throughput, latency at half of it, peak RSS), and a replay of the
// embedded store against the floor of reading and decoding every fact.
//
//	ledger-bench            all three parts (what `make bench` runs)
//	ledger-bench broker     the broker ceiling only
//	ledger-bench e2e        the ceiling, then the ledger end to end
//	ledger-bench replay     replay against its floor (-facts for quick runs)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// options are the flags of every part.
type options struct {
	amqpURL string // base broker URL; each part works in its own vhost

	ceilingDur     time.Duration
	ceilingWindow  int
	ceilingClassic bool

	e2eWarmup  time.Duration
	e2eDur     time.Duration
	latencyDur time.Duration
	window     int // inbound facts in flight (published, command not yet seen)
	ledgerBin  string
	latencyCSV string
	jsonPath   string   // write the report's figures here as JSON
	ledgerEnv  []string // extra KEY=VALUE for the service (GOMEMLIMIT, GODEBUG, LEDGER_...)

	facts     int
	appenders int
	fixture   string // replay: reuse this store (built when missing)
	keep      bool
	scanFold  bool
	// profileDir: the replay children write CPU profiles there.
	profileDir string

	verbose bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledger-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	part := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		part, args = args[0], args[1:]
	}
	if part == childCommand {
		return runChild(ctx, args, out)
	}
	var o options
	fs := flag.NewFlagSet("ledger-bench "+part, flag.ContinueOnError)
	fs.StringVar(&o.amqpURL, "amqp-url", testenv.BaseURL(), "broker (each part gets its own vhost, made with rabbitmqctl)")
	fs.DurationVar(&o.ceilingDur, "ceiling-duration", 15*time.Second, "how long each broker ceiling run measures")
	fs.IntVar(&o.ceilingWindow, "ceiling-window", 256, "broker ceiling: publishes in flight awaiting confirms")
	fs.BoolVar(&o.ceilingClassic, "classic", true, "also measure the ceiling through a classic queue")
	fs.DurationVar(&o.e2eWarmup, "warmup", 5*time.Second, "ledger: load before the throughput window")
	fs.DurationVar(&o.e2eDur, "e2e-duration", 20*time.Second, "ledger: throughput window")
	fs.DurationVar(&o.latencyDur, "latency-duration", 20*time.Second, "ledger: latency run at half the maximum rate")
	fs.IntVar(&o.window, "window", 3072, "ledger: inbound facts in flight (published, command not yet received)")
	fs.StringVar(&o.ledgerBin, "ledger-bin", "", "ledger binary to run (default: go build ./cmd/ledger into a temp dir)")
	fs.Func("ledger-env", "ledger: extra KEY=VALUE in the service's environment (repeatable), e.g. GODEBUG=gctrace=1", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.ledgerEnv = append(o.ledgerEnv, v)
		return nil
	})
	fs.StringVar(&o.latencyCSV, "latency-csv", "", "ledger: write every latency sample to this CSV file")
	fs.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file (to compare runs)")
	fs.IntVar(&o.facts, "facts", 1_000_000, "replay: facts in the store (3 per order)")
	fs.IntVar(&o.appenders, "appenders", 64, "replay: concurrent appenders building the store")
	fs.StringVar(&o.fixture, "fixture", "", "replay: store file to reuse (built there when missing)")
	fs.StringVar(&o.profileDir, "profile", "", "replay: write each child's CPU profile into this directory")
	fs.BoolVar(&o.scanFold, "scan-fold", false, "replay: also time the alternative design (one log scan, every order's state in memory)")
	fs.BoolVar(&o.keep, "keep", false, "keep temp dirs (store, logs) for inspection")
	fs.BoolVar(&o.verbose, "v", false, "progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.validate(); err != nil {
		return err
	}

	switch part {
	case "all", "broker", "e2e", "replay":
	default:
		return fmt.Errorf("unknown part %q: use broker, e2e or replay (or nothing for all)", part)
	}
	r := &report{out: out}
	start := time.Now()
	info := runInfo{Part: part, Started: start.UTC(), CPUs: numCPU(), Go: goVersion(), LoadStart: loadAvg()}
	fmt.Fprintf(out, "ledger-bench %s: %s, %d CPUs, %s, load average %s\n", part, time.Now().Format(time.RFC3339), numCPU(), goVersion(), loadAvg())
	var err error
	switch part {
	case "all":
		err = errors.Join(benchBrokerAndLedger(ctx, o, r, true), ctx.Err())
		if ctx.Err() == nil {
			err = errors.Join(err, benchReplay(ctx, o, r))
		}
	case "broker":
		err = benchBrokerAndLedger(ctx, o, r, false)
	case "e2e":
		err = benchBrokerAndLedger(ctx, o, r, true)
	case "replay":
		err = benchReplay(ctx, o, r)
	default:
		return fmt.Errorf("unknown part %q: use broker, e2e or replay (or nothing for all)", part)
	}
	r.print()
	if o.jsonPath != "" {
		info.Wall, info.LoadEnd = time.Since(start).Seconds(), loadAvg()
		if err != nil {
			info.Error = err.Error()
		}
		err = errors.Join(err, r.writeJSON(o.jsonPath, info))
	}
	fmt.Fprintf(out, "\ntotal wall time %s; load average at the end %s (other work on this machine skews every figure)\n", time.Since(start).Round(time.Second), loadAvg())
	return err
}

func (o options) validate() error {
	var errs []error
	if o.ceilingDur <= 0 || o.e2eDur <= 0 || o.latencyDur <= 0 || o.e2eWarmup < 0 {
		errs = append(errs, errors.New("durations must be positive"))
	}
	if o.ceilingWindow < 1 || o.window < 3 {
		errs = append(errs, errors.New("windows: ceiling-window at least 1, window at least 3"))
	}
	if o.facts < 3 {
		errs = append(errs, errors.New("facts: at least 3"))
	}
	if o.appenders < 1 {
		errs = append(errs, errors.New("appenders: at least 1"))
	}
	return errors.Join(errs...)
}

// progress writes a line on stderr with -v.
func (o options) progress(format string, a ...any) {
	if o.verbose {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
}
