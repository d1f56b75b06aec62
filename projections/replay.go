package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// ReplaySink receives the rebuilt read model.
type ReplaySink interface {
	Put(ctx context.Context, rows []Summary) error
}

// ReplayOptions tune a replay.
type ReplayOptions struct {
	Rules    domain.Rules
	Current  ReadModel  // the read model to compare with; nil: no diff
	Sink     ReplaySink // where rebuilt rows go; nil: nowhere (dry run)
	PageSize int        // events read per page of the log (default 4,096)
	// CacheSize bounds the order folds kept in memory (default 20,000). An
	// order not seen for that many events is written out and forgotten; if
	// it shows up again its stream is read to pick up where it was.
	CacheSize int
	Progress  func(ReplayProgress)
	Every     time.Duration // how often Progress is called (default 1s)
}

// ReplayProgress is reported while a replay runs.
type ReplayProgress struct {
	Facts   int64
	Orders  int64
	Elapsed time.Duration
}

// Change is an order whose derived status or money differs from the current
// read model.
type Change struct {
	OrderID string   `json:"orderId"`
	Before  *Summary `json:"before"` // nil: the order was not in the read model
	After   Summary  `json:"after"`
}

// ReplayResult sums a replay up. Its JSON (the report file, the HTTP
// API's answer) is replayJSON: "changes" is [] when none, the elapsed time
// is whole milliseconds in "elapsedMs".
type ReplayResult struct {
	Facts   int64
	Orders  int64
	Head    *domain.Position // the log's head when the replay began
	Changes []Change
	Elapsed time.Duration
	// Restated is how many restatement facts were appended for the
	// changes (a rebuild with restate; Replay itself appends none).
	Restated int
}

type replayJSON struct {
	Facts     int64            `json:"facts"`
	Orders    int64            `json:"orders"`
	Head      *domain.Position `json:"head,omitempty"`
	Changes   []Change         `json:"changes"`
	ElapsedMs int64            `json:"elapsedMs"`
	Restated  int              `json:"restated"`
}

