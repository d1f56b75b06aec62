package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/projections"
)

// Report is what the checks found after a run.
type Report struct {
	Orders     int
	MessagesIn int // distinct inbound messages the broker confirmed

	FactsStored    int // facts whose message id is one of MessagesIn's
	DuplicateFacts int // facts beyond the first for one message id
	LostFacts      int // inbound messages with no fact
	LedgerFacts    int // facts the ledger made itself (time-outs, restatements)
	ForeignFacts   int // facts of no inbound message of this run
	Parked         int // messages in the ledger's _error, _skipped and unroutable queues

	OutboundExpected     int // (message id, queue) pairs the stored facts say must arrive
	OutboundDelivered    int // of those, the pairs that arrived at least once
	Deliveries           int // outbound deliveries drained from the queues
	DistinctOutbound     int // distinct (message id, queue) pairs delivered
	DuplicatesDownstream int // deliveries beyond the first of one (message id, queue)
	ChangedIDs           int // distinct delivered ids that are not the deterministic id of a transition

	ReplayOrders  int64 // orders a fresh replay folded
	ReplayChanges int   // orders where the read model differs from the replay
	LifecycleLag  int64 // log positions the publisher's checkpoint is behind the head
	StatusDiffers int   // orders not in their scenario's final status (facts reordered by redelivery)

	PoisonOrders    int // orders the run made over-large (Load.Poison)
	ParkedLanes     int // order lanes the ledger parked
	PoisonUnparked  int // poison orders whose AccelByte lane is not parked
	ParkedNotPoison int // parked lanes that are not a poison order's AccelByte lane

	Problems []string // the first few details behind non-zero counts
}

// OK reports whether every must-be-zero count is zero and every expected
// outbound message arrived.
func (r Report) OK() bool { return len(r.Failures()) == 0 }

// Failures lists what broke, one line each.
func (r Report) Failures() []string {
	var f []string
	add := func(cond bool, format string, a ...any) {
		if cond {
			f = append(f, fmt.Sprintf(format, a...))
		}
	}
	add(r.LostFacts != 0, "%d inbound messages have no fact", r.LostFacts)
	add(r.DuplicateFacts != 0, "%d duplicate facts", r.DuplicateFacts)
	add(r.ForeignFacts != 0, "%d facts of no inbound message", r.ForeignFacts)
	add(r.Parked != 0, "%d messages parked in error/skipped/unroutable queues", r.Parked)
	add(r.OutboundDelivered != r.OutboundExpected, "%d of %d expected outbound (message, queue) pairs never arrived",
		r.OutboundExpected-r.OutboundDelivered, r.OutboundExpected)
	add(r.ChangedIDs != 0, "%d outbound ids are not the deterministic id of their transition", r.ChangedIDs)
	add(r.ReplayChanges != 0, "read model differs from a fresh replay for %d orders", r.ReplayChanges)
	add(r.LifecycleLag != 0, "lifecycle publisher %d positions behind the log", r.LifecycleLag)
	add(r.PoisonUnparked != 0, "%d poison orders not parked", r.PoisonUnparked)
	add(r.ParkedNotPoison != 0, "%d parked lanes of orders that are not poison", r.ParkedNotPoison)
	return f
}

func (r *Report) problem(format string, a ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}
}

// Faults is what a run injected.
type Faults struct {
	Kills           int             // kill -9 of the service
	BrokerRestarts  int             // rabbitmqctl stop_app / start_app
	ConnectionKills int             // rabbitmqctl close_all_connections on the vhost
	Recoveries      []time.Duration // from each fault until /readyz answered 200 again
}

// Rules and Outbound are the service's defaults, which the chaos runs use.
var (
	Rules    = domain.DefaultRules()
	Outbound = domain.OutboundConfig{
		Namespace: "bookworm", Currency: domain.DefaultCurrency(), CurrencySymbol: "$", CurrencyType: "REAL",
		DecimalsAsStrings: true,
	}
)

