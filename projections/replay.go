package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
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
	Workers  int        // streams folded at once (default 2)
	PageSize int        // streams listed per page (default 1,000)
	Progress func(ReplayProgress)
	Every    time.Duration // how often Progress is called (default 1s)
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

// ReplayResult sums a replay up.
type ReplayResult struct {
	Facts   int64            `json:"facts"`
	Orders  int64            `json:"orders"`
	Head    *domain.Position `json:"head,omitempty"` // the log's head when the replay began
	Changes []Change         `json:"changes"`
	Elapsed time.Duration    `json:"elapsed"`
}

// Replay folds every order stream with the current code. It reads stream by
// stream, so memory stays flat however many orders there are.
func Replay(ctx context.Context, log domain.EventLog, opts ReplayOptions) (ReplayResult, error) {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
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

	var facts, orders atomic.Int64
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if opts.Progress != nil {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			t := time.NewTicker(opts.Every)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					opts.Progress(ReplayProgress{Facts: facts.Load(), Orders: orders.Load(), Elapsed: time.Since(start)})
				}
			}
		}()
	}
	defer func() {
		close(stopProgress)
		progressDone.Wait()
	}()

	after := ""
	for {
		page, err := log.ListStreams(ctx, OrderStreamPrefix, after, opts.PageSize)
		if err != nil {
			return res, fmt.Errorf("replay: list streams after %q: %w", after, err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Name
		rows := make([]Summary, len(page))
		errs := make([]error, len(page))
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range opts.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(page) || ctx.Err() != nil {
						return
					}
					rows[i], errs[i] = foldStream(ctx, log, opts.Rules, page[i].Name)
					facts.Add(int64(rows[i].Facts))
					orders.Add(1)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if opts.Current != nil {
			for _, r := range rows {
				old, ok, err := opts.Current.Summary(ctx, r.OrderID)
				if err != nil {
					return res, fmt.Errorf("replay: read current %s: %w", r.OrderID, err)
				}
				if !ok {
					res.Changes = append(res.Changes, Change{OrderID: r.OrderID, After: r})
				} else if differs(old, r) {
					o := old
					res.Changes = append(res.Changes, Change{OrderID: r.OrderID, Before: &o, After: r})
				}
			}
		}
		if opts.Sink != nil {
			if err := opts.Sink.Put(ctx, rows); err != nil {
				return res, fmt.Errorf("replay: write rows: %w", err)
			}
		}
	}
	res.Facts, res.Orders, res.Elapsed = facts.Load(), orders.Load(), time.Since(start)
	return res, nil
}

func foldStream(ctx context.Context, log domain.EventLog, rules domain.Rules, stream string) (Summary, error) {
	evs, err := log.ReadStream(ctx, stream, 0, domain.Forwards, 0)
	if err != nil {
		return Summary{}, fmt.Errorf("read %s: %w", stream, err)
	}
	fold := make([]domain.Event, 0, len(evs))
	var last uint64
	for _, re := range evs {
		last = re.Revision
		ev, err := toEvent(re)
		if err != nil {
			continue // kept in the stream, shown by audit; nothing to fold
		}
		fold = append(fold, ev)
	}
	return SummaryOf(stream, last, len(evs), domain.Fold(rules, fold)), nil
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
		data, err := domain.EncodeFact(f, cur)
		if err != nil {
			return n, fmt.Errorf("encode restatement for %s: %w", c.OrderID, err)
		}
		id := domain.RestatementEventID(c.OrderID, fp)
		meta, err := domain.EncodeMetadata(domain.Metadata{CorrelationID: c.OrderID, MessageID: id, Envelope: "ledger", Origin: "ledger"})
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
