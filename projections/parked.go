package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Parked is one lane of one order (its AccelByte events, or its BookWorm
// commands) whose messages are set aside: the first could not be built, or
// the broker refused it for good. Every later message of the lane waits
// behind it (order within an order is kept); the order's other lane and
// every other order go on.
type Parked struct {
	OrderID string              `json:"orderId"`
	Stream  string              `json:"stream"`
	Kind    domain.OutboundKind `json:"kind"`
	// FromRevision is the stream revision of the fact whose message was
	// set aside first: a retry folds the stream and publishes the lane's
	// messages from there on (same deterministic ids, so the ones that did
	// go out are harmless duplicates).
	FromRevision uint64 `json:"fromRevision"`
	Message      string `json:"message"`   // the first held message's name ("orderCreated")
	MessageID    string `json:"messageId"` // and its id
	// Reason is a short stable phrase (a metric label): one of the
	// Reason* constants.
	Reason   string    `json:"reason"`
	Detail   string    `json:"detail"`   // the error, for a person
	ParkedAt time.Time `json:"parkedAt"` // first parked (the projection's clock)
	Retries  int       `json:"retries"`  // retries that parked it again
}

// Reasons an order's lane is parked.
const (
	ReasonUnbuildable = "cannot be built"       // e.g. a total outside the AccelByte int32 price
	ReasonRefused     = "refused by the broker" // returned as unroutable, exchange missing
	ReasonNacked      = "nacked by the broker"  // nacked on every attempt
)

// ParkStore keeps the parked lanes durably. Park must be durable before the
// lifecycle checkpoint moves past the fact that parked the lane.
type ParkStore interface {
	// Park stores lanes, keyed by (OrderID, Kind), replacing what is
	// stored for them (the lifecycle merges: see Parked.merge).
	Park(ctx context.Context, lanes []Parked) error
	// Unpark removes a lane; absent lanes are not an error.
	Unpark(ctx context.Context, orderID string, kind domain.OutboundKind) error
	// ListParked lists every parked lane, by order id then kind.
	ListParked(ctx context.Context) ([]Parked, error)
}

// RetryResult is what a retry of one parked lane did. One result per lane
// retried; an order id asked for with no parked lane gets one result with
// an empty Kind and Err matching ErrNotParked. A lane whose retry could
// not be tried or finished (the stream could not be read, the broker is
// unavailable, ctx ended) keeps its park as it was and says why in Err.
type RetryResult struct {
	OrderID   string              `json:"orderId"`
	Kind      domain.OutboundKind `json:"kind,omitempty"`
	Published int                 `json:"published"` // messages published (confirmed)
	Unparked  bool                `json:"unparked"`  // false: still parked, see Parked and Error
	Parked    *Parked             `json:"parked,omitempty"`
	Err       error               `json:"-"`
	Error     string              `json:"error,omitempty"` // Err's text
}

// ErrNotParked is returned by a retry of an order with no parked lane.
var ErrNotParked = errors.New("order is not parked")

// ParkObserver is what an Observer may also implement to hear of parks
// (for a metric and a log line); the lifecycle checks for it.
type ParkObserver interface {
	// Parked reports a lane parked (or parked again by a failed retry).
	Parked(name string, p Parked)
	// Unparked reports a lane a retry published and released.
	Unparked(name string, p Parked)
}

func (NopObserver) Parked(string, Parked)   {}
func (NopObserver) Unparked(string, Parked) {}

// ParkedOf lists the parked lanes of one order (for the audit:
// AuditReport.Parked).
func ParkedOf(ctx context.Context, ps ParkStore, orderID string) ([]Parked, error) {
	all, err := ps.ListParked(ctx)
	if err != nil {
		return nil, fmt.Errorf("parked lanes of %s: %w", orderID, err)
	}
	var out []Parked
	for _, p := range all {
		if p.OrderID == orderID {
			out = append(out, p)
		}
	}
	return out, nil
}

// lane is one order's messages of one kind, the unit that is parked.
type lane struct {
	order string
	kind  domain.OutboundKind
}

func (p Parked) lane() lane { return lane{p.OrderID, p.Kind} }

// holds says whether the park holds back the lane's message caused by the
// fact at rev: the one that parked it and every later one.
func (p Parked) holds(rev uint64) bool { return rev >= p.FromRevision }

// merge is what a lane parked again becomes: the earlier message stays
// the first held (its revision, name, id and reason); the first ParkedAt
// and the highest Retries are kept.
func (p Parked) merge(next Parked) Parked {
	out := p
	if next.FromRevision < p.FromRevision {
		out = next
	}
	out.ParkedAt = p.ParkedAt
	if next.ParkedAt.Before(out.ParkedAt) {
		out.ParkedAt = next.ParkedAt
	}
	out.Retries = max(p.Retries, next.Retries)
	return out
}