// Verify checks a stopped ledger's data dir and drains the outbound queues
// of its vhost. It consumes the outbound messages: call it once.
func Verify(ctx context.Context, amqpURL, dataDir string, load Load) (Report, error) {
	r := Report{Orders: load.Orders, MessagesIn: len(load.IDs)}
	expected, err := checkStore(ctx, dataDir, load, &r)
	if err != nil {
		return r, err
	}
	if err := checkQueues(ctx, amqpURL, expected, &r); err != nil {
		return r, err
	}
	return r, nil
}

// checkStore counts facts per message id, derives the outbound messages
// the stored facts must have caused, and compares the read model with a
// fresh replay. It returns message id -> queues it must reach.
func checkStore(ctx context.Context, dataDir string, load Load, r *Report) (map[string][]string, error) {
	store, err := bolt.Open(filepath.Join(dataDir, "ledger.db"), bolt.Config{OpenTimeout: 15 * time.Second}, nil)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	expected, _, err := checkLog(ctx, store, load, r)
	if err != nil {
		return nil, err
	}
	if err := checkReadModel(ctx, store, dataDir, load, r); err != nil {
		return nil, err
	}
	return expected, nil
}

// checkLog counts the facts of log per message id and derives the
// outbound messages they must have caused (message id -> queues). The
// ledger's own bookkeeping streams of a shared log (checkpoints, parked
// lanes) are not facts: it returns their events apart.
func checkLog(ctx context.Context, log domain.EventLog, load Load, r *Report) (map[string][]string, logScan, error) {
	var scan logScan
	perID := map[string]int{}
	streams := map[string][]domain.RecordedEvent{}
	var after *domain.Position
	for {
		evs, err := log.ReadAll(ctx, after, 8192)
		if err != nil {
			return nil, scan, fmt.Errorf("read all: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if bookkeeping(e.Stream) {
				scan.books = append(scan.books, e)
				continue
			}
			scan.facts = append(scan.facts, e.Position)
			streams[e.Stream] = append(streams[e.Stream], e)
			md, err := codec.DecodeMetadata(e.Metadata)
			if err != nil {
				r.problem("%s@%d: metadata: %v", e.Stream, e.Revision, err)
			}
			switch {
			case md.Origin == "ledger":
				r.LedgerFacts++
			case load.IDs[md.MessageID] == "":
				r.ForeignFacts++
				r.problem("fact %s@%d (%s) has message id %q, which the run never sent", e.Stream, e.Revision, e.Type, md.MessageID)
			default:
				perID[md.MessageID]++
				if want := domain.StreamName(load.IDs[md.MessageID]); want != e.Stream {
					r.problem("message %s stored in %s, want %s", md.MessageID, e.Stream, want)
					r.ForeignFacts++
				}
			}
		}
		last := evs[len(evs)-1].Position
		after = &last
	}
	ids := make([]string, 0, len(load.IDs))
	for id := range load.IDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := perID[id]
		r.FactsStored += n
		switch {
		case n == 0:
			r.LostFacts++
			r.problem("message %s (order %s): no fact", id, load.IDs[id])
		case n > 1:
			r.DuplicateFacts += n - 1
			r.problem("message %s (order %s): %d facts", id, load.IDs[id], n)
		}
	}

	queuesOf := map[string][]string{}
	for q, ex := range OutboundQueues() {
		queuesOf[ex] = append(queuesOf[ex], q)
	}
	expected := map[string][]string{}
	for stream, evs := range streams {
		if !strings.HasPrefix(stream, domain.StreamPrefix) {
			continue
		}
		rep := projections.AuditEvents(Rules, Outbound, stream, evs)
		for _, e := range rep.Entries {
			if e.Error != "" {
				r.problem("%s@%d: stored fact undecodable: %s", stream, e.Revision, e.Error)
			}
			for _, o := range e.Outbound {
				expected[o.MessageID] = queuesOf[o.Exchange]
			}
		}
		if sc, ok := load.Scenario[rep.OrderID]; ok && string(rep.Final.Status) != traffic.FinalStatus[sc] {
			r.StatusDiffers++
		}
	}
	return expected, scan, nil
}

// logScan is what checkLog saw besides the facts' message ids.
type logScan struct {
	facts []domain.Position      // of every event outside the bookkeeping streams, in log order
	books []domain.RecordedEvent // the bookkeeping streams' events, in log order
}

