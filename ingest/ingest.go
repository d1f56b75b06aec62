// Package ingest is the ledger's way in: it turns an inbound message into a
// fact, appends the fact to its order's stream and classifies the outcome
// once, so that the broker adapter only has to map a class onto an ack, a
// dead letter or a wait.
//
// The three failure classes, each decided once:
//   - invalid input (decoding, validation, an event the store calls
//     invalid): Invalid, dead-lettered at once and never appended;
//   - permanent for one order: Refused, when the store will never take
//     this order's stream again (an EventStoreDB stream that was
//     tombstoned: ErrStreamNotFound on an append with any revision). The
//     message is dead-lettered with reason "stream deleted" so an operator
//     can look at it and re-drive it; every other order goes on;
//   - transient: Transient, everything else the store reports (unavailable,
//     closing, a failed commit such as a full disk, access denied, an error
//     it did not classify). The broker adapter holds such messages and
//     tries again until they are stored, however long that takes: a real
//     financial fact is never dead-lettered because the store was down.
//     An unknown error is transient on purpose: waiting is visible (the
//     ingest pause shows on /readyz) and loses nothing, a dead letter would
//     turn a fact into an operator's chore.
//
// Within a batch, once a message of an order fails transiently, the later
// messages of that order are not tried: they are Transient too, so the
// order's facts are appended in arrival order when the store is back.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// Message is an inbound message as its envelope described it.
type Message struct {
	MessageID      string // the envelope's identity: the fact's event id derives from it
	CorrelationID  string
	ConversationID string
	InitiatorID    string
	Type           string // type name, bare or namespaced ("BookWorm.Contracts:UserCheckedOutIntegrationEvent")
	Envelope       string // domain.Envelope*
	Exchange       string // the exchange it came through
	Body           []byte // the message object
	SentAt         time.Time
	Redelivered    bool
}

// Prepared is a message turned into the event to append.
type Prepared struct {
	Stream string
	Fact   domain.Fact
	Event  domain.EventData
}

// ErrNotAFact is matched (with domain.ErrInvalidFact) when a message's type
// is not one of the ledger's inbound facts.
var ErrNotAFact = errors.New("not a ledger fact")

// Prepare decodes and validates m and builds its stored event. received is
// when it arrived: the fact's time when neither the envelope nor the body
// gives one. Errors are invalid input (errors.Is domain.ErrInvalidFact).
func Prepare(m Message, cur domain.Currency, received time.Time) (Prepared, error) {
	ft, ok := domain.LookupFactType(m.Type)
	if !ok || !ft.Inbound() {
		return Prepared{}, &domain.ValidationError{Field: "type", Problem: fmt.Sprintf("message type %q is not a ledger fact", m.Type), Err: ErrNotAFact}
	}
	received = received.UTC()
	f, err := codec.DecodeMessageAt(ft, m.Body, cur, m.SentAt, received)
	if err != nil {
		return Prepared{}, fmt.Errorf("%s %s: %w", ft, m.MessageID, err)
	}
	corr := m.CorrelationID
	if corr == "" {
		corr = f.OrderID
	}
	return FactEvent(f, cur, domain.Metadata{
		CorrelationID: corr, SentCorrelationID: m.CorrelationID, CausationID: m.MessageID, MessageID: m.MessageID,
		ConversationID: m.ConversationID, Envelope: m.Envelope, Exchange: m.Exchange,
		ReceivedAt: received, Redelivered: m.Redelivered,
	})
}

// FactEvent is the stored event of a fact that arrived as the message
// meta.MessageID: its event id derives from that identity, so a
// redelivered message maps to the same event.
func FactEvent(f domain.Fact, cur domain.Currency, meta domain.Metadata) (Prepared, error) {
	data, err := codec.EncodeFact(f, cur)
	if err != nil {
		return Prepared{}, fmt.Errorf("encode %s %s: %w", f.Type, meta.MessageID, err)
	}
	mb, err := codec.EncodeMetadata(meta)
	if err != nil {
		return Prepared{}, fmt.Errorf("encode metadata of %s: %w", meta.MessageID, err)
	}
	return Prepared{
		Stream: domain.StreamName(f.OrderID),
		Fact:   f,
		Event:  domain.EventData{ID: domain.FactEventID(meta.MessageID), Type: string(f.Type), Data: data, Metadata: mb},
	}, nil
}

// Class is what became of a message: the one classification the broker
// adapter acts on.
type Class uint8

