package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/internal/testenv"
	"github.com/bookworm-ledger/ledger/projections"
)

// childCommand is the hidden part the bench re-executes itself with, so
// each measured phase has its own process and its own peak RSS.
const childCommand = "__child"

var benchCurrency = domain.Currency{Code: "USD", Decimals: 2}

// fixtureEvent is what the ingester stores for step k of order o, had it
// arrived in a MassTransit envelope sent at sent.
func fixtureEvent(o traffic.Order, k int, sent time.Time) (string, domain.EventData, error) {
	s := o.Steps[k]
	msgID := traffic.MessageID(o.ID, k)
	// The bare envelope's body is the message itself, as every envelope
	// decoder hands it to the ingester.
	w, err := traffic.Encode(s, traffic.Bare, msgID, sent)
	if err != nil {
		return "", domain.EventData{}, err
	}
	p, err := ingest.Prepare(ingest.Message{
		MessageID: msgID, CorrelationID: o.ID, ConversationID: o.ID, Type: s.Type,
		Envelope: domain.EnvelopeMassTransit, Exchange: s.Namespace + ":" + s.Type, Body: w.Body, SentAt: sent,
	}, benchCurrency, sent)
	if err != nil {
		return "", domain.EventData{}, err
	}
	return p.Stream, p.Event, nil
}

// buildFixture appends facts (3 per Fulfilled order) with many concurrent
// appenders, interleaved like live traffic: checkouts of one block of
// orders, then basket deletions, then completions, block after block.
// NoSync: this only builds the fixture; nothing measured writes.
func buildFixture(ctx context.Context, o options, path string) (int64, time.Duration, error) {
	l, err := bolt.Open(path, bolt.Config{NoSync: true}, nil)
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	const block = 2048
	orders := o.facts / 3
	type job struct {
		ord  traffic.Order
		step int
		at   time.Time
	}
	jobs := make(chan job, o.appenders)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	var appended atomic.Int64
	for range o.appenders {
		go func() {
			for j := range jobs {
				stream, ev, err := fixtureEvent(j.ord, j.step, j.at)
				if err == nil {
					_, err = l.Append(ctx, stream, domain.Any, ev)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
				} else {
					appended.Add(1)
				}
				wg.Done()
			}
		}()
	}
	defer close(jobs)
	start := time.Now()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	lastReport := start
	for b := 0; b*block < orders; b++ {
		n := min(block, orders-b*block)
		plan := traffic.Plan(uint64(1000+b), n, []traffic.Scenario{traffic.Fulfilled})
		for step := range 3 {
			for i, ord := range plan {
				wg.Add(1)
				jobs <- job{ord, step, base.Add(time.Duration((b*block+i)*3+step) * time.Millisecond)}
			}
			wg.Wait() // an order's facts go in order
			if e := firstErr.Load(); e != nil {
				return appended.Load(), time.Since(start), fmt.Errorf("build fixture: %w", *e)
			}
			if err := ctx.Err(); err != nil {
				return appended.Load(), time.Since(start), err
			}
		}
		if time.Since(lastReport) > 5*time.Second {
			lastReport = time.Now()
			o.progress("fixture: %d facts", appended.Load())
		}
	}
	return appended.Load(), time.Since(start), nil
}

// childResult is what a child phase prints on stdout (JSON).
type childResult struct {
	Mode       string        `json:"mode"`
	Facts      int64         `json:"facts"`
	Orders     int64         `json:"orders"`
	Changes    int           `json:"changes"`
	Undecoded  int64         `json:"undecoded"`
	Elapsed    time.Duration `json:"elapsed"`
	VmHWM      int64         `json:"vmHWMKB"`
	PeakAnon   int64         `json:"peakAnonKB"`
	RssFileEnd int64         `json:"rssFileKB"`
	// Where a replay spends its wall time outside the fold.
	PutTime     time.Duration `json:"putTime"`
	PutCalls    int64         `json:"putCalls"`
	LookupTime  time.Duration `json:"lookupTime"`
	LookupCalls int64         `json:"lookupCalls"`
	// floor: decoding alone, per fact, over a sample of the log's facts in
	// the embedded store's compact form and in the JSON form.
	DecodeCompact time.Duration `json:"decodeCompact"`
	DecodeJSON    time.Duration `json:"decodeJSON"`
}

