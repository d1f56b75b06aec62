package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// TimeoutsConfig tunes the placement time-out scheduler.
type TimeoutsConfig struct {
	Currency domain.Currency
	Interval time.Duration // how often to look for due orders (default 1s)
	Limit    int           // due orders handled per look (default 1,000)
	Now      Clock         // default time.Now
	Observer Observer
}

// Timeouts appends a PlacementTimedOut fact to every INIT order whose
// placement deadline has passed. The fact's id comes from the order and the
// attempt number, and its time is the deadline itself, so a restart, a
// second instance or a slow read model append it at most once and a replay
// folds it the same way.
type Timeouts struct {
	log domain.EventLog
	rm  ReadModel
	cfg TimeoutsConfig
}

// NewTimeouts builds the scheduler.
func NewTimeouts(log domain.EventLog, rm ReadModel, cfg TimeoutsConfig) *Timeouts {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	return &Timeouts{log: log, rm: rm, cfg: cfg}
}

// Run looks for due orders every Interval until ctx is done.
func (t *Timeouts) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := t.Tick(ctx); err != nil && ctx.Err() == nil {
			t.cfg.Observer.Retry("timeouts", err, t.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Tick appends the time-outs that are due now and returns how many it
// appended (duplicates excluded).
func (t *Timeouts) Tick(ctx context.Context) (int, error) {
	due, err := t.rm.Due(ctx, t.cfg.Now(), t.cfg.Limit)
	if err != nil {
		return 0, fmt.Errorf("list due time-outs: %w", err)
	}
	n := 0
	for _, d := range due {
		ok, err := AppendTimeout(ctx, t.log, t.cfg.Currency, d)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// AppendTimeout appends the time-out fact for d; false means it was
// already stored.
func AppendTimeout(ctx context.Context, log domain.EventLog, cur domain.Currency, d Due) (bool, error) {
	f := domain.Fact{Type: domain.FactPlacementTimedOut, OrderID: d.OrderID, At: d.Deadline, Attempt: d.Attempt}
	data, err := codec.EncodeFact(f, cur)
	if err != nil {
		return false, fmt.Errorf("encode time-out for %s: %w", d.OrderID, err)
	}
	id := domain.TimeoutEventID(d.OrderID, d.Attempt)
	stream := domain.StreamName(d.OrderID)
	conv, err := checkoutConversation(ctx, log, stream)
	if err != nil {
		return false, err
	}
	meta, err := codec.EncodeMetadata(domain.Metadata{CorrelationID: d.OrderID, SentCorrelationID: d.OrderID,
		MessageID: id, ConversationID: conv, Envelope: "ledger", Origin: "ledger"})
	if err != nil {
		return false, fmt.Errorf("encode metadata: %w", err)
	}
	res, err := log.Append(ctx, stream, domain.StreamExists, domain.EventData{ID: id, Type: string(f.Type), Data: data, Metadata: meta})
	if err != nil {
		return false, fmt.Errorf("append time-out %d to %s: %w", d.Attempt, stream, err)
	}
	return !res.Duplicate, nil
}

// checkoutScan bounds the read for the checkout: it is the first fact of
// almost every stream, and only facts held before it precede it.
const checkoutScan = 64

// checkoutConversation is the conversation of stream's checkout, which a
// time-out continues as a MassTransit saga's scheduled message would; ""
// if the checkout is not among the first facts (the fold then falls back
// on the conversation it kept in the state).
func checkoutConversation(ctx context.Context, log domain.EventLog, stream string) (string, error) {
	evs, err := log.ReadStream(ctx, stream, 0, domain.Forwards, checkoutScan)
	if errors.Is(err, domain.ErrStreamNotFound) {
		return "", nil // the append says so
	}
	if err != nil {
		return "", fmt.Errorf("read the checkout of %s: %w", stream, err)
	}
	for _, re := range evs {
		if re.Type != string(domain.FactUserCheckedOut) {
			continue
		}
		ev, err := toEventWithMeta(re)
		if err != nil {
			return "", nil // reported where the fold meets it
		}
		return ev.Conversation(), nil
	}
	return "", nil
}
