package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// The journal: the postings themselves, one line per posting, as finance
// exports them. Each order's stream is folded on its own (a stream's facts
// in memory at a time, besides the lines kept), each fact's postings
// (domain.Outcome.Postings) dated by the fact's business time.

// journalPage is how many streams Journal lists at a time.
const journalPage = 500

// JournalQuery selects journal lines.
type JournalQuery struct {
	// From, To: days (domain.DayFormat) of the fact's business time
	// (Fact.At, UTC), inclusive; "" leaves that end open.
	From, To string
	OrderID  string    // "" every order
	AsOf     time.Time // zero: every fact recorded; else those recorded by then
}

// JournalLine is one posting with the fact that made it.
type JournalLine struct {
	At       time.Time      `json:"at"`       // the fact's business time
	Recorded time.Time      `json:"recorded"` // when the store wrote the fact
	Position string         `json:"position"`
	OrderID  string         `json:"orderId"`
	Revision uint64         `json:"revision"`
	EventID  string         `json:"eventId"`
	Fact     string         `json:"fact"` // the fact's type
	Entry    domain.Entry   `json:"entry"`
	Account  domain.Account `json:"account"`
	Side     domain.Side    `json:"side"`
	Amount   int64          `json:"amount"` // minor units, > 0
}

// Validate checks the days and the order id; errors match ErrInvalidQuery.
func (q JournalQuery) Validate() error {
	if err := (BooksQuery{From: q.From, To: q.To}).Validate(); err != nil {
		return err
	}
	if q.OrderID != "" {
		if _, ok := domain.CanonicalUUID(q.OrderID); !ok {
			return fmt.Errorf("%w: order %q: want an order id (a UUID)", ErrInvalidQuery, clipAsOf(q.OrderID))
		}
	}
	return nil
}

// journalLine is a line with its log position, which sorts (the text
// form does not).
type journalLine struct {
	JournalLine
	pos domain.Position
}

// Journal lists the postings of the facts recorded by q.AsOf (zero: all)
// whose business day is within q.From..q.To, folded with rules, sorted by
// business time, then log position, then the order of the fact's
// postings. With q.OrderID only that order's stream is read: an order
// with no facts at all is domain.ErrStreamNotFound.
func Journal(ctx context.Context, log domain.EventLog, rules domain.Rules, q JournalQuery) ([]JournalLine, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var lines []journalLine
	if q.OrderID != "" {
		var err error
		if lines, err = journalOfStream(ctx, log, rules, q, domain.StreamName(q.OrderID), lines); err != nil {
			return nil, err
		}
	} else {
		after := ""
		for {
			infos, err := log.ListStreams(ctx, domain.StreamPrefix, after, journalPage)
			if err != nil {
				return nil, fmt.Errorf("journal: list streams after %q: %w", after, err)
			}
			for _, in := range infos {
				lines, err = journalOfStream(ctx, log, rules, q, in.Name, lines)
				if errors.Is(err, domain.ErrStreamNotFound) {
					continue // listed, then gone: nothing to post
				}
				if err != nil {
					return nil, err
				}
			}
			if len(infos) < journalPage {
				break
			}
			after = infos[len(infos)-1].Name
		}
	}
	// Stable: a fact's postings keep their order.
	slices.SortStableFunc(lines, func(a, b journalLine) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.pos.Commit, b.pos.Commit), cmp.Compare(a.pos.Prepare, b.pos.Prepare))
	})
	out := make([]JournalLine, len(lines))
	for i := range lines {
		out[i] = lines[i].JournalLine
	}
	return out, nil
}

// journalOfStream folds one stream's facts recorded by q.AsOf and appends
// the lines q keeps. Facts that cannot be decoded post nothing (the audit
// names them).
func journalOfStream(ctx context.Context, log domain.EventLog, rules domain.Rules, q JournalQuery, stream string, lines []journalLine) ([]journalLine, error) {
	evs, err := log.ReadStream(ctx, stream, 0, domain.Forwards, 0)
	if err != nil {
		return lines, fmt.Errorf("journal: %s: %w", stream, err)
	}
	id, _ := domain.OrderIDFromStream(stream)
	var s domain.State
	for _, re := range evs {
		if !RecordedBy(re, q.AsOf) {
			continue
		}
		ev, err := toEventWithMeta(re)
		if err != nil {
			continue
		}
		next, oc := domain.Evolve(rules, s, ev)
		s = next
		if len(oc.Postings) == 0 {
			continue
		}
		day := ev.Fact.At.UTC().Format(domain.DayFormat)
		if (q.From != "" && day < q.From) || (q.To != "" && day > q.To) {
			continue
		}
		for _, p := range oc.Postings {
			lines = append(lines, journalLine{pos: re.Position, JournalLine: JournalLine{
				At: ev.Fact.At.UTC(), Recorded: re.Created.UTC(), Position: re.Position.String(), OrderID: id,
				Revision: re.Revision, EventID: re.ID, Fact: re.Type,
				Entry: p.Entry, Account: p.Account, Side: p.Side, Amount: p.Amount,
			}})
		}
	}
	return lines, nil
}

// JournalReport is a journal listing with what was asked and its sums:
// the debits equal the credits, as every fact's postings balance.
type JournalReport struct {
	Currency string        `json:"currency"`
	From     string        `json:"from,omitempty"`
	To       string        `json:"to,omitempty"`
	OrderID  string        `json:"orderId,omitempty"`
	AsOf     time.Time     `json:"asOf,omitzero"`
	Lines    []JournalLine `json:"lines"`
	Debits   int64         `json:"debits"`
	Credits  int64         `json:"credits"`
}

// JournalReportOf is Journal with the currency and the sums.
func JournalReportOf(ctx context.Context, log domain.EventLog, rules domain.Rules, q JournalQuery) (JournalReport, error) {
	lines, err := Journal(ctx, log, rules, q)
	if err != nil {
		return JournalReport{}, err
	}
	rep := JournalReport{Currency: rulesCurrency(rules).Code, From: q.From, To: q.To, AsOf: q.AsOf, Lines: lines}
	rep.OrderID, _ = domain.CanonicalUUID(q.OrderID)
	if rep.Lines == nil {
		rep.Lines = []JournalLine{}
	}
	for _, l := range lines {
		if l.Side == domain.Credit {
			rep.Credits += l.Amount
		} else {
			rep.Debits += l.Amount
		}
	}
	return rep, nil
}
