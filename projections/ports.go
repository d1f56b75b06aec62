package projections

import (
	"context"
	"errors"
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
	CreatedAt         time.Time     `json:"createdAt,omitzero"` // the checkout's time
	// Days is Money split by the UTC day the facts moved it (domain.State.Days).
	Days []domain.DayMove `json:"days,omitempty"`
	// Books are the order's account balances (domain.State.Books).
	Books domain.Books `json:"books"`
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

// OrderSort orders a listing of the read model.
type OrderSort string

// Listing orders.
const (
	SortByID       OrderSort = "id"       // order id, ascending
	SortByActivity OrderSort = "activity" // last fact time, newest first
	SortByAmount   OrderSort = "amount"   // order total, largest first
)

// ErrInvalidQuery is matched (errors.Is) when an OrderIndex question cannot
// be answered as asked: an unknown sort or status, a cursor from another
// listing, a malformed day.
var ErrInvalidQuery = errors.New("invalid query")

// OrderQuery selects a page of orders.
type OrderQuery struct {
	Status domain.Status // only orders in this status; "" for all
	Prefix string        // only order ids starting with this (lower case)
	Sort   OrderSort     // "" is SortByID
	Cursor string        // the previous page's Next; "" for the first page
	Limit  int           // <= 0: 50
}

// OrderPage is one page of a listing; Next is "" on the last page and is
// opaque to callers (pass it back as OrderQuery.Cursor with the same
// Status, Prefix and Sort).
type OrderPage struct {
	Orders []Summary `json:"orders"`
	Next   string    `json:"next,omitempty"`
}

// DayTotals is what moved on one UTC day: the money of the facts dated
// that day and the orders checked out that day.
type DayTotals struct {
	Day    string        `json:"day"` // 2006-01-02, UTC
	Orders int           `json:"orders"`
	Money  domain.Totals `json:"money"`
}

// Overview is the whole read model in a few figures.
type Overview struct {
	Orders   int                   `json:"orders"`
	ByStatus map[domain.Status]int `json:"byStatus"`
	Money    domain.Totals         `json:"money"` // every order's totals summed
	Books    domain.Books          `json:"books"` // every order's account balances summed
	// BooksStale: the rows were written before they carried books, so
	// Books is not their sum (ErrBooksStale until a replay).
	BooksStale bool `json:"booksStale,omitempty"`
}

// OrderIndex answers the stream browser's questions from indexes the read
// model keeps up to date with every write, so no question scans it.
type OrderIndex interface {
	Orders(ctx context.Context, q OrderQuery) (OrderPage, error)
	Overview(ctx context.Context) (Overview, error)
	// Days lists the days from..to inclusive ("2006-01-02", UTC; "" leaves
	// that end open) on which something moved, oldest first.
	Days(ctx context.Context, from, to string) ([]DayTotals, error)
}

// DayStatusTotals is one (day, status) cell of the books: the orders
// checked out that day that are now in Status, and the money moved that
// day by orders now in Status.
type DayStatusTotals struct {
	Day    string        `json:"day"` // 2006-01-02, UTC
	Status domain.Status `json:"status"`
	Orders int           `json:"orders"`
	Money  domain.Totals `json:"money"`
}

// BooksIndex answers the period reports from an aggregate the read model
// keeps with every write.
type BooksIndex interface {
	// DayStatus lists the (day, status) cells of the days from..to
	// inclusive ("" leaves that end open), oldest day first, statuses in
	// lifecycle order within a day.
	DayStatus(ctx context.Context, from, to string) ([]DayStatusTotals, error)
}