// Classes.
const (
	// Stored: the fact is durably appended; ack.
	Stored Class = iota
	// Duplicate: the fact was already stored (a redelivery); ack.
	Duplicate
	// Invalid: the message can never become a fact; dead-letter it at once,
	// never append it, never retry it.
	Invalid
	// Transient: the store is unavailable or closing; deliver it again
	// later (the deterministic event id makes the retry harmless).
	Transient
	// Refused: the store will never take this order's stream (it was
	// deleted for good): permanent for this one order; dead-letter it,
	// go on with the others.
	Refused
)

func (c Class) String() string {
	switch c {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Invalid:
		return "invalid"
	case Transient:
		return "transient"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Outcome is the class of one message and, unless stored, why.
type Outcome struct {
	Class  Class
	Reason string // short, for headers and metric labels: "invalid message", "store unavailable"
	Err    error
}

// Outcome reasons.
const (
	ReasonInvalidMessage   = "invalid message"
	ReasonInvalidEvent     = "invalid event"
	ReasonStreamDeleted    = "stream deleted"
	ReasonStoreUnavailable = "store unavailable"
)

// Observer is told the class of every message handled.
type Observer interface {
	Ingested(c Class)
}

// DefaultParallel is how many streams a batch appends to at once: at
// least as many as a batch holds (rabbitmq.DefaultBatchSize is 128), so
// the store can commit a whole batch with one fsync rather than one per
// slice of it.
const DefaultParallel = 512

// Ingester appends the facts of batches of messages. It is safe for
// concurrent use.
type Ingester struct {
	Log      domain.EventLog
	Currency domain.Currency
	Now      func() time.Time // default time.Now
	Parallel int              // streams appended at once (default DefaultParallel)
	Observer Observer         // may be nil
}

// Handle validates every message, then appends facts stream by stream: in
// message order within a stream, many streams at once (so the store can
// commit them together). The outcomes are in the order of msgs.
func (in *Ingester) Handle(ctx context.Context, msgs []Message) []Outcome {
	now := in.Now
	if now == nil {
		now = time.Now
	}
	outcomes := make([]Outcome, len(msgs))
	type item struct {
		idx int
		p   Prepared
	}
	byStream := map[string][]item{}
	var streams []string
	for i, m := range msgs {
		p, err := Prepare(m, in.Currency, now())
		if err != nil {
			outcomes[i] = Outcome{Class: Invalid, Reason: ReasonInvalidMessage, Err: err}
			continue
		}
		if _, ok := byStream[p.Stream]; !ok {
			streams = append(streams, p.Stream)
		}
		byStream[p.Stream] = append(byStream[p.Stream], item{i, p})
	}
	limit := in.Parallel
	if limit <= 0 {
		limit = DefaultParallel
	}
	var g errgroup.Group
	g.SetLimit(limit)
	for _, st := range streams {
		items := byStream[st]
		g.Go(func() error {
			var blocked *Outcome
			for _, it := range items {
				if blocked != nil {
					// Keep the order's arrival order: nothing of it is
					// appended past a message that is still to be stored.
					outcomes[it.idx] = Outcome{Class: Transient, Reason: blocked.Reason,
						Err: fmt.Errorf("behind an earlier message of %s: %w", it.p.Stream, blocked.Err)}
					continue
				}
				outcomes[it.idx] = in.Append(ctx, it.p)
				if outcomes[it.idx].Class == Transient {
					blocked = &outcomes[it.idx]
				}
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines report through outcomes, never an error
	if in.Observer != nil {
		for _, o := range outcomes {
			in.Observer.Ingested(o.Class)
		}
	}
	return outcomes
}

// Append stores one prepared fact and classifies the result.
func (in *Ingester) Append(ctx context.Context, p Prepared) Outcome {
	res, err := in.Log.Append(ctx, p.Stream, domain.Any, p.Event)
	switch {
	case err == nil && res.Duplicate:
		return Outcome{Class: Duplicate}
	case err == nil:
		return Outcome{Class: Stored}
	case errors.Is(err, domain.ErrInvalidEvent):
		return Outcome{Class: Invalid, Reason: ReasonInvalidEvent, Err: fmt.Errorf("append to %s: %w", p.Stream, err)}
	case errors.Is(err, domain.ErrStreamNotFound):
		// An append with any revision creates a missing stream; only a
		// stream deleted for good refuses it, and will refuse it forever.
		return Outcome{Class: Refused, Reason: ReasonStreamDeleted, Err: fmt.Errorf("append to %s: %w", p.Stream, err)}
	default:
		return Outcome{Class: Transient, Reason: ReasonStoreUnavailable, Err: fmt.Errorf("append to %s: %w", p.Stream, err)}
	}
}