// bookkeeping reports whether stream is one the ledger keeps for itself in
// a shared log: a projection's checkpoint, the parked lanes or the seals.
func bookkeeping(stream string) bool {
	return strings.HasPrefix(stream, projections.CheckpointStream("")) || stream == projections.ParkedStream ||
		stream == domain.SealStream
}

// checkReadModel compares the read model with a fresh replay, the parked
// lanes with the poison set, and the lifecycle checkpoint with the head.
func checkReadModel(ctx context.Context, store *bolt.Log, dataDir string, load Load, r *Report) error {
	rm, err := bolt.OpenReadModel(filepath.Join(dataDir, "readmodel.db"))
	if err != nil {
		return fmt.Errorf("open read model: %w", err)
	}
	defer rm.Close()
	lanes, err := rm.ListParked(ctx)
	if err != nil {
		return fmt.Errorf("parked lanes: %w", err)
	}
	checkParked(lanes, load, r)
	res, err := projections.Replay(ctx, store, projections.ReplayOptions{Rules: Rules, Current: rm})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	r.ReplayOrders, r.ReplayChanges = res.Orders, len(res.Changes)
	for i, c := range res.Changes {
		if i == 5 {
			break
		}
		before := "absent"
		if c.Before != nil {
			before = fmt.Sprintf("%s net %d", c.Before.Status, c.Before.Money.Net)
		}
		r.problem("read model %s: %s, replay: %s net %d", c.OrderID, before, c.After.Status, c.After.Money.Net)
	}
	if head, ok, err := store.Head(ctx); err != nil {
		return fmt.Errorf("head: %w", err)
	} else if ok {
		cp, err := rm.Checkpoint(ctx, projections.LifecycleName)
		if err != nil {
			return fmt.Errorf("lifecycle checkpoint: %w", err)
		}
		r.LifecycleLag = int64(head.Commit) + 1
		if cp != nil {
			r.LifecycleLag = int64(head.Commit) - int64(cp.Commit)
		}
	}
	return nil
}

// VerifyShared is Verify for several instances on one shared event log
// (the HA run): the facts are read from log, every instance's read model
// (dataDirs) is compared with a fresh replay of it, and the parked lanes
// and the lifecycle checkpoint are the shared ones. The instances must be
// stopped. It consumes the outbound messages: call it once.
func VerifyShared(ctx context.Context, amqpURL string, log domain.EventLog, dataDirs []string, load Load) (Report, error) {
	r := Report{Orders: load.Orders, MessagesIn: len(load.IDs)}
	expected, scan, err := checkLog(ctx, log, load, &r)
	if err != nil {
		return r, err
	}
	if err := checkShared(ctx, log, scan, dataDirs, load, &r); err != nil {
		return r, err
	}
	if err := checkQueues(ctx, amqpURL, expected, &r); err != nil {
		return r, err
	}
	return r, nil
}

// checkShared compares each instance's read model with a fresh replay of
// the shared log, the shared parked lanes with the poison set, and the
// shared lifecycle checkpoint with the last fact.
func checkShared(ctx context.Context, log domain.EventLog, scan logScan, dataDirs []string, load Load, r *Report) error {
	lanes, err := sharedParked(ctx, log)
	if err != nil {
		return fmt.Errorf("shared parked lanes: %w", err)
	}
	checkParked(lanes, load, r)
	for _, dir := range dataDirs {
		rm, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
		if err != nil {
			return fmt.Errorf("open read model of %s: %w", dir, err)
		}
		res, err := projections.Replay(ctx, log, projections.ReplayOptions{Rules: Rules, Current: rm})
		rm.Close()
		if err != nil {
			return fmt.Errorf("replay against %s: %w", dir, err)
		}
		r.ReplayOrders = max(r.ReplayOrders, res.Orders)
		r.ReplayChanges += len(res.Changes)
		for i, c := range res.Changes {
			if i == 3 {
				break
			}
			before := "absent"
			if c.Before != nil {
				before = fmt.Sprintf("%s net %d", c.Before.Status, c.Before.Money.Net)
			}
			r.problem("read model of %s, order %s: %s, replay: %s net %d", filepath.Base(dir), c.OrderID, before, c.After.Status, c.After.Money.Net)
		}
	}
	cp, err := lastCheckpoint(scan.books, projections.CheckpointStream(projections.LifecycleName))
	if err != nil {
		return err
	}
	r.LifecycleLag = sharedLag(scan.facts, cp)
	return nil
}

