package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/specs/storespec"
)

// MustOpen opens a log in a fresh temporary file, fsync on.
func MustOpen(tb testing.TB, cfg bolt.Config) (*bolt.Log, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "events.db")
	l, err := bolt.Open(path, cfg, zaptest.NewLogger(tb))
	require.NoError(tb, err)
	return l, path
}

func TestContract(t *testing.T) {
	storespec.Run(t, func(t *testing.T) domain.EventLog {
		l, _ := MustOpen(t, bolt.Config{})
		return l
	})
}

// A group commit window makes batches large and mixes outcomes within one
// transaction; the contract must hold all the same.
func TestContractGroupCommitWindow(t *testing.T) {
	storespec.Run(t, func(t *testing.T) domain.EventLog {
		l, _ := MustOpen(t, bolt.Config{GroupCommitWindow: 2 * time.Millisecond, MaxBatch: 8})
		return l
	})
}

// Without any wait, batches hold only what queued during the last commit.
func TestContractNoGroupWait(t *testing.T) {
	storespec.Run(t, func(t *testing.T) domain.EventLog {
		l, _ := MustOpen(t, bolt.Config{GroupCommitWindow: -1})
		return l
	})
}

func event(n int) domain.EventData {
	return domain.EventData{
		ID:       uuid.NewString(),
		Type:     "Test",
		Data:     []byte(fmt.Sprintf(`{"n":%d}`, n)),
		Metadata: []byte(`{"$correlationId":"x"}`),
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, bolt.Config{}.Validate())
	err := bolt.Config{GroupCommitWindow: 2 * time.Second, MaxBatch: -1, FileMode: os.ModeDir | 0o600, OpenTimeout: -1, InitialMmapSize: -1}.Validate()
	require.Error(t, err)
	for _, want := range []string{"group commit window", "max batch", "file mode", "open timeout", "mmap"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = bolt.Open(filepath.Join(t.TempDir(), "x.db"), bolt.Config{MaxBatch: -1}, nil)
	require.Error(t, err)
}

func TestOpenLocked(t *testing.T) {
	l, path := MustOpen(t, bolt.Config{})
	t.Cleanup(func() { _ = l.Close() })
	_, err := bolt.Open(path, bolt.Config{OpenTimeout: 50 * time.Millisecond}, nil)
	require.ErrorIs(t, err, bolt.ErrLocked)
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	l, err := bolt.Open(path, bolt.Config{FileMode: 0o640}, nil)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm()&0o640)
	assert.Zero(t, fi.Mode().Perm()&0o007, "no access for others")
}