// MarshalJSON writes the report's stable shape.
func (r ReplayResult) MarshalJSON() ([]byte, error) {
	j := replayJSON{Facts: r.Facts, Orders: r.Orders, Head: r.Head, Changes: r.Changes, ElapsedMs: r.Elapsed.Milliseconds(), Restated: r.Restated}
	if j.Changes == nil {
		j.Changes = []Change{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote (the CLI decodes the
// server's answer with it).
func (r *ReplayResult) UnmarshalJSON(b []byte) error {
	var j replayJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = ReplayResult{Facts: j.Facts, Orders: j.Orders, Head: j.Head, Changes: j.Changes, Elapsed: time.Duration(j.ElapsedMs) * time.Millisecond, Restated: j.Restated}
	return nil
}

// replayFold is one order being replayed.
type replayFold struct {
	next     uint64 // revision expected next
	facts    int
	lastSeen int64 // sequence number of the last event applied
	f        *domain.Folder
}

// Replay folds every order stream with the current code. It reads the log
// once, in order, and folds each event into its order's fold; memory stays
// bounded by CacheSize whatever the number of orders. Rows are written and
// compared with the current read model on a second goroutine while the
// fold goes on.
func Replay(ctx context.Context, log domain.EventLog, opts ReplayOptions) (ReplayResult, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = 4096
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 20_000
	}
	if opts.Every <= 0 {
		opts.Every = time.Second
	}
	start := time.Now()
	var res ReplayResult
	head, ok, err := log.Head(ctx)
	if err != nil {
		return res, fmt.Errorf("replay: read head: %w", err)
	}
	if ok {
		res.Head = &head
	}
	if opts.Current != nil {
		if _, ok := opts.Sink.(lister); !ok {
			// No file to compare from (a dry run without one): keep the rows
			// in memory. ledger replay always gives a file.
			opts.Sink = &memRows{next: opts.Sink, rows: map[string]Summary{}}
		}
	}
	r := &replay{log: log, opts: opts, cache: make(map[string]*replayFold, opts.CacheSize)}
	defer r.reportProgress(start)()
	r.startWriter(ctx)
	foldErr := r.foldAll(ctx)
	if foldErr == nil {
		r.flush()
	}
	if err := errors.Join(foldErr, r.stopWriter()); err != nil {
		return res, err
	}
	if opts.Current != nil {
		if res.Changes, err = diffModels(ctx, opts.Current, opts.Sink.(lister)); err != nil {
			return res, err
		}
	}
	res.Facts, res.Orders, res.Elapsed = r.facts.Load(), r.orders.Load(), time.Since(start)
	return res, nil
}

// replay is one run of Replay: the folds in memory and the rows on their
// way to the sink.
type replay struct {
	log           domain.EventLog
	opts          ReplayOptions
	cache         map[string]*replayFold
	seq           int64 // events folded so far, to find the orders not seen for a while
	facts, orders atomic.Int64
	pending       []Summary // rows not yet handed to the writer

	rows     chan []Summary
	written  chan struct{} // closed when the writer is done
	writeErr error
}

// reportProgress calls opts.Progress every opts.Every until the returned
// function is called.
func (r *replay) reportProgress(start time.Time) (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.opts.Every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.opts.Progress(ReplayProgress{Facts: r.facts.Load(), Orders: r.orders.Load(), Elapsed: time.Since(start)})
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// startWriter starts the goroutine that stores rows while the fold goes on.
func (r *replay) startWriter(ctx context.Context) {
	r.rows = make(chan []Summary, 1)
	r.written = make(chan struct{})
	go func() {
		defer close(r.written)
		for rows := range r.rows {
			if r.writeErr != nil {
				continue // drain
			}
			if r.opts.Sink != nil {
				if err := r.opts.Sink.Put(ctx, rows); err != nil {
					r.writeErr = fmt.Errorf("replay: write rows: %w", err)
				}
			}
		}
	}()
}

// stopWriter waits for the writer to store what it was given.
func (r *replay) stopWriter() error {
	close(r.rows)
	<-r.written
	return r.writeErr
}

// emit queues the row of an order; rows go to the writer in batches.
func (r *replay) emit(stream string, rf *replayFold, last uint64) {
	r.pending = append(r.pending, SummaryOf(stream, last, rf.facts, rf.f.State()))
	if len(r.pending) >= 2048 {
		// Big, key-ordered batches: the sink's B-tree then rewrites
		// each page it touches once per batch rather than once per row.
		slices.SortFunc(r.pending, func(a, b Summary) int { return strings.Compare(a.OrderID, b.OrderID) })
		r.rows <- r.pending
		r.pending = nil
	}
}

// foldAll reads the whole log page by page and folds each order event.
func (r *replay) foldAll(ctx context.Context) error {
	var after *domain.Position
	for {
		page, err := r.log.ReadAll(ctx, after, r.opts.PageSize)
		if err != nil {
			return fmt.Errorf("replay: read after %v: %w", after, err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, re := range page {
			if err := r.fold(ctx, re); err != nil {
				return err
			}
		}
		p := page[len(page)-1].Position
		after = &p
		if len(r.cache) > r.opts.CacheSize {
			r.evict()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// fold applies one event of the log to its order's fold.
func (r *replay) fold(ctx context.Context, re domain.RecordedEvent) error {
	if !strings.HasPrefix(re.Stream, domain.StreamPrefix) {
		return nil
	}
	rf := r.cache[re.Stream]
	if rf == nil || rf.next != re.Revision {
		var err error
		if rf, err = resume(ctx, r.log, r.opts.Rules, re.Stream, re.Revision); err != nil {
			return err
		}
		r.cache[re.Stream] = rf
	}
	if re.Revision == 0 {
		r.orders.Add(1)
	}
	r.seq++
	rf.lastSeen, rf.next = r.seq, re.Revision+1
	if ev, err := toEvent(re); err == nil {
		rf.f.Apply(ev)
	}
	rf.facts++
	r.facts.Add(1)
	return nil
}

// evict writes out and forgets the orders not seen for a while.
func (r *replay) evict() {
	cut := r.seq - int64(r.opts.CacheSize)/2
	for st, rf := range r.cache {
		if rf.lastSeen < cut {
			r.emit(st, rf, rf.next-1)
			delete(r.cache, st)
		}
	}
}

// flush writes out every order still in memory, in stream order so the
// output does not depend on map order.
func (r *replay) flush() {
	streams := make([]string, 0, len(r.cache))
	for st := range r.cache {
		streams = append(streams, st)
	}
	slices.Sort(streams)
	for _, st := range streams {
		rf := r.cache[st]
		r.emit(st, rf, rf.next-1)
	}
	if len(r.pending) > 0 {
		r.rows <- r.pending
	}
}

// resume rebuilds an order's fold from its stream up to (not including)
// revision rev: the order was forgotten, or the replay starts mid-stream.
func resume(ctx context.Context, log domain.EventLog, rules domain.Rules, stream string, rev uint64) (*replayFold, error) {
	rf := &replayFold{f: domain.NewFolder(rules, domain.State{})}
	if rev > 0 {
		evs, err := log.ReadStream(ctx, stream, 0, domain.Forwards, int(rev))
		if err != nil {
			return nil, fmt.Errorf("replay: read %s: %w", stream, err)
		}
		for _, re := range evs {
			if re.Revision >= rev {
				break
			}
			if ev, err := toEvent(re); err == nil {
				rf.f.Apply(ev)
			}
			rf.facts++
		}
	}
	rf.next = rev
	return rf, nil
}

// memRows holds rebuilt rows in memory so they can be compared.
type memRows struct {
	next   ReplaySink
	rows   map[string]Summary
	sorted []Summary
}

func (m *memRows) Put(ctx context.Context, rows []Summary) error {
	for _, r := range rows {
		m.rows[r.OrderID] = r
	}
	m.sorted = nil
	if m.next != nil {
		return m.next.Put(ctx, rows)
	}
	return nil
}

func (m *memRows) Summaries(_ context.Context, after string, limit int) ([]Summary, error) {
	if m.sorted == nil {
		m.sorted = make([]Summary, 0, len(m.rows))
		for _, r := range m.rows {
			m.sorted = append(m.sorted, r)
		}
		slices.SortFunc(m.sorted, func(a, b Summary) int { return strings.Compare(a.OrderID, b.OrderID) })
	}
	i, _ := slices.BinarySearchFunc(m.sorted, after, func(r Summary, id string) int { return strings.Compare(r.OrderID, id) })
	for i < len(m.sorted) && m.sorted[i].OrderID <= after {
		i++
	}
	return m.sorted[i:min(i+limit, len(m.sorted))], nil
}

// lister pages through a read model's rows in order-id order.
type lister interface {
	Summaries(ctx context.Context, after string, limit int) ([]Summary, error)
}

// diffModels merges the two models' rows in order-id order and returns
// every order whose status or money differs, or that is new.
func diffModels(ctx context.Context, cur, next lister) ([]Change, error) {
	const page = 2000
	var out []Change
	var curRows []Summary
	curAfter, curDone := "", false
	fill := func() error {
		if len(curRows) > 0 || curDone {
			return nil
		}
		rows, err := cur.Summaries(ctx, curAfter, page)
		if err != nil {
			return fmt.Errorf("replay: list current rows: %w", err)
		}
		if len(rows) == 0 {
			curDone = true
			return nil
		}
		curRows, curAfter = rows, rows[len(rows)-1].OrderID
		return nil
	}
	after := ""
	for {
		rows, err := next.Summaries(ctx, after, page)
		if err != nil {
			return nil, fmt.Errorf("replay: list rebuilt rows: %w", err)
		}
		if len(rows) == 0 {
			return out, nil
		}
		after = rows[len(rows)-1].OrderID
		for _, r := range rows {
			// Skip current rows that sort before r: orders without facts now.
			for {
				if err := fill(); err != nil {
					return nil, err
				}
				if len(curRows) == 0 || curRows[0].OrderID >= r.OrderID {
					break
				}
				curRows = curRows[1:]
			}
			if len(curRows) > 0 && curRows[0].OrderID == r.OrderID {
				old := curRows[0]
				curRows = curRows[1:]
				if differs(old, r) {
					out = append(out, Change{OrderID: r.OrderID, Before: &old, After: r})
				}
				continue
			}
			out = append(out, Change{OrderID: r.OrderID, After: r})
		}
	}
}

// differs reports whether a replay changed what the ledger says about an
// order: its status or its money.
func differs(a, b Summary) bool {
	return a.Status != b.Status || a.Money != b.Money || a.Total != b.Total
}

// Restate appends an OrderRestated fact to each changed order, so the
// lifecycle publisher tells downstream (orderStatusUpdated). The fact's id
// is derived from the change itself: restating twice appends nothing new.
// It returns how many facts were appended.
func Restate(ctx context.Context, log domain.EventLog, cur domain.Currency, changes []Change) (int, error) {
	n := 0
	for _, c := range changes {
		if c.Before == nil {
			continue // new to the read model, nothing was ever said downstream
		}
		fp := fingerprint(c)
		f := domain.Fact{
			Type:    domain.FactOrderRestated,
			OrderID: c.OrderID,
			At:      c.After.LastAt,
			Restated: &domain.Restatement{
				Status: c.After.Status, PreviousStatus: c.Before.Status,
				Money: c.After.Money, PreviousMoney: c.Before.Money,
				ReplayID: fp, Reason: "restated after replay",
			},
		}
		data, err := codec.EncodeFact(f, cur)
		if err != nil {
			return n, fmt.Errorf("encode restatement for %s: %w", c.OrderID, err)
		}
		id := domain.RestatementEventID(c.OrderID, fp)
		meta, err := codec.EncodeMetadata(domain.Metadata{CorrelationID: c.OrderID, MessageID: id, Envelope: "ledger", Origin: "ledger"})
		if err != nil {
			return n, err
		}
		res, err := log.Append(ctx, c.After.Stream, domain.StreamExists, domain.EventData{ID: id, Type: string(f.Type), Data: data, Metadata: meta})
		if err != nil {
			return n, fmt.Errorf("append restatement to %s: %w", c.After.Stream, err)
		}
		if !res.Duplicate {
			n++
		}
	}
	return n, nil
}

func fingerprint(c Change) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%s|%+v|%s|%+v", c.OrderID, c.After.Revision, c.After.Status, c.After.Money, c.Before.Status, c.Before.Money)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