// lastCheckpoint decodes the position of the last event of a shared
// checkpoint stream (nil: absent or at the start).
func lastCheckpoint(books []domain.RecordedEvent, stream string) (*domain.Position, error) {
	var last *domain.RecordedEvent
	for i := range books {
		if books[i].Stream == stream {
			last = &books[i]
		}
	}
	if last == nil {
		return nil, nil
	}
	var body struct {
		Position *domain.Position `json:"position"`
	}
	if err := json.Unmarshal(last.Data, &body); err != nil {
		return nil, fmt.Errorf("%s@%d (%s): %w", stream, last.Revision, last.Type, err)
	}
	return body.Position, nil
}

// sharedLag counts the facts after the checkpoint cp (all of them when nil).
func sharedLag(facts []domain.Position, cp *domain.Position) int64 {
	var n int64
	for _, p := range facts {
		if cp == nil || cp.Less(p) {
			n++
		}
	}
	return n
}

// checkParked compares the parked lanes with the poison set: exactly each
// poison order's AccelByte lane, nothing else.
func checkParked(lanes []projections.Parked, load Load, r *Report) {
	r.PoisonOrders, r.ParkedLanes = len(load.Poison), len(lanes)
	parked := map[string]bool{}
	for _, p := range lanes {
		if !load.Poison[p.OrderID] || p.Kind != domain.KindAccelByte {
			r.ParkedNotPoison++
			r.problem("order %s parked (%s): %s: %s", p.OrderID, p.Kind, p.Reason, p.Detail)
			continue
		}
		parked[p.OrderID] = true
	}
	for id := range load.Poison {
		if !parked[id] {
			r.PoisonUnparked++
			r.problem("poison order %s is not parked", id)
		}
	}
}

// checkQueues drains every outbound queue and compares with expected.
func checkQueues(ctx context.Context, amqpURL string, expected map[string][]string, r *Report) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	for _, q := range []string{domain.ErrorQueue(LedgerQueue), domain.SkippedQueue(LedgerQueue), domain.UnroutableQueue} {
		n, err := ReadyCount(amqpURL, q)
		if err != nil {
			return err
		}
		if n > 0 {
			r.Parked += n
			r.problem("%d messages in %s", n, q)
		}
	}
	type key struct{ id, queue string }
	seen := map[key]int{}
	seenIDs := map[string]bool{}
	queues := make([]string, 0)
	for q := range OutboundQueues() {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	for _, q := range queues {
		ds, err := drain(ctx, conn, q)
		if err != nil {
			return err
		}
		for _, d := range ds {
			r.Deliveries++
			seen[key{d.MessageId, q}]++
			if !seenIDs[d.MessageId] {
				seenIDs[d.MessageId] = true
				if _, ok := expected[d.MessageId]; !ok {
					r.ChangedIDs++
					r.problem("delivered %s %s %s id %s: not the id of any transition the facts cause", q, d.Exchange, d.RoutingKey, d.MessageId)
				}
			}
		}
	}
	r.DistinctOutbound = len(seen)
	r.DuplicatesDownstream = r.Deliveries - len(seen)
	ids := make([]string, 0, len(expected))
	for id := range expected {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, q := range expected[id] {
			r.OutboundExpected++
			if seen[key{id, q}] > 0 {
				r.OutboundDelivered++
			} else {
				r.problem("outbound %s never reached %s", id, q)
			}
		}
	}
	return nil
}