// Everything, the id index included, survives a restart.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	l, path := MustOpen(t, bolt.Config{})
	first := []domain.EventData{event(0), event(1)}
	res, err := l.Append(ctx, "order-1", domain.NoStream, first...)
	require.NoError(t, err)
	_, err = l.Append(ctx, "order-2", domain.NoStream, event(2))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Close(), domain.ErrClosed)

	l, err = bolt.Open(path, bolt.Config{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	h, ok, err := l.Head(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, domain.Position{Commit: 3, Prepare: 3}, h)

	dup, err := l.Append(ctx, "order-1", domain.Exact(7), first...)
	require.NoError(t, err)
	assert.True(t, dup.Duplicate)
	assert.Equal(t, res, domain.AppendResult{NextRevision: dup.NextRevision, Position: dup.Position})

	next, err := l.Append(ctx, "order-1", domain.Exact(1), event(3))
	require.NoError(t, err)
	assert.Equal(t, uint64(2), next.NextRevision)
	assert.Equal(t, domain.Position{Commit: 4, Prepare: 4}, next.Position, "positions continue after a restart")
	got, err := l.ReadStream(ctx, "order-1", 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, first[1].ID, got[1].ID)
}

func TestStreamNames(t *testing.T) {
	l, _ := MustOpen(t, bolt.Config{})
	ctx := context.Background()
	_, err := l.Append(ctx, "a\x00b", domain.Any, event(0))
	require.ErrorIs(t, err, domain.ErrInvalidEvent)
	_, err = l.Append(ctx, strings.Repeat("x", 2000), domain.Any, event(0))
	require.ErrorIs(t, err, domain.ErrInvalidEvent)
	e := event(0)
	_, err = l.Append(ctx, "a", domain.Any, e, e)
	require.ErrorIs(t, err, domain.ErrInvalidEvent, "one id twice in one append")
	_, err = l.Append(ctx, "a", domain.Any)
	require.ErrorIs(t, err, domain.ErrInvalidEvent, "no events")
	// Names that are prefixes of each other keep separate indexes.
	_, err = l.Append(ctx, "a", domain.NoStream, event(1))
	require.NoError(t, err)
	_, err = l.Append(ctx, "ab", domain.NoStream, event(2), event(3))
	require.NoError(t, err)
	got, err := l.ReadStream(ctx, "a", domain.EndOfStream, domain.Backwards, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "a", got[0].Stream)
}

func TestGroupCommitShares(t *testing.T) {
	l, _ := MustOpen(t, bolt.Config{})
	ctx := context.Background()
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				exp := domain.NoStream
				if j > 0 {
					exp = domain.Exact(uint64(j - 1))
				}
				if _, err := l.Append(ctx, fmt.Sprintf("g-%d", i), exp, event(j)); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	st := l.Stats()
	assert.Equal(t, uint64(n*20), st.Appends)
	assert.Equal(t, uint64(n*20), st.Events)
	assert.Less(t, st.Commits, st.Appends, "concurrent appends share commits")
	t.Logf("%d appends in %d commits", st.Appends, st.Commits)
}

// --- crash test ---

const crashEnv = "LEDGER_BOLT_CRASH_CHILD"

// TestCrashChild is the child process of TestCrashRecovery: it appends
// under load and prints every acknowledged event until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	l, err := bolt.Open(path, bolt.Config{}, nil)
	if err != nil {
		fmt.Printf("ERR open: %v\n", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var out sync.Mutex
	ack := func(lines string) {
		out.Lock()
		defer out.Unlock()
		_, _ = os.Stdout.WriteString(lines) // one write per append: the pipe keeps it whole
	}
	fail := func(format string, args ...any) {
		ack(fmt.Sprintf("ERR "+format+"\n", args...))
		os.Exit(2)
	}
	const writers, streamsPer = 16, 3
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]int64{}
			for k := range streamsPer {
				st := fmt.Sprintf("crash-%d-%d", w, k)
				got, err := l.ReadStream(ctx, st, domain.EndOfStream, domain.Backwards, 1)
				switch {
				case errors.Is(err, domain.ErrStreamNotFound):
					last[st] = -1
				case err != nil:
					fail("read %s: %v", st, err)
				default:
					last[st] = int64(got[0].Revision)
				}
			}
			for i := 0; ; i++ {
				st := fmt.Sprintf("crash-%d-%d", w, i%streamsPer)
				exp := domain.NoStream
				if last[st] >= 0 {
					exp = domain.Exact(uint64(last[st]))
				}
				if i%5 == 4 {
					st, exp = "crash-shared", domain.Any
				}
				batch := make([]domain.EventData, 1+i%3)
				for j := range batch {
					batch[j] = domain.EventData{ID: uuid.NewString(), Type: "Crash", Data: []byte(fmt.Sprintf(`{"w":%d,"i":%d,"pad":"%0400d"}`, w, i, 0))}
				}
				res, err := l.Append(ctx, st, exp, batch...)
				if err != nil {
					fail("append %s: %v", st, err)
				}
				var sb strings.Builder
				first := res.NextRevision - uint64(len(batch)-1)
				firstPos := res.Position.Commit - uint64(len(batch)-1)
				for j, e := range batch {
					fmt.Fprintf(&sb, "ACK %s %d %d %s\n", st, first+uint64(j), firstPos+uint64(j), e.ID)
				}
				ack(sb.String())
				if st != "crash-shared" {
					last[st] = int64(res.NextRevision)
				}
			}
		}()
	}
	wg.Wait()
}

type acked struct {
	stream string
	rev    uint64
	pos    uint64
	id     string
}

