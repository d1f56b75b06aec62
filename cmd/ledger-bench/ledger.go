package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ledgerProc is a `ledger serve` child process.
type ledgerProc struct {
	cmd     *exec.Cmd
	http    string
	logPath string
	done    chan error
}

// moduleRoot is the directory of the ledger's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run ledger-bench inside the ledger module")
	}
	return filepath.Dir(mod), nil
}

// buildLedger builds the real binary, as shipped (no race detector).
func buildLedger(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ledger")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ledger")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ledger: %w: %s", err, out)
	}
	return bin, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startLedger runs `ledger serve` on amqpURL with its own data dir and
// waits until /readyz answers 200.
func startLedger(ctx context.Context, bin, amqpURL, dir string, extraEnv []string) (*ledgerProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "ledger.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"LEDGER_AMQP_URL="+amqpURL,
		"LEDGER_DATA_DIR="+filepath.Join(dir, "data"),
		"LEDGER_HTTP_ADDR="+addr,
		"LEDGER_LOG_FORMAT=json",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start ledger: %w", err)
	}
	p := &ledgerProc{cmd: cmd, http: addr, logPath: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("ledger exited while starting: %v\n%s", err, p.logTail(20))
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("ledger not ready within 60s\n%s", p.logTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *ledgerProc) pid() int { return p.cmd.Process.Pid }

// alive reports an early exit.
func (p *ledgerProc) alive() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("ledger exited: %v\n%s", err, p.logTail(20))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 20s).
func (p *ledgerProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("ledger did not stop within 20s of SIGTERM")
	}
}

func (p *ledgerProc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countLogLevels counts warn and error lines in the ledger's JSON log.
func (p *ledgerProc) countLogLevels() (warn, errs int) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, `"level":"warn"`):
			warn++
		case strings.Contains(l, `"level":"error"`):
			errs++
		}
	}
	return warn, errs
}

// metric sums every sample of a Prometheus counter or gauge family.
func (p *ledgerProc) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != ' ' && l[len(name)] != '{' && !strings.HasSuffix(name, "}")) {
			continue
		}
		fs := strings.Fields(l)
		if v, err := strconv.ParseFloat(fs[len(fs)-1], 64); err == nil {
			sum += v
		}
	}
	return sum, nil
}

// metricLabel reads the sample of a family whose only label value is value.
func (p *ledgerProc) metricLabel(ctx context.Context, name, value string) (float64, error) {
	return p.metric(ctx, name+`{projection="`+value+`"}`)
}

// histogram is a Prometheus histogram: cumulative bucket counts by upper
// bound, sum and count.
type histogram struct {
	le         []float64
	cum        []float64
	sum, count float64
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{le: h.le, cum: make([]float64, len(h.cum)), sum: h.sum - o.sum, count: h.count - o.count}
	for i := range h.cum {
		out.cum[i] = h.cum[i]
		if i < len(o.cum) {
			out.cum[i] -= o.cum[i]
		}
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) time.Duration {
	for i, c := range h.cum {
		if c >= q*h.count {
			if math.IsInf(h.le[i], 1) {
				break
			}
			return time.Duration(h.le[i] * 1e9)
		}
	}
	return -1
}

func (p *ledgerProc) histogram(ctx context.Context, name string) (histogram, error) {
	var h histogram
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+"/metrics", nil)
	if err != nil {
		return h, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return h, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(fs[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(fs[0], name+`_bucket{le="`):
			bound := strings.TrimSuffix(strings.TrimPrefix(fs[0], name+`_bucket{le="`), `"}`)
			le, err := strconv.ParseFloat(bound, 64)
			if err != nil {
				continue
			}
			h.le, h.cum = append(h.le, le), append(h.cum, v)
		case fs[0] == name+"_sum":
			h.sum = v
		case fs[0] == name+"_count":
			h.count = v
		}
	}
	return h, nil
}