// timedSink and timedCurrent time the replay's writes and diff lookups
// (both run on the replay's one coordinating goroutine).
type timedSink struct {
	projections.ReplaySink
	d time.Duration
	n int64
}

// Summaries lets the replay diff the rebuilt rows against the current ones.
func (t *timedSink) Summaries(ctx context.Context, after string, limit int) ([]projections.Summary, error) {
	return t.ReplaySink.(*bolt.ReadModel).Summaries(ctx, after, limit)
}

// DiffRows and Summary let it take the diff's cheaper path, as the read
// model itself does.
func (t *timedSink) DiffRows(ctx context.Context, after string, limit int, out []projections.DiffRow) ([]projections.DiffRow, error) {
	return t.ReplaySink.(*bolt.ReadModel).DiffRows(ctx, after, limit, out)
}

func (t *timedSink) Summary(ctx context.Context, id string) (projections.Summary, bool, error) {
	return t.ReplaySink.(*bolt.ReadModel).Summary(ctx, id)
}

func (t *timedSink) Put(ctx context.Context, rows []projections.Summary) error {
	start := time.Now()
	err := t.ReplaySink.Put(ctx, rows)
	t.d += time.Since(start)
	t.n++
	return err
}

type timedCurrent struct {
	projections.ReadModel
	d time.Duration
	n int64
}

func (t *timedCurrent) DiffRows(ctx context.Context, after string, limit int, out []projections.DiffRow) ([]projections.DiffRow, error) {
	return t.ReadModel.(*bolt.ReadModel).DiffRows(ctx, after, limit, out)
}

func (t *timedCurrent) Summary(ctx context.Context, id string) (projections.Summary, bool, error) {
	start := time.Now()
	s, ok, err := t.ReadModel.Summary(ctx, id)
	t.d += time.Since(start)
	t.n++
	return s, ok, err
}

// childArgs are the flags of a child phase.
type childArgs struct {
	mode, store, current, sink string
	page                       int
	cpuprofile                 string
}

func parseChildArgs(args []string) (childArgs, error) {
	var a childArgs
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	fs.StringVar(&a.mode, "mode", "", "floor | replay")
	fs.StringVar(&a.store, "store", "", "event log file")
	fs.StringVar(&a.current, "current", "", "replay: current read model to diff against")
	fs.StringVar(&a.sink, "sink", "", "replay: new read model file")
	fs.IntVar(&a.page, "page", 4096, "floor: events per ReadAll page")
	fs.StringVar(&a.cpuprofile, "cpuprofile", "", "write a CPU profile here")
	err := fs.Parse(args)
	return a, err
}

