package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var builds struct {
	sync.Mutex
	bin map[string]string // build flags -> binary
}

// BuildLedger builds this module's ./cmd/ledger into dir with the given
// go build flags (for example -race) and returns the binary's path. It
// builds once per process and set of flags: later calls return the first
// binary while it exists.
func BuildLedger(ctx context.Context, dir string, flags ...string) (string, error) {
	key := strings.Join(flags, " ")
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bin[key]; ok {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ledger")
	args := append(append([]string{"build"}, flags...), "-o", bin, "./cmd/ledger")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, out)
	}
	if builds.bin == nil {
		builds.bin = map[string]string{}
	}
	builds.bin[key] = bin
	return bin, nil
}

// ModuleRoot is the directory of the go.mod governing the working
// directory: run the binaries and tests inside the ledger module.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the ledger module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// FreeAddr is a loopback host:port nobody listened on a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ServeOptions say how to run `ledger serve`.
type ServeOptions struct {
	Binary   string   // the ledger binary (BuildLedger)
	AMQPURL  string   // LEDGER_AMQP_URL
	DataDir  string   // LEDGER_DATA_DIR
	HTTPAddr string   // LEDGER_HTTP_ADDR; a free loopback port when empty
	Env      []string // KEY=VALUE on top of the above and LEDGER_LOG_FORMAT=json; later entries win
	Args     []string // after "serve"
	// LogPath receives stdout and stderr, appended across restarts; when
	// empty they are kept in memory.
	LogPath string
	// ReadyTimeout bounds the readiness waits of StartServe and Restart;
	// default 60s.
	ReadyTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL;
	// default 30s.
	StopGrace time.Duration
}

// Serve is `ledger serve` run as a child process: started, stopped or
// killed, and started again on the same options (data dir, port, log).
type Serve struct {
	opts ServeOptions
	mem  *syncBuffer // the log when opts.LogPath is empty

	mu         sync.Mutex
	run        *run
	unexpected []string
}

// run is one process of a Serve.
type run struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process is reaped
	err      error         // cmd.Wait's, valid after done
	expected bool          // a Stop or Kill asked for the exit
}

