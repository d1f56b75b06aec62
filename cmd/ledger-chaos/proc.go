package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
)

// ledgerProc is `ledger serve` run as a child process, restarted on the
// same data dir and vhost after each kill.
type ledgerProc struct {
	bin  string
	env  []string
	http string // host:port
	log  *os.File

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	expectExit bool
	unexpected []string // exits nobody asked for
}

func newLedgerProc(bin, amqpURL, dataDir string, log *os.File) (*ledgerProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	return &ledgerProc{bin: bin, http: addr, log: log, env: []string{
		"LEDGER_AMQP_URL=" + amqpURL,
		"LEDGER_DATA_DIR=" + dataDir,
		"LEDGER_HTTP_ADDR=" + addr,
		"LEDGER_LOG_FORMAT=json",
		"LEDGER_LOG_LEVEL=info",
	}}, nil
}

func (p *ledgerProc) base() string { return "http://" + p.http }

// start runs the binary and waits for /readyz; it returns how long that took.
func (p *ledgerProc) start(ctx context.Context) (time.Duration, error) {
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start ledger: %w", err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.expectExit = cmd, done, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if !p.expectExit {
			p.unexpected = append(p.unexpected, fmt.Sprintf("ledger exited by itself: %v", err))
		}
		p.mu.Unlock()
		close(done)
	}()
	return harness.WaitReady(ctx, p.base(), 90*time.Second)
}

func (p *ledgerProc) running() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *ledgerProc) kill9() error {
	cmd, done := p.running()
	if cmd == nil {
		return errors.New("ledger not running")
	}
	p.mu.Lock()
	p.expectExit = true
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill -9: %w", err)
	}
	<-done
	return nil
}

// stop asks the service to shut down (SIGINT), killing it after a grace
// period.
func (p *ledgerProc) stop() error {
	cmd, done := p.running()
	if cmd == nil {
		return nil
	}
	p.mu.Lock()
	p.expectExit = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
		if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
			return fmt.Errorf("ledger shut down with %s", cmd.ProcessState)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("ledger did not shut down within 30s; killed")
	}
}

func (p *ledgerProc) unexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}
