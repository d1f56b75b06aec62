package projections

import (
	"context"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// Publisher sends outbound messages and returns once the broker has
// confirmed every one of them. An error means some may not have arrived;
// the caller publishes the same messages (same ids) again.
type Publisher interface {
	Publish(ctx context.Context, msgs []domain.Outbound) error
}

// Summary is one order's row in the read model.
type Summary struct {
	OrderID           string        `json:"orderId"`
	Stream            string        `json:"stream"`
	Revision          uint64        `json:"revision"` // last fact folded
	Status            domain.Status `json:"status"`
	PreviousStatus    domain.Status `json:"previousStatus,omitempty"`
	StatusReason      string        `json:"statusReason,omitempty"`
	Total             int64         `json:"total"`
	Money             domain.Totals `json:"money"`
	PlacementAttempts int           `json:"placementAttempts"`
	PlacementDeadline time.Time     `json:"placementDeadline,omitzero"`
	Held              int           `json:"held"`
	Ignored           int           `json:"ignored"`
	Flags             int           `json:"flags"`
	Facts             int           `json:"facts"`
	LastAt            time.Time     `json:"lastAt,omitzero"`
}

// Due is an order whose placement clock has run out.
type Due struct {
	OrderID  string
	Deadline time.Time
	Attempt  int // placement attempts made so far: the time-out's number
}

// ReadModel stores order summaries and projection checkpoints. Writes of
// summaries and the checkpoint that covers them are atomic, so the model
// never claims a position it has not folded.
type ReadModel interface {
	// Apply stores the summaries and sets checkpoint name to pos, in one
	// transaction.
	Apply(ctx context.Context, name string, pos domain.Position, rows []Summary) error
	// Checkpoint returns the stored position for name, or nil.
	Checkpoint(ctx context.Context, name string) (*domain.Position, error)
	// SaveCheckpoint stores pos for name.
	SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error
	// Summary returns one order's row; ok is false when absent.
	Summary(ctx context.Context, orderID string) (Summary, bool, error)
	// Summaries lists rows in order-id order after the id after.
	Summaries(ctx context.Context, after string, limit int) ([]Summary, error)
	// Due lists orders in INIT whose placement deadline is at or before now.
	Due(ctx context.Context, now time.Time, limit int) ([]Due, error)
}

// Clock tells the time. Projections take it as a dependency so tests and
// replays control it; the domain never reads a clock.
type Clock func() time.Time