// runChild is one measured phase in its own process:
//
//	floor     ReadAll in pages, DecodeFact every event, no fold
//	replay    projections.Replay into -sink, diffed against -current if set
//	scanfold  one ReadAll scan, every order's state in memory, rows into -sink
func runChild(ctx context.Context, args []string, out io.Writer) error {
	a, err := parseChildArgs(args)
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(a.cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	// Peak anonymous memory (heap, stacks) next to VmHWM, which also counts
	// the store's file pages mapped by bbolt.
	sampler := startAnonSampler(20 * time.Millisecond)

	l, err := bolt.Open(a.store, bolt.Config{ScanRelease: scanRelease()}, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	// The phase's read models stay open until the memory is read, so the
	// file-mapped RSS at the end counts them.
	var opened closers
	defer opened.close()
	res := childResult{Mode: a.mode}
	switch a.mode {
	case "floor":
		if err = floorPass(ctx, l, a.page, &res); err == nil {
			err = decodeSample(ctx, l, &res)
		}
	case "floorjson":
		err = floorJSONPass(ctx, l, a.page, &res)
	case "replay":
		err = replayPass(ctx, l, a, &opened, &res)
	case "scanfold":
		err = scanFoldPass(ctx, l, a, &opened, &res)
	default:
		return fmt.Errorf("unknown mode %q", a.mode)
	}
	if err != nil {
		return err
	}
	peakAnon := sampler.stop()
	st, err := testenv.ProcStatus(os.Getpid())
	if err != nil {
		return err
	}
	res.VmHWM, res.PeakAnon, res.RssFileEnd = st["VmHWM"], max(peakAnon, st["RssAnon"]), st["RssFile"]
	return json.NewEncoder(out).Encode(res)
}

// startCPUProfile profiles into path until the returned func is called;
// without a path it does nothing.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// anonSampler polls this process's anonymous RSS and keeps its peak.
type anonSampler struct {
	peak atomic.Int64
	done chan struct{}
	wg   sync.WaitGroup
}

func startAnonSampler(every time.Duration) *anonSampler {
	s := &anonSampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if st, err := testenv.ProcStatus(os.Getpid()); err == nil && st["RssAnon"] > s.peak.Load() {
				s.peak.Store(st["RssAnon"])
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak seen, in kB.
func (s *anonSampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.peak.Load()
}

// closers closes what a phase opened, last first.
type closers []io.Closer

func (c *closers) add(x io.Closer) { *c = append(*c, x) }

func (c *closers) close() {
	for i := len(*c) - 1; i >= 0; i-- {
		_ = (*c)[i].Close()
	}
}

// eachPage hands every event of the log to fn, page events at a time, in
// position order.
func eachPage(ctx context.Context, l *bolt.Log, page int, fn func([]domain.RecordedEvent)) error {
	var after *domain.Position
	for {
		evs, err := l.ReadAll(ctx, after, page)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		fn(evs)
		p := evs[len(evs)-1].Position
		after = &p
	}
}

// floorPass reads and decodes every fact without folding, the way the
// replay reads (bolt's ReadAllFacts: stored form to fact, no JSON for a
// compact fact): what any replay costs at least.
func floorPass(ctx context.Context, l *bolt.Log, page int, res *childResult) error {
	start := time.Now()
	var after *domain.Position
	var buf []projections.DecodedEvent
	for {
		evs, last, err := l.ReadAllFacts(ctx, after, page, domain.StreamPrefix, buf[:0])
		if err != nil {
			return err
		}
		if len(evs) == 0 && (after == nil && last.Commit == 0 || after != nil && last == *after) {
			break
		}
		for i := range evs {
			if evs[i].Err != nil {
				res.Undecoded++
			}
		}
		res.Facts += int64(len(evs))
		after, buf = &last, evs
	}
	res.Elapsed = time.Since(start)
	return nil
}

// decodeSample times decoding alone over the log's first facts, in the
// compact form and the JSON form.
func decodeSample(ctx context.Context, l *bolt.Log, res *childResult) error {
	const n = 30_000
	evs, err := l.ReadAll(ctx, nil, n)
	if err != nil {
		return err
	}
	type one struct {
		typ           string
		json, compact []byte
	}
	var sample []one
	for _, e := range evs {
		if c, ok := codec.CompactFact(e.Type, e.Data); ok {
			sample = append(sample, one{e.Type, e.Data, c})
		}
	}
	if len(sample) == 0 {
		return nil
	}
	const rounds = 5
	start := time.Now()
	for range rounds {
		for _, s := range sample {
			if _, err := codec.DecodeCompactFact(s.typ, s.compact); err != nil {
				return err
			}
		}
	}
	res.DecodeCompact = time.Since(start) / time.Duration(rounds*len(sample))
	start = time.Now()
	for range rounds {
		for _, s := range sample {
			if _, err := codec.DecodeFact(s.typ, s.json); err != nil {
				return err
			}
		}
	}
	res.DecodeJSON = time.Since(start) / time.Duration(rounds*len(sample))
	return nil
}

// floorJSONPass is the floor through the port's generic read: ReadAll
// pages (stored form back to the JSON appended) and DecodeFact.
func floorJSONPass(ctx context.Context, l *bolt.Log, page int, res *childResult) error {
	start := time.Now()
	err := eachPage(ctx, l, page, func(evs []domain.RecordedEvent) {
		for i := range evs {
			if _, err := codec.DecodeFact(evs[i].Type, evs[i].Data); err != nil {
				res.Undecoded++
			}
		}
		res.Facts += int64(len(evs))
	})
	if err != nil {
		return err
	}
	res.Elapsed = time.Since(start)
	return nil
}

// replayPass replays into a new read model at a.sink, diffed against the
// one at a.current if set, timing the sink's writes and the diff's lookups.
func replayPass(ctx context.Context, l *bolt.Log, a childArgs, opened *closers, res *childResult) error {
	next, err := bolt.OpenReadModelWith(a.sink, bolt.ReadModelOptions{NoSync: true, DeferIndexes: true})
	if err != nil {
		return err
	}
	opened.add(next)
	sinkT := &timedSink{ReplaySink: next}
	curT := &timedCurrent{}
	opts := projections.ReplayOptions{Rules: domain.DefaultRules(), Sink: sinkT}
	opts.Rules.Currency = benchCurrency
	if a.current != "" {
		cur, err := bolt.OpenReadModel(a.current)
		if err != nil {
			return err
		}
		opened.add(cur)
		curT.ReadModel = cur
		opts.Current = curT
	}
	rr, err := projections.Replay(ctx, l, opts)
	if err != nil {
		return err
	}
	if err := next.BuildIndexes(ctx); err != nil { // as ledger replay does before the swap
		return err
	}
	if err := next.Sync(); err != nil {
		return err
	}
	res.Facts, res.Orders, res.Changes, res.Elapsed = rr.Facts, rr.Orders, len(rr.Changes), rr.Elapsed
	res.PutTime, res.PutCalls, res.LookupTime, res.LookupCalls = sinkT.d, sinkT.n, curT.d, curT.n
	return nil
}

// orderAcc is one order's state in the scan-fold experiment.
type orderAcc struct {
	s    domain.State
	last uint64
	n    int
}

// scanFoldPass times the alternative design: one pass over the log in
// position order, every order's state in memory, rows written at the end.
func scanFoldPass(ctx context.Context, l *bolt.Log, a childArgs, opened *closers, res *childResult) error {
	start := time.Now()
	states, err := foldLog(ctx, l, a.page, res)
	if err != nil {
		return err
	}
	next, err := bolt.OpenReadModel(a.sink)
	if err != nil {
		return err
	}
	opened.add(next)
	if err := putStates(ctx, next, states); err != nil {
		return err
	}
	res.Orders = int64(len(states))
	res.Elapsed = time.Since(start)
	return nil
}

// foldLog folds every order stream's facts in log order, counting the
// facts folded and those that did not decode.
func foldLog(ctx context.Context, l *bolt.Log, page int, res *childResult) (map[string]*orderAcc, error) {
	rules := domain.DefaultRules()
	rules.Currency = benchCurrency
	states := map[string]*orderAcc{}
	err := eachPage(ctx, l, page, func(evs []domain.RecordedEvent) {
		for i := range evs {
			e := &evs[i]
			if !strings.HasPrefix(e.Stream, domain.StreamPrefix) {
				continue
			}
			a := states[e.Stream]
			if a == nil {
				a = &orderAcc{}
				states[e.Stream] = a
			}
			a.last, a.n = e.Revision, a.n+1
			f, err := codec.DecodeFact(e.Type, e.Data)
			if err != nil {
				res.Undecoded++
				continue
			}
			a.s, _ = domain.Evolve(rules, a.s, domain.Event{ID: e.ID, Revision: e.Revision, Fact: f})
			res.Facts++
		}
	})
	return states, err
}

// putStates writes one summary row per order, in stream order, 1,000 rows
// a batch.
func putStates(ctx context.Context, m *bolt.ReadModel, states map[string]*orderAcc) error {
	names := slices.Sorted(maps.Keys(states))
	rows := make([]projections.Summary, 0, 1000)
	for i, name := range names {
		a := states[name]
		rows = append(rows, projections.SummaryOf(name, a.last, a.n, a.s))
		if len(rows) == cap(rows) || i == len(names)-1 {
			if err := m.Put(ctx, rows); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	return nil
}

// child runs one phase in a fresh process of this binary.
func child(ctx context.Context, o options, args ...string) (childResult, error) {
	self, err := os.Executable()
	if err != nil {
		return childResult{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, self, append([]string{childCommand}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	o.progress("child: %v", args)
	if err := cmd.Run(); err != nil {
		return childResult{}, fmt.Errorf("child %v: %w: %s", args, err, stderr.String())
	}
	var res childResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("child %v output %q: %w", args, stdout.String(), err)
	}
	return res, nil
}

func benchReplay(ctx context.Context, o options, r *report) error {
	dir, err := os.MkdirTemp("", "ledger-bench-replay-")
	if err != nil {
		return err
	}
	if o.keep {
		r.note("replay files kept in %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	store := o.fixture
	if store == "" {
		store = filepath.Join(dir, "ledger.db")
	}
	if _, err := os.Stat(store); errors.Is(err, os.ErrNotExist) {
		o.progress("building the fixture: %d facts, %d appenders", o.facts, o.appenders)
		n, took, err := buildFixture(ctx, o, store)
		if err != nil {
			return err
		}
		r.add("replay", "fixture built (NoSync, fixture only)", fmt.Sprintf("%d facts in %s (%.0f/s, %d appenders)", n, took.Round(time.Millisecond), rate(float64(n), took), o.appenders))
	} else {
		r.add("replay", "fixture reused", store)
	}
	if fi, err := os.Stat(store); err == nil {
		r.add("replay", "store file", fmt.Sprintf("%s, %d bytes per fact", fmtMB(fi.Size()/1024), fi.Size()/int64(max(o.facts, 1))))
	}
	prof := func(name string) []string {
		if o.profileDir == "" {
			return nil
		}
		return []string{"-cpuprofile", filepath.Join(o.profileDir, name+".pprof")}
	}

	// The page cache warm for every phase alike: the floor runs first and
	// would otherwise read the file from disk.
	if err := warmFile(store); err != nil {
		return err
	}
	floor, err := child(ctx, o, append([]string{"-mode", "floor", "-store", store}, prof("floor")...)...)
	if err != nil {
		return err
	}
	floorJSON, err := child(ctx, o, append([]string{"-mode", "floorjson", "-store", store}, prof("floorjson")...)...)
	if err != nil {
		return err
	}
	current := filepath.Join(dir, "current.db")
	fresh, err := child(ctx, o, append([]string{"-mode", "replay", "-store", store, "-sink", current}, prof("replay-fresh")...)...)
	if err != nil {
		return err
	}
	rep, err := child(ctx, o, append([]string{"-mode", "replay", "-store", store, "-current", current, "-sink", filepath.Join(dir, "next.db")}, prof("replay")...)...)
	if err != nil {
		return err
	}

	var scan childResult
	if o.scanFold {
		if scan, err = child(ctx, o, append([]string{"-mode", "scanfold", "-store", store, "-sink", filepath.Join(dir, "scan.db")}, prof("scanfold")...)...); err != nil {
			return err
		}
	}
	floorRate := rate(float64(floor.Facts), floor.Elapsed)
	freshRate := rate(float64(fresh.Facts), fresh.Elapsed)
	repRate := rate(float64(rep.Facts), rep.Elapsed)
	r.check("replay", "floor: ReadAllFacts (read + decode), no fold", fmt.Sprintf("%.0f facts/s (%d in %s)", floorRate, floor.Facts, fmtDur(floor.Elapsed)), ">= 500000 facts/s", floorRate >= 500_000)
	r.add("replay", "floor: peak RSS (VmHWM) / peak anon", fmtMB(floor.VmHWM)+" / "+fmtMB(floor.PeakAnon))
	r.check("replay", "stored-fact decode (compact form), per fact", fmtMicros(floor.DecodeCompact), "<= 0.8 µs", floor.DecodeCompact > 0 && floor.DecodeCompact <= 800*time.Nanosecond)
	r.add("replay", "  the same facts as JSON (DecodeFact), per fact", fmtMicros(floor.DecodeJSON))
	floorJSONRate := rate(float64(floorJSON.Facts), floorJSON.Elapsed)
	r.add("replay", "ReadAll pages + DecodeFact (JSON through the port)", fmt.Sprintf("%.0f facts/s (%.0f%% of the floor)", floorJSONRate, 100*floorJSONRate/floorRate))
	r.add("replay", "replay into an empty read model, no diff", fmt.Sprintf("%.0f facts/s (%d orders in %s)", freshRate, fresh.Orders, fmtDur(fresh.Elapsed)))
	r.add("replay", "  its peak RSS (VmHWM) / peak anon", fmtMB(fresh.VmHWM)+" / "+fmtMB(fresh.PeakAnon))
	r.check("replay", "replay as `ledger replay` (diff + new model)", fmt.Sprintf("%.0f facts/s (%d orders in %s)", repRate, rep.Orders, fmtDur(rep.Elapsed)), ">= 300000 facts/s", repRate >= 300_000)
	r.check("replay", "  ratio to the floor", fmt.Sprintf("%.0f%%", 100*repRate/floorRate), ">= 60%", repRate >= 0.6*floorRate)
	r.check("replay", "  peak RSS (VmHWM)", fmtMB(rep.VmHWM), "<= 200 MB", rep.VmHWM <= 200*1024)
	r.add("replay", "  peak anon RSS (heap+stacks)", fmtMB(rep.PeakAnon))
	r.add("replay", "  wall time in Sink.Put (serial)", fmt.Sprintf("%s (%d calls, %s each)", fmtDur(rep.PutTime), rep.PutCalls, fmtDur(rep.PutTime/time.Duration(max(rep.PutCalls, 1)))))
	r.add("replay", "  wall time in Current.Summary (serial)", fmt.Sprintf("%s (%d calls)", fmtDur(rep.LookupTime), rep.LookupCalls))
	r.add("replay", "  wall time left for list+read+fold", fmtDur(rep.Elapsed-rep.PutTime-rep.LookupTime))
	r.add("replay", "  file-mapped RSS at the end", fmtMB(rep.RssFileEnd))
	r.add("replay", "  changes against the current model", fmt.Sprint(rep.Changes))
	if o.scanFold {
		r.add("replay", "experiment: one ReadAll scan, states in memory", fmt.Sprintf("%.0f facts/s (%d orders in %s)", rate(float64(scan.Facts), scan.Elapsed), scan.Orders, fmtDur(scan.Elapsed)))
		r.add("replay", "  its peak RSS (VmHWM) / peak anon", fmtMB(scan.VmHWM)+" / "+fmtMB(scan.PeakAnon))
	}
	r.note("replay: %d Fulfilled orders (3 facts each, stored as the ingester stores them), interleaved in blocks of 2,048 orders; the three measured phases each run in a fresh child process, page cache warm. The headline replays with the current read model (built by the previous phase) as `ledger replay` does (replayInto: Current = the live model, Sink = a new file). VmHWM counts the store's pages bbolt maps from the file as well as the heap.",
		fresh.Orders)
	if rep.Changes != 0 {
		r.note("REPLAY CHANGED %d ORDERS: the same code over the same facts must change nothing", rep.Changes)
	}
	if floor.Undecoded > 0 {
		r.note("floor: %d events did not decode", floor.Undecoded)
	}
	return nil
}

// warmFile reads path once, so its pages are in the page cache.
func warmFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
	return err
}

func fmtMicros(d time.Duration) string { return fmt.Sprintf("%.2f µs", float64(d)/1e3) }

// scanRelease lets a run compare the store with and without dropping
// scanned pages (LEDGER_BENCH_SCAN_RELEASE=-1 turns it off).
func scanRelease() int {
	if v := os.Getenv("LEDGER_BENCH_SCAN_RELEASE"); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return 0
}
