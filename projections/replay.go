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

// FactLog is an event log that can read the global log with the facts
// already decoded, straight from its stored form: a store with a compact
// form of its own skips the JSON. Replay uses it when the log has it.
type FactLog interface {
	// ReadAllFacts appends to out up to max events of the streams starting
	// with prefix after position after (nil: from the start) and returns
	// the last position it looked at, kept or not; no events and that
	// position unmoved: the end.
	ReadAllFacts(ctx context.Context, after *domain.Position, max int, prefix string, out []DecodedEvent) ([]DecodedEvent, domain.Position, error)
}

// DecodedEvent is an event of a FactLog with its fact decoded (Event has
// the id, revision and fact), or Err when the fact did not decode.
type DecodedEvent struct {
	Stream   string
	Type     string
	Position domain.Position
	Event    domain.Event
	Err      error
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
	// The folds in memory form a list from the least recently seen
	// (replay.oldest) to the most: evict takes from its head instead of
	// scanning the whole cache every page.
	stream       string
	older, newer *replayFold
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
	var foldErr error
	if fl, ok := log.(FactLog); ok {
		foldErr = r.foldDecoded(ctx, fl)
	} else {
		foldErr = r.foldAll(ctx)
	}
	if foldErr == nil {
		r.flush()
	}
	if err := errors.Join(foldErr, r.stopWriter()); err != nil {
		return res, err
	}
	if opts.Current != nil {
		cur, curOK := opts.Current.(DiffLister)
		next, nextOK := opts.Sink.(DiffLister)
		if curOK && nextOK {
			res.Changes, err = diffRows(ctx, cur, next)
		} else {
			res.Changes, err = diffModels(ctx, opts.Current, opts.Sink.(lister))
		}
		if err != nil {
			return res, err
		}
	}
	res.Facts, res.Orders, res.Elapsed = r.facts.Load(), r.orders.Load(), time.Since(start)
	return res, nil
}

