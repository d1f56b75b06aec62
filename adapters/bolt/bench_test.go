package bolt_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
)

// benchData is a ~500 byte event body, the size of a normalised order fact.
var benchData = []byte(`{"orderId":"4f0c1d7e-3b8a-4f6e-9c2d-1a2b3c4d5e6f","basketId":"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a","fullName":"A. Reader","totalMoney":"123.45","totalMinor":12345,"currency":"USD","items":[` +
	strings.Repeat(`{"bookId":"b-0001","qty":1,"price":"12.34"},`, 6) + `{"bookId":"b-0002","qty":2,"price":"1.00"}]}`)

var benchMeta = []byte(`{"$correlationId":"4f0c1d7e-3b8a-4f6e-9c2d-1a2b3c4d5e6f","$causationId":"4f0c1d7e-3b8a-4f6e-9c2d-1a2b3c4d5e6f"}`)

// baseline holds the raw bbolt figure (events/s) measured earlier in the
// same run, for the ratios.
var baseline atomic.Uint64

// results keeps the last figure of each benchmark for the summary that
// TestMain prints after the run.
var (
	resultsMu sync.Mutex
	results   []result
)

type result struct {
	name  string
	rate  float64
	ratio float64 // 0: no baseline measured in this run
	base  bool    // this is the baseline
	extra string
}

func reportRate(b *testing.B, events int, elapsed time.Duration, ratio bool, extra string) {
	b.Helper()
	rate := float64(events) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(0, "ns/op") // the per-event rate is the figure
	r := result{name: b.Name(), rate: rate, extra: extra, base: !ratio}
	if base := baseline.Load(); ratio && base > 0 {
		r.ratio = rate / float64(base)
		b.ReportMetric(r.ratio, "x_baseline")
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	for i := range results {
		if results[i].name == r.name {
			results[i] = r
			return
		}
	}
	results = append(results, r)
}

func printResults() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	fmt.Printf("\n%-52s %12s  %s\n", "benchmark (last run of each)", "events/s", "vs raw bbolt, one fsync per append")
	for _, r := range results {
		ratio := "-"
		switch {
		case r.base:
			ratio = "baseline"
		case r.ratio > 0:
			ratio = fmt.Sprintf("%.1fx", r.ratio)
		}
		fmt.Printf("%-52s %12.0f  %-9s %s\n", r.name, r.rate, ratio, r.extra)
	}
}

// BenchmarkAppend measures fsync'd appends of one ~500 byte event each.
// The first sub-benchmark is the baseline: raw bbolt, one transaction and
// one fsync per append.
func BenchmarkAppend(b *testing.B) {
	b.Run("baseline_raw_bbolt_fsync_per_append", func(b *testing.B) {
		db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		rec := append(append([]byte{}, benchData...), benchMeta...)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			err := db.Update(func(tx *bbolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("all"))
				if err != nil {
					return err
				}
				k := make([]byte, 8)
				binary.BigEndian.PutUint64(k, uint64(i+1))
				return bk.Put(k, rec)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		rate := float64(b.N) / elapsed.Seconds()
		baseline.Store(uint64(rate))
		reportRate(b, b.N, elapsed, false, "")
	})
	for _, c := range []struct {
		name      string
		appenders int
		window    time.Duration
	}{
		{"log_appenders=1", 1, 0},
		{"log_appenders=64", 64, 0},
		{"log_appenders=64_no_group_wait", 64, -1},
	} {
		b.Run(c.name, func(b *testing.B) { benchAppend(b, c.appenders, c.window) })
	}
}

// orderFacts is how many events the append benchmark writes per stream.
const orderFacts = 8

func benchAppend(b *testing.B, appenders int, window time.Duration) {
	l, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), bolt.Config{GroupCommitWindow: window}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < appenders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Like the ledger: one stream per order, a few facts each.
			var stream string
			exp := domain.NoStream
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if i%orderFacts == 0 {
					stream, exp = "order-"+uuid.NewString(), domain.NoStream
				}
				res, err := l.Append(ctx, stream, exp, domain.EventData{ID: uuid.NewString(), Type: "UserCheckedOutIntegrationEvent", Data: benchData, Metadata: benchMeta})
				if err != nil {
					errs <- err
					return
				}
				exp = domain.Exact(res.NextRevision)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	st := l.Stats()
	extra := ""
	if st.Commits > 0 {
		perCommit := float64(st.Appends) / float64(st.Commits)
		commitTime := float64(st.CommitTime.Microseconds()) / float64(st.Commits)
		b.ReportMetric(perCommit, "appends/commit")
		b.ReportMetric(commitTime, "µs/commit")
		extra = fmt.Sprintf("(%.1f appends/commit, %.0f µs/commit)", perCommit, commitTime)
	}
	reportRate(b, b.N, elapsed, true, extra)
}

var (
	populated     = map[int]string{}
	populatedOnce sync.Mutex
	benchDirs     []string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

// run exists so the deferred clean-up runs before os.Exit.
func run(m *testing.M) int {
	defer func() {
		for _, d := range benchDirs {
			_ = os.RemoveAll(d)
		}
	}()
	code := m.Run()
	printResults()
	return code
}

// populatedLog returns the path of a log holding n events over n/10
// streams, built once per size. It is written without fsync: only reads
// are measured on it.
func populatedLog(b *testing.B, n int) string {
	b.Helper()
	populatedOnce.Lock()
	defer populatedOnce.Unlock()
	if p, ok := populated[n]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "ledger-bolt-bench-")
	if err != nil {
		b.Fatal(err)
	}
	benchDirs = append(benchDirs, dir)
	path := filepath.Join(dir, "events.db")
	l, err := bolt.Open(path, bolt.Config{NoSync: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const perAppend = 10
	for i := 0; i < n; i += perAppend {
		batch := make([]domain.EventData, perAppend)
		for j := range batch {
			batch[j] = domain.EventData{ID: uuid.NewString(), Type: "UserCheckedOutIntegrationEvent", Data: benchData, Metadata: benchMeta}
		}
		if _, err := l.Append(ctx, fmt.Sprintf("order-%d", i/perAppend), domain.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	populated[n] = path
	return path
}

const readEvents = 100_000

// BenchmarkReadAll reads the global log in pages of 1000, as a projection
// rebuild does; one op is one event, starting over at the end of the log.
func BenchmarkReadAll(b *testing.B) {
	path := populatedLog(b, readEvents)
	l, err := bolt.Open(path, bolt.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var after *domain.Position
	for total := 0; total < b.N; {
		page, err := l.ReadAll(ctx, after, min(1000, b.N-total))
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 {
			after = nil
			continue
		}
		for i := 1; i < len(page); i++ {
			if !page[i-1].Position.Less(page[i].Position) {
				b.Fatal("positions out of order")
			}
		}
		total += len(page)
		p := page[len(page)-1].Position
		after = &p
	}
	reportRate(b, b.N, time.Since(start), true, "(pages of 1000)")
}

// BenchmarkSubscribeCatchUp subscribes from the start and takes stored
// events one by one; one op is one event.
func BenchmarkSubscribeCatchUp(b *testing.B) {
	path := populatedLog(b, readEvents)
	l, err := bolt.Open(path, bolt.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for total := 0; total < b.N; {
		sub, err := l.Subscribe(ctx, domain.SubscribeOptions{StreamPrefix: "order-"})
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < readEvents && total < b.N; j++ {
			if _, err := sub.Next(ctx); err != nil {
				b.Fatal(err)
			}
			total++
		}
		_ = sub.Close()
	}
	reportRate(b, b.N, time.Since(start), true, "(Next one by one)")
}
