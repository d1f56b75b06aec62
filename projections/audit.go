package projections

import (
	"context"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// AuditEntry is one fact of an order's history and what it did.
type AuditEntry struct {
	Revision      uint64             `json:"revision"`
	Position      string             `json:"position"`
	EventID       string             `json:"eventId"`
	Type          string             `json:"type"`
	At            time.Time          `json:"at,omitzero"`
	Recorded      time.Time          `json:"recorded,omitzero"`
	MessageID     string             `json:"messageId,omitempty"`
	CorrelationID string             `json:"correlationId,omitempty"`
	Envelope      string             `json:"envelope,omitempty"`
	Disposition   domain.Disposition `json:"disposition"`
	Reason        string             `json:"reason,omitempty"`
	StatusBefore  domain.Status      `json:"statusBefore"`
	StatusAfter   domain.Status      `json:"statusAfter"`
	Delta         domain.Totals      `json:"delta"`
	Totals        domain.Totals      `json:"totals"`
	// Postings are the fact's journal entry (domain.Outcome.Postings):
	// balanced, debits equal credits.
	Postings    []domain.Posting  `json:"postings,omitempty"`
	Flags       []string          `json:"flags,omitempty"`
	Transitions []AuditTransition `json:"transitions,omitempty"`
	Outbound    []AuditOutbound   `json:"outbound,omitempty"`
	Error       string            `json:"error,omitempty"` // the stored fact could not be decoded
}

// AuditTransition is a status change a fact caused.
type AuditTransition struct {
	From   domain.Status `json:"from"`
	To     domain.Status `json:"to"`
	Reason string        `json:"reason,omitempty"`
	Cause  string        `json:"causeEventId"`
}

// AuditOutbound is a message a transition caused, as downstream sees it.
type AuditOutbound struct {
	Kind       domain.OutboundKind `json:"kind"`
	Name       string              `json:"name"`
	Exchange   string              `json:"exchange"`
	RoutingKey string              `json:"routingKey,omitempty"`
	MessageID  string              `json:"messageId"`
}

// AuditReport is an order's full financial history.
type AuditReport struct {
	OrderID string       `json:"orderId"`
	Stream  string       `json:"stream"`
	Entries []AuditEntry `json:"entries"`
	Final   Summary      `json:"final"`
	// AsOf: only the facts recorded at or before it were folded (zero:
	// every fact; see AuditAsOf).
	AsOf    time.Time   `json:"asOf,omitzero"`
	Held    []AuditNote `json:"held,omitempty"`
	Ignored []AuditNote `json:"ignored,omitempty"`
	// Parked are the order's lanes the lifecycle publisher set aside.
	// Audit reads only the log: the caller fills it (ParkedOf).
	Parked []Parked `json:"parked,omitempty"`
}

// AuditNote names a fact still held, or ignored, and why.
type AuditNote struct {
	EventID  string `json:"eventId"`
	Revision uint64 `json:"revision"`
	Type     string `json:"type"`
	Reason   string `json:"reason,omitempty"`
}

// Audit folds an order's stream fact by fact and reports each step.
func Audit(ctx context.Context, log domain.EventLog, rules domain.Rules, out domain.OutboundConfig, orderID string) (AuditReport, error) {
	return AuditAsOf(ctx, log, rules, out, orderID, time.Time{})
}

// AuditEvents is Audit over events already read.
func AuditEvents(rules domain.Rules, out domain.OutboundConfig, stream string, evs []domain.RecordedEvent) AuditReport {
	id, _ := domain.OrderIDFromStream(stream)
	rep := AuditReport{OrderID: id, Stream: stream, Entries: make([]AuditEntry, 0, len(evs))}
	var s domain.State
	var last uint64
	for _, re := range evs {
		last = re.Revision
		meta, _ := codec.DecodeMetadata(re.Metadata)
		en := AuditEntry{
			Revision: re.Revision, Position: re.Position.String(), EventID: re.ID, Type: re.Type,
			Recorded: re.Created, MessageID: meta.MessageID, CorrelationID: meta.CorrelationID, Envelope: meta.Envelope,
			StatusBefore: s.Status, StatusAfter: s.Status, Totals: s.Money,
		}
		ev, err := toEventWithMeta(re)
		if err != nil {
			en.Error = err.Error()
			rep.Entries = append(rep.Entries, en)
			continue
		}
		en.At = ev.Fact.At
		before := s.Money
		next, oc := domain.Evolve(rules, s, ev)
		en.Disposition, en.Reason = oc.Disposition, oc.Reason
		en.Postings = oc.Postings
		en.StatusAfter, en.Totals = next.Status, next.Money
		en.Delta = domain.Totals{
			Captured:    next.Money.Captured - before.Captured,
			Refunded:    next.Money.Refunded - before.Refunded,
			ChargedBack: next.Money.ChargedBack - before.ChargedBack,
			Reversed:    next.Money.Reversed - before.Reversed,
			Net:         next.Money.Net - before.Net,
		}
		for _, fl := range oc.Flags {
			en.Flags = append(en.Flags, fl.Reason)
		}
		for _, t := range oc.Transitions {
			en.Transitions = append(en.Transitions, AuditTransition{From: t.From, To: t.To, Reason: t.Reason, Cause: t.Cause.ID})
			msgs, err := domain.Intents(out, stream, next, t)
			if err != nil {
				en.Error = err.Error()
			}
			for _, m := range msgs {
				en.Outbound = append(en.Outbound, AuditOutbound{Kind: m.Kind, Name: m.Name, Exchange: m.Exchange, RoutingKey: m.RoutingKey, MessageID: m.MessageID})
			}
		}
		s = next
		rep.Entries = append(rep.Entries, en)
	}
	for _, h := range s.Held {
		rep.Held = append(rep.Held, AuditNote{EventID: h.ID, Revision: h.Revision, Type: string(h.Fact.Type), Reason: "waiting for a prerequisite"})
	}
	for _, ig := range s.Ignored {
		rep.Ignored = append(rep.Ignored, AuditNote{EventID: ig.Event.ID, Revision: ig.Event.Revision, Type: string(ig.Event.Fact.Type), Reason: ig.Reason})
	}
	rep.Final = SummaryOf(stream, last, len(evs), s)
	return rep
}