// replay is one run of Replay: the folds in memory and the rows on their
// way to the sink.
type replay struct {
	log            domain.EventLog
	opts           ReplayOptions
	cache          map[string]*replayFold
	oldest, newest *replayFold // the cache's folds by lastSeen
	seq            int64       // events folded so far, to find the orders not seen for a while
	facts, orders  atomic.Int64
	pending        []Summary // rows not yet handed to the writer

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

// emit queues the row of an order, whose fold is done (its state goes
// into the row uncopied); rows go to the writer in batches (in no
// particular order: bolt's replay file sorts what it buffers).
func (r *replay) emit(stream string, rf *replayFold, last uint64) {
	r.pending = append(r.pending, SummaryOf(stream, last, rf.facts, rf.f.Final()))
	if len(r.pending) >= 2048 {
		r.rows <- r.pending
		r.pending = make([]Summary, 0, 2048)
	}
}

// seen marks rf as the most recently seen fold, adding it to the cache.
func (r *replay) seen(rf *replayFold) {
	if r.newest == rf {
		return
	}
	r.unlink(rf)
	rf.older, rf.newer = r.newest, nil
	if r.newest != nil {
		r.newest.newer = rf
	}
	r.newest = rf
	if r.oldest == nil {
		r.oldest = rf
	}
}

// unlink takes rf out of the list (not out of the map).
func (r *replay) unlink(rf *replayFold) {
	if rf.older != nil {
		rf.older.newer = rf.newer
	} else if r.oldest == rf {
		r.oldest = rf.newer
	}
	if rf.newer != nil {
		rf.newer.older = rf.older
	} else if r.newest == rf {
		r.newest = rf.older
	}
	rf.older, rf.newer = nil, nil
}

// put caches a fold resumed for stream, replacing any fold it had.
func (r *replay) put(stream string, rf *replayFold) {
	if old := r.cache[stream]; old != nil {
		r.unlink(old)
	}
	rf.stream = stream
	r.cache[stream] = rf
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

// foldDecoded is foldAll over a FactLog: one goroutine reads and decodes
// pages while this one folds the previous page.
func (r *replay) foldDecoded(ctx context.Context, fl FactLog) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		evs []DecodedEvent
		err error
	}
	pages := make(chan page, 2)
	free := make(chan []DecodedEvent, 3)
	go func() {
		defer close(pages)
		var after *domain.Position
		for {
			var buf []DecodedEvent
			select {
			case buf = <-free:
			default:
				buf = make([]DecodedEvent, 0, r.opts.PageSize)
			}
			evs, last, err := fl.ReadAllFacts(ctx, after, r.opts.PageSize, domain.StreamPrefix, buf[:0])
			if err != nil {
				pages <- page{err: fmt.Errorf("replay: read after %v: %w", after, err)}
				return
			}
			var prev uint64
			if after != nil {
				prev = after.Commit
			}
			if len(evs) == 0 && last.Commit == prev {
				return // the end
			}
			after = &last
			select {
			case pages <- page{evs: evs}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		for i := range p.evs {
			if err := r.foldOne(ctx, &p.evs[i]); err != nil {
				return err
			}
		}
		clear(p.evs) // the fold keeps what it needs; drop the rest
		select {
		case free <- p.evs:
		default:
		}
		if len(r.cache) > r.opts.CacheSize {
			r.evict()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// foldOne applies one decoded event to its order's fold.
func (r *replay) foldOne(ctx context.Context, de *DecodedEvent) error {
	rev := de.Event.Revision
	rf := r.cache[de.Stream]
	if rf == nil || rf.next != rev {
		var err error
		if rf, err = resume(ctx, r.log, r.opts.Rules, de.Stream, rev); err != nil {
			return err
		}
		r.put(de.Stream, rf)
	}
	if rev == 0 {
		r.orders.Add(1)
	}
	r.seq++
	rf.lastSeen, rf.next = r.seq, rev+1
	r.seen(rf)
	if de.Err == nil {
		rf.f.Fold(de.Event)
	}
	rf.facts++
	r.facts.Add(1)
	return nil
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
		r.put(re.Stream, rf)
	}
	if re.Revision == 0 {
		r.orders.Add(1)
	}
	r.seq++
	rf.lastSeen, rf.next = r.seq, re.Revision+1
	r.seen(rf)
	if ev, err := toEvent(re); err == nil {
		rf.f.Fold(ev)
	}
	rf.facts++
	r.facts.Add(1)
	return nil
}

// evict writes out and forgets the orders not seen for a while, the
// least recently seen first.
func (r *replay) evict() {
	cut := r.seq - int64(r.opts.CacheSize)/2
	for rf := r.oldest; rf != nil && rf.lastSeen < cut; rf = r.oldest {
		r.emit(rf.stream, rf, rf.next-1)
		r.unlink(rf)
		delete(r.cache, rf.stream)
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
				rf.f.Fold(ev)
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

// DiffRow is the part of a read model's row that a replay's diff
// compares (see differs).
type DiffRow struct {
	OrderID string
	Status  domain.Status
	Total   int64
	Money   domain.Totals
}

// DiffLister is a read model that lists the compared part of its rows
// without building whole ones. When the current model and the sink both
// are, the diff reads whole rows of the changed orders only.
type DiffLister interface {
	// DiffRows appends to out up to limit rows in order-id order after
	// the id after.
	DiffRows(ctx context.Context, after string, limit int, out []DiffRow) ([]DiffRow, error)
	// Summary returns one order's whole row; ok is false when absent.
	Summary(ctx context.Context, orderID string) (Summary, bool, error)
}

// diffPage is how many rows the diff lists at a time (a variable for the
// tests).
var diffPage = 4096

// diffCursor walks a DiffLister's rows page by page.
type diffCursor struct {
	l     DiffLister
	what  string
	rows  []DiffRow
	i     int
	after string
	done  bool
}

// peek returns the next row, nil at the end.
func (c *diffCursor) peek(ctx context.Context) (*DiffRow, error) {
	if c.i == len(c.rows) && !c.done {
		rows, err := c.l.DiffRows(ctx, c.after, diffPage, c.rows[:0])
		if err != nil {
			return nil, fmt.Errorf("replay: list %s rows: %w", c.what, err)
		}
		c.rows, c.i, c.done = rows, 0, len(rows) == 0
		if len(rows) > 0 {
			c.after = rows[len(rows)-1].OrderID
		}
	}
	if c.i == len(c.rows) {
		return nil, nil
	}
	return &c.rows[c.i], nil
}

// diffRows is diffModels over DiffListers.
func diffRows(ctx context.Context, cur, next DiffLister) ([]Change, error) {
	var out []Change
	cc, nc := &diffCursor{l: cur, what: "current"}, &diffCursor{l: next, what: "rebuilt"}
	for {
		r, err := nc.peek(ctx)
		if err != nil || r == nil {
			return out, err
		}
		nc.i++
		// Skip current rows that sort before r: orders without facts now.
		var old *DiffRow
		for {
			if old, err = cc.peek(ctx); err != nil {
				return nil, err
			}
			if old == nil || old.OrderID >= r.OrderID {
				break
			}
			cc.i++
		}
		if old != nil && old.OrderID == r.OrderID {
			cc.i++
			if old.Status == r.Status && old.Money == r.Money && old.Total == r.Total {
				continue
			}
		} else {
			old = nil
		}
		c, err := change(ctx, cur, next, r.OrderID, old != nil)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// change reads the whole rows of a changed order.
func change(ctx context.Context, cur, next DiffLister, id string, had bool) (Change, error) {
	after, _, err := next.Summary(ctx, id)
	if err != nil {
		return Change{}, fmt.Errorf("replay: read rebuilt row %s: %w", id, err)
	}
	c := Change{OrderID: id, After: after}
	if had {
		before, _, err := cur.Summary(ctx, id)
		if err != nil {
			return Change{}, fmt.Errorf("replay: read current row %s: %w", id, err)
		}
		c.Before = &before
	}
	return c, nil
}

// differs reports whether a replay changed what the ledger says about an
// order: its status or its money. Not its books: downstream is told status
// and money only, and every row written before the books would differ.
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