// drain takes every message out of queue (nobody else consumes it).
func drain(ctx context.Context, conn *amqp.Connection, queue string) ([]amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", queue, err)
	}
	if q.Messages == 0 {
		return nil, nil
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		return nil, fmt.Errorf("qos: %w", err)
	}
	feed, err := ch.Consume(queue, "chaos-drain", false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	out := make([]amqp.Delivery, 0, q.Messages)
	for len(out) < q.Messages {
		select {
		case d, ok := <-feed:
			if !ok {
				return out, fmt.Errorf("drain %s: channel closed after %d of %d", queue, len(out), q.Messages)
			}
			if err := d.Ack(false); err != nil {
				return out, fmt.Errorf("ack: %w", err)
			}
			d.Body = nil // only the properties are compared
			out = append(out, d)
		case <-time.After(10 * time.Second):
			return out, fmt.Errorf("drain %s: stalled after %d of %d", queue, len(out), q.Messages)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// WriteTable prints the run's table.
func WriteTable(w io.Writer, load Load, f Faults, r Report) error {
	tw := newTable(w)
	writeRows(tw, load, f, r)
	return tw.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func must0(n int) string {
	if n == 0 {
		return "ok (must be 0)"
	}
	return "FAIL (must be 0)"
}

// writeRows writes the rows of WriteTable's table, the header first.
func writeRows(tw *tabwriter.Writer, load Load, f Faults, r Report) {
	row := func(name, value, note string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", name, value, note) }
	row("METRIC", "VALUE", "")
	row("load held", fmt.Sprintf("%d orders, %d msgs in %s = %.0f msgs/s", load.Orders, load.Messages,
		load.Elapsed.Round(100*time.Millisecond), load.Rate()), fmt.Sprintf("%d publishes, %d loader reconnects", load.Publishes, load.Reconnects))
	var rec time.Duration
	for _, d := range f.Recoveries {
		rec = max(rec, d)
	}
	row("faults injected", fmt.Sprintf("%d kill -9, %d broker restarts, %d connection kills", f.Kills, f.BrokerRestarts, f.ConnectionKills),
		fmt.Sprintf("slowest recovery to readyz 200: %s", rec.Round(100*time.Millisecond)))
	row("messages in", fmt.Sprint(r.MessagesIn), "distinct inbound message ids confirmed by the broker")
	row("facts stored", fmt.Sprint(r.FactsStored), fmt.Sprintf("+%d made by the ledger", r.LedgerFacts))
	row("duplicate facts", fmt.Sprint(r.DuplicateFacts), must0(r.DuplicateFacts))
	row("lost facts", fmt.Sprint(r.LostFacts), must0(r.LostFacts))
	row("foreign facts", fmt.Sprint(r.ForeignFacts), must0(r.ForeignFacts))
	row("parked inbound", fmt.Sprint(r.Parked), must0(r.Parked))
	note := "ok"
	if r.OutboundDelivered != r.OutboundExpected {
		note = "FAIL (must be all)"
	}
	row("outbound delivered", fmt.Sprintf("%d / %d", r.OutboundDelivered, r.OutboundExpected), note+", (message id, queue) pairs the stored facts cause")
	row("duplicates downstream (same id)", fmt.Sprint(r.DuplicatesDownstream), fmt.Sprintf("%d deliveries of %d distinct (id, queue)", r.Deliveries, r.DistinctOutbound))
	row("outbound ids with a changed id", fmt.Sprint(r.ChangedIDs), must0(r.ChangedIDs))
	row("read model vs fresh replay", fmt.Sprintf("%d of %d orders differ", r.ReplayChanges, r.ReplayOrders), must0(r.ReplayChanges))
	row("lifecycle checkpoint lag", fmt.Sprint(r.LifecycleLag), must0(int(r.LifecycleLag)))
	if r.PoisonOrders > 0 || r.ParkedLanes > 0 {
		note := "ok"
		if r.PoisonUnparked != 0 {
			note = "FAIL (must be all)"
		}
		row("poison orders parked", fmt.Sprintf("%d / %d", r.PoisonOrders-r.PoisonUnparked, r.PoisonOrders), note+", AccelByte lane of each over-large order")
		row("parked, not poison", fmt.Sprint(r.ParkedNotPoison), must0(r.ParkedNotPoison))
	}
	row("orders not in scenario status", fmt.Sprint(r.StatusDiffers), "informational: redelivery may reorder an order's facts")
}
