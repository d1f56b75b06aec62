package projections

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/bookworm-ledger/ledger/domain"
)

// As of a moment: what the ledger knew then is the facts the store had
// recorded by that time (RecordedEvent.Created), folded with today's rules.
// So "as reported then" and "as corrected after a restatement" can be set
// side by side: the restatement's fact was recorded after the first answer.

// AsOfDayLayout is the date form ParseAsOf takes for "the end of that day".
const AsOfDayLayout = domain.DayFormat

// asOfHint says what ParseAsOf takes; the CLI's and the API's messages
// share it.
const asOfHint = "want an RFC 3339 time such as 2025-11-20T15:04:05Z, or a date such as 2025-11-20 (the end of that UTC day)"

// ParseAsOf reads a moment: an RFC 3339 time (any offset; returned in UTC)
// or a date 2006-01-02, meaning the end of that UTC day (its last
// nanosecond). "" is the zero time: no as-of, everything recorded. Errors
// match ErrInvalidQuery; their text names the value, not the flag or
// parameter, which the caller adds.
func ParseAsOf(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) == len(AsOfDayLayout) {
		d, err := time.Parse(AsOfDayLayout, s)
		if err != nil {
			return time.Time{}, asOfError(s)
		}
		return d.AddDate(0, 0, 1).Add(-time.Nanosecond), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, asOfError(s)
	}
	return t.UTC(), nil
}

// asOfError is a value ParseAsOf cannot read.
type asOfError string

func (e asOfError) Error() string {
	return fmt.Sprintf("%q is not a moment: %s", clipAsOf(string(e)), asOfHint)
}

// Is makes it an ErrInvalidQuery without that text in the message.
func (asOfError) Is(target error) bool { return target == ErrInvalidQuery }

// clipAsOf keeps an echoed value short.
func clipAsOf(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// RecordedBy reports whether e was recorded at or before asOf (the zero
// asOf: always).
func RecordedBy(e domain.RecordedEvent, asOf time.Time) bool {
	return asOf.IsZero() || !e.Created.After(asOf)
}

// AuditAsOf is Audit over the facts of the order recorded at or before
// asOf (zero: all of them). An order with no fact recorded by then is
// domain.ErrStreamNotFound, as one with none at all.
func AuditAsOf(ctx context.Context, log domain.EventLog, rules domain.Rules, out domain.OutboundConfig, orderID string, asOf time.Time) (AuditReport, error) {
	stream := domain.StreamName(orderID)
	evs, err := log.ReadStream(ctx, stream, 0, domain.Forwards, 0)
	if err != nil {
		return AuditReport{}, fmt.Errorf("audit %s: %w", stream, err)
	}
	if !asOf.IsZero() {
		kept := evs[:0:0]
		for _, e := range evs {
			if RecordedBy(e, asOf) {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			return AuditReport{}, fmt.Errorf("audit %s as of %s: no fact recorded by then: %w",
				stream, asOf.Format(time.RFC3339Nano), domain.ErrStreamNotFound)
		}
		evs = kept
	}
	rep := AuditEvents(rules, out, stream, evs)
	rep.AsOf = asOf
	return rep, nil
}