// Spawn starts `ledger serve` and returns without waiting for it to be
// ready.
func Spawn(opts ServeOptions) (*Serve, error) {
	if opts.Binary == "" {
		return nil, errors.New("testenv: ServeOptions.Binary is empty")
	}
	if opts.HTTPAddr == "" {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		opts.HTTPAddr = a
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 30 * time.Second
	}
	s := &Serve{opts: opts}
	if opts.LogPath == "" {
		s.mem = &syncBuffer{}
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// StartServe starts `ledger serve` and waits until it is ready (see
// WaitReady); if it does not get there the process is stopped.
func StartServe(ctx context.Context, opts ServeOptions) (*Serve, error) {
	s, err := Spawn(opts)
	if err != nil {
		return nil, err
	}
	if _, err := s.WaitReady(ctx, s.opts.ReadyTimeout); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// Restart starts the process again on the same options, after Stop or
// Kill or an exit of its own, and waits until it is ready; it returns how
// long readiness took.
func (s *Serve) Restart(ctx context.Context) (time.Duration, error) {
	if err := s.start(); err != nil {
		return 0, err
	}
	return s.WaitReady(ctx, s.opts.ReadyTimeout)
}

func (s *Serve) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil && !closed(s.run.done) {
		return errors.New("testenv: ledger serve is already running")
	}
	cmd := exec.Command(s.opts.Binary, append([]string{"serve"}, s.opts.Args...)...)
	cmd.Env = append(os.Environ(),
		"LEDGER_AMQP_URL="+s.opts.AMQPURL,
		"LEDGER_DATA_DIR="+s.opts.DataDir,
		"LEDGER_HTTP_ADDR="+s.opts.HTTPAddr,
		"LEDGER_LOG_FORMAT=json",
	)
	cmd.Env = append(cmd.Env, s.opts.Env...)
	var logf *os.File
	if s.mem != nil {
		cmd.Stdout, cmd.Stderr = s.mem, s.mem
	} else {
		f, err := os.OpenFile(s.opts.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open ledger log: %w", err)
		}
		logf = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return fmt.Errorf("start ledger serve: %w", err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	s.run = r
	go func() {
		err := cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		s.mu.Lock()
		r.err = err
		if !r.expected {
			s.unexpected = append(s.unexpected, fmt.Sprintf("ledger serve exited by itself: %v", exitText(err)))
		}
		s.mu.Unlock()
		close(r.done)
	}()
	return nil
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// current is the latest process; expect marks its coming exit as asked for.
func (s *Serve) current(expect bool) *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil && expect {
		s.run.expected = true
	}
	return s.run
}

// WaitReady polls /readyz until it answers 200 and returns how long that
// took. It fails at once if the process exits, and after timeout or when
// ctx ends, with the end of the log.
func (s *Serve) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	r := s.current(false)
	if r == nil {
		return 0, errors.New("testenv: ledger serve was never started")
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok := Ready(rctx, s.URL())
		cancel()
		if ok {
			return time.Since(start), nil
		}
		select {
		case <-r.done:
			return time.Since(start), fmt.Errorf("ledger serve exited before it was ready: %v\n%s", exitText(r.err), s.LogTail(30))
		case <-deadline.C:
			return time.Since(start), fmt.Errorf("ledger serve: %s/readyz not 200 after %s\n%s", s.URL(), timeout, s.LogTail(30))
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("ledger serve not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Ready reports whether /readyz answers 200 now.
func (s *Serve) Ready(ctx context.Context) bool { return Ready(ctx, s.URL()) }

// Stop sends SIGTERM and waits for the process to exit, killing it after
// StopGrace. It returns nil for a clean exit (status 0) and when nothing
// runs.
func (s *Serve) Stop() error {
	r := s.current(true)
	if r == nil || closed(r.done) {
		return nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(s.opts.StopGrace)
	defer t.Stop()
	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("ledger serve shut down with %w", r.err)
		}
		return nil
	case <-t.C:
		_ = r.cmd.Process.Kill()
		<-r.done
		return fmt.Errorf("ledger serve did not stop within %s of SIGTERM; killed\n%s", s.opts.StopGrace, s.LogTail(30))
	}
}

// Kill sends SIGKILL, as a crash would, and waits until the process is
// reaped.
func (s *Serve) Kill() error {
	r := s.current(true)
	if r == nil {
		return errors.New("testenv: ledger serve was never started")
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill -9 ledger serve: %w", err)
	}
	<-r.done
	return nil
}

// Alive returns nil while the process runs and otherwise how it ended.
func (s *Serve) Alive() error {
	r := s.current(false)
	if r == nil {
		return errors.New("ledger serve was never started")
	}
	select {
	case <-r.done:
		return fmt.Errorf("ledger serve exited: %v\n%s", exitText(r.err), s.LogTail(20))
	default:
		return nil
	}
}

// UnexpectedExits lists the exits neither Stop nor Kill asked for.
func (s *Serve) UnexpectedExits() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unexpected)
}

// PID is the current process's id.
func (s *Serve) PID() int {
	r := s.current(false)
	if r == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Addr is the HTTP host:port.
func (s *Serve) Addr() string { return s.opts.HTTPAddr }

// URL is the HTTP base URL.
func (s *Serve) URL() string { return "http://" + s.opts.HTTPAddr }

// Metrics scrapes /metrics (see Metrics).
func (s *Serve) Metrics(ctx context.Context) (map[string]float64, error) {
	return Metrics(ctx, s.URL())
}

// Logs is everything the process (every run of it) wrote so far.
func (s *Serve) Logs() string {
	if s.mem != nil {
		return s.mem.String()
	}
	b, err := os.ReadFile(s.opts.LogPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// LogTail is the last n lines of Logs.
func (s *Serve) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.Logs(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ProcStatus reads the current process's memory figures in kB from
// /proc/<pid>/status: VmHWM, VmRSS, RssAnon, RssFile (Linux).
func (s *Serve) ProcStatus() (map[string]int64, error) { return ProcStatus(s.PID()) }

// ProcStatus reads the fields given in kB from /proc/<pid>/status (Linux).
func ProcStatus(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 2 && fs[1] == "kB" {
			if n, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out, sc.Err()
}

// syncBuffer is an in-memory log both of a process's pipes write into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

var _ io.Writer = (*syncBuffer)(nil)

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
