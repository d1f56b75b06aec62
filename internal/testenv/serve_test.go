package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The process helper is tested against this test binary run as a stand-in
// for `ledger serve`, so these tests need neither a build nor a broker.

const fakeServeEnv = "TESTENV_FAKE_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeServeEnv) != "" {
		os.Exit(fakeServe())
	}
	os.Exit(m.Run())
}

// fakeServe answers /readyz on LEDGER_HTTP_ADDR, exits with the status
// GET /exit?code=n asks for, and exits 0 on SIGTERM (or ignores it, with
// FAKE_IGNORE_TERM). FAKE_EXIT_AT_ONCE=n exits with n before listening.
func fakeServe() int {
	if code := os.Getenv("FAKE_EXIT_AT_ONCE"); code != "" {
		fmt.Println(`{"level":"error","msg":"fake serve gives up"}`)
		n, _ := strconv.Atoi(code)
		return n
	}
	if os.Getenv("FAKE_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", os.Getenv("LEDGER_HTTP_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Printf(`{"level":"info","msg":"fake serve up","args":%q,"data":%q}`+"\n", strings.Join(os.Args[1:], " "), os.Getenv("LEDGER_DATA_DIR"))
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP x\nup_total 1\nlag{projection=\"a\"} 2.5\n")
	})
	mux.HandleFunc("/exit", func(_ http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(n)
	})
	go func() { _ = http.Serve(l, mux) }()
	<-ctx.Done()
	fmt.Println(`{"level":"info","msg":"fake serve stopped"}`)
	return 0
}

func fakeOptions(t *testing.T, env ...string) ServeOptions {
	self, err := os.Executable()
	require.NoError(t, err)
	return ServeOptions{Binary: self, DataDir: t.TempDir(), Env: append([]string{fakeServeEnv + "=1"}, env...)}
}

func TestServeStopRestartKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := fakeOptions(t)
	opts.Args = []string{"--flag"}
	s, err := StartServe(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Stop() })
	addr := s.Addr()
	assert.True(t, s.Ready(ctx))
	assert.NoError(t, s.Alive())
	assert.Positive(t, s.PID())
	m, err := s.Metrics(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"up_total": 1, `lag{projection="a"}`: 2.5}, m)
	st, err := s.ProcStatus()
	require.NoError(t, err)
	assert.Positive(t, st["VmRSS"])

	require.NoError(t, s.Stop(), "SIGTERM: a clean exit")
	assert.Error(t, s.Alive())
	require.NoError(t, s.Stop(), "stopping a stopped process is nothing")

	_, err = s.Restart(ctx)
	require.NoError(t, err)
	assert.Equal(t, addr, s.Addr(), "same port after a restart")
	require.Error(t, s.start(), "one process at a time")
	require.NoError(t, s.Kill())
	assert.Error(t, s.Alive())
	_, err = s.Restart(ctx)
	require.NoError(t, err)

	assert.Empty(t, s.UnexpectedExits(), "every exit was asked for")
	logs := s.Logs()
	assert.Equal(t, 3, strings.Count(logs, `"msg":"fake serve up","args":"serve --flag"`), logs)
	assert.Equal(t, 1, strings.Count(logs, "fake serve stopped"), "SIGKILL leaves no last words: %s", logs)
	assert.Contains(t, logs, opts.DataDir)
}

func TestServeExitBeforeReadyFailsAtOnce(t *testing.T) {
	t.Parallel()
	opts := fakeOptions(t, "FAKE_EXIT_AT_ONCE=2")
	opts.ReadyTimeout = 10 * time.Minute // the exit, not the timeout, ends the wait
	_, err := StartServe(context.Background(), opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited before it was ready: exit status 2")
	assert.Contains(t, err.Error(), "fake serve gives up", "the end of the log is in the error")
}

func TestServeExitOfItsOwnIsReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := fakeOptions(t)
	opts.LogPath = filepath.Join(t.TempDir(), "ledger.log")
	s, err := StartServe(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Stop() })

	resp, err := http.Get(s.URL() + "/exit?code=4")
	if err == nil {
		resp.Body.Close()
	}
	require.Eventually(t, func() bool { return s.Alive() != nil }, time.Minute, 10*time.Millisecond)
	assert.Contains(t, s.Alive().Error(), "exit status 4")
	require.Len(t, s.UnexpectedExits(), 1)
	assert.Contains(t, s.UnexpectedExits()[0], "exit status 4")

	// Back on the same log file, appended.
	_, err = s.Restart(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Stop())
	b, err := os.ReadFile(opts.LogPath)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(b), "fake serve up"))
	assert.Equal(t, string(b), s.Logs())
	assert.Contains(t, s.LogTail(1), "fake serve stopped")
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	opts := fakeOptions(t, "FAKE_IGNORE_TERM=1")
	opts.StopGrace = 200 * time.Millisecond
	s, err := StartServe(context.Background(), opts)
	require.NoError(t, err)
	err = s.Stop()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not stop within 200ms of SIGTERM; killed")
	assert.Error(t, s.Alive())
}

func TestVhostIsOneOfItsOwn(t *testing.T) {
	t.Parallel()
	u := Vhost(t)
	vhost, err := VhostOf(u)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(vhost, "ledger-test-"), vhost)
	_, ch := Dial(t, u)
	require.NoError(t, ch.ExchangeDeclare("x", "fanout", false, true, false, false, nil))
	d := Capture(t, ch, "x", "")
	require.NoError(t, ch.PublishWithContext(context.Background(), "x", "", false, false, amqp.Publishing{Body: []byte("hello")}))
	select {
	case m := <-d:
		assert.Contains(t, Describe(m), "hello")
	case <-time.After(time.Minute):
		t.Fatal("nothing captured")
	}
	out, err := Ctl(context.Background(), "list_exchanges", "-p", vhost, "name")
	require.NoError(t, err)
	assert.Contains(t, out, "x\n")
}