func runCrashChild(t *testing.T, path string, rng *rand.Rand) []acked {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())

	var acks []acked
	var errLines []string
	firstAck := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 5 && f[0] == "ACK":
				rev, err1 := strconv.ParseUint(f[2], 10, 64)
				pos, err2 := strconv.ParseUint(f[3], 10, 64)
				if err1 != nil || err2 != nil {
					errLines = append(errLines, sc.Text())
					continue
				}
				acks = append(acks, acked{f[1], rev, pos, f[4]})
				once.Do(func() { close(firstAck) })
			case len(f) > 0 && f[0] == "ERR":
				errLines = append(errLines, sc.Text())
			}
		}
	}()
	select {
	case <-firstAck:
	case <-scanned: // the child died before acknowledging anything
	case <-time.After(60 * time.Second):
	}
	time.Sleep(time.Duration(10+rng.IntN(300)) * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-scanned
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled(), "child exited on its own: %v", err)
	require.Empty(t, errLines, "child reported errors")
	require.NotEmpty(t, acks, "child acknowledged nothing")
	return acks
}

// TestCrashRecovery kills a child that appends under load with SIGKILL at
// random moments; nothing acknowledged may be lost and the file must stay
// consistent.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test spawns processes")
	}
	path := filepath.Join(t.TempDir(), "events.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	ctx := context.Background()
	var all []acked
	for round := range 4 {
		acks := runCrashChild(t, path, rng)
		all = append(all, acks...)
		l, err := bolt.Open(path, bolt.Config{}, zaptest.NewLogger(t))
		require.NoError(t, err, "round %d: reopen after kill", round)
		verifyCrashLog(t, l, all)
		t.Logf("round %d: %d acknowledged (%d in total)", round, len(acks), len(all))
		require.NoError(t, l.Close())
	}
	// Appends continue on the recovered file.
	l, err := bolt.Open(path, bolt.Config{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer l.Close()
	streams, err := l.ListStreams(ctx, "crash-", "", 0)
	require.NoError(t, err)
	for _, s := range streams {
		res, err := l.Append(ctx, s.Name, domain.Exact(s.LastRevision), event(0))
		require.NoError(t, err, s.Name)
		assert.Equal(t, s.LastRevision+1, res.NextRevision)
	}
}

func verifyCrashLog(t *testing.T, l *bolt.Log, acks []acked) {
	t.Helper()
	ctx := context.Background()
	events, err := l.ReadAll(ctx, nil, 0)
	require.NoError(t, err)
	type key struct {
		stream string
		rev    uint64
	}
	at := make(map[key]domain.RecordedEvent, len(events))
	next := map[string]uint64{}
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Position.Commit, "positions are 1..n without gaps or repeats")
		require.Equal(t, next[e.Stream], e.Revision, "stream %s revisions contiguous", e.Stream)
		next[e.Stream] = e.Revision + 1
		at[key{e.Stream, e.Revision}] = e
	}
	for _, a := range acks {
		e, ok := at[key{a.stream, a.rev}]
		require.True(t, ok, "acknowledged %s@%d lost", a.stream, a.rev)
		require.Equal(t, a.id, e.ID, "%s@%d", a.stream, a.rev)
		require.Equal(t, a.pos, e.Position.Commit, "%s@%d", a.stream, a.rev)
	}
	streams, err := l.ListStreams(ctx, "", "", 0)
	require.NoError(t, err)
	require.Len(t, streams, len(next))
	for _, s := range streams {
		assert.Equal(t, next[s.Name], s.Count, s.Name)
		assert.Equal(t, next[s.Name]-1, s.LastRevision, s.Name)
	}
	h, ok, err := l.Head(ctx)
	require.NoError(t, err)
	if len(events) > 0 {
		require.True(t, ok)
		assert.Equal(t, events[len(events)-1].Position, h)
	}
	// The id index survived: re-appending an acknowledged event is a duplicate.
	if len(acks) > 0 {
		a := acks[len(acks)/2]
		e := at[key{a.stream, a.rev}]
		res, err := l.Append(ctx, a.stream, domain.NoStream, domain.EventData{ID: e.ID, Type: e.Type, Data: e.Data})
		require.NoError(t, err)
		assert.True(t, res.Duplicate)
		assert.Equal(t, a.rev, res.NextRevision)
	}
}
