package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// The books' reports: period totals by status and the trial balance, from
// the read model's aggregates (now) or from a fold of the facts recorded up
// to a moment (as of). Both paths build the same rows from the same cells
// (DayStatusTotals), so "now" and "as of now" agree by construction.

// ErrBooksStale is matched (errors.Is) when the read model was written
// before its rows carried the books, so its account balances are not the
// sum of the orders'.
var ErrBooksStale = errors.New("the read model predates the books: run `ledger replay`")

// Period is the length of a report's rows.
type Period string

// Periods.
const (
	PeriodDay   Period = "day"
	PeriodMonth Period = "month"
)

// TotalPeriod is the Period label of a report's total row.
const TotalPeriod = "total"

// BooksQuery selects a period report.
type BooksQuery struct {
	From, To string    // domain.DayFormat, inclusive; "" leaves that end open
	By       Period    // "" is PeriodDay
	AsOf     time.Time // zero: now (the read model); else the facts recorded up to it
}

// BooksRow is one line of a report: a period and status (Status "" in
// Periods and Total: every status).
type BooksRow struct {
	Period string        `json:"period"`
	Status domain.Status `json:"status,omitempty"`
	Orders int           `json:"orders"` // orders checked out in the period, now in Status
	Money  domain.Totals `json:"money"`  // money moved in the period by orders now in Status
}

// BooksReport is a period report.
type BooksReport struct {
	Currency string    `json:"currency"`
	From     string    `json:"from,omitempty"`
	To       string    `json:"to,omitempty"`
	By       Period    `json:"by"`
	AsOf     time.Time `json:"asOf,omitzero"`
	// Rows: period ascending, then status in domain.Statuses() order.
	Rows    []BooksRow `json:"rows"`
	Periods []BooksRow `json:"periods"` // one per period, every status
	Total   BooksRow   `json:"total"`
}

// AccountLine is one account of a trial balance: its balance on the side
// it sits on (the other side zero).
type AccountLine struct {
	Account domain.Account `json:"account"`
	Code    string         `json:"code"`
	Title   string         `json:"title"`
	Normal  domain.Side    `json:"normal"`
	Debit   int64          `json:"debit"`
	Credit  int64          `json:"credit"`
}

// TrialBalance lists every account's balance; the books balance when the
// debits equal the credits.
type TrialBalance struct {
	Currency string        `json:"currency"`
	AsOf     time.Time     `json:"asOf,omitzero"`
	Orders   int           `json:"orders"`
	Accounts []AccountLine `json:"accounts"`
	Debits   int64         `json:"debits"`
	Credits  int64         `json:"credits"`
	Balanced bool          `json:"balanced"`
}

// Validate checks the days and the period; errors match ErrInvalidQuery.
func (q BooksQuery) Validate() error {
	for _, d := range []struct{ name, v string }{{"from", q.From}, {"to", q.To}} {
		if d.v == "" {
			continue
		}
		if _, err := time.Parse(domain.DayFormat, d.v); err != nil {
			return fmt.Errorf("%w: %s %q: want a day %s", ErrInvalidQuery, d.name, d.v, domain.DayFormat)
		}
	}
	if q.From != "" && q.To != "" && q.To < q.From {
		return fmt.Errorf("%w: to %s is before from %s", ErrInvalidQuery, q.To, q.From)
	}
	switch q.By {
	case "", PeriodDay, PeriodMonth:
	default:
		return fmt.Errorf("%w: by %q: want %q or %q", ErrInvalidQuery, q.By, PeriodDay, PeriodMonth)
	}
	return nil
}

// periodOf is the label of the period of day.
func periodOf(by Period, day string) string {
	if by == PeriodMonth && len(day) >= 7 {
		return day[:7]
	}
	return day
}

// statusRank orders statuses as domain.Statuses() lists them; "" first,
// unknown ones last.
func statusRank(st domain.Status) int {
	if st == "" {
		return -1
	}
	if i := slices.Index(domain.Statuses(), st); i >= 0 {
		return i
	}
	return len(domain.Statuses())
}

func compareCells(a, b DayStatusTotals) int {
	return cmp.Or(strings.Compare(a.Day, b.Day), cmp.Compare(statusRank(a.Status), statusRank(b.Status)),
		strings.Compare(string(a.Status), string(b.Status)))
}

// BuildReport sums (day, status) cells into a report by q.By. Cells
// outside q.From..q.To are left out.
func BuildReport(cur domain.Currency, q BooksQuery, days []DayStatusTotals) BooksReport {
	by := q.By
	if by == "" {
		by = PeriodDay
	}
	rep := BooksReport{Currency: cur.Code, From: q.From, To: q.To, By: by, AsOf: q.AsOf,
		Rows: []BooksRow{}, Periods: []BooksRow{}, Total: BooksRow{Period: TotalPeriod}}
	cells := slices.Clone(days)
	slices.SortStableFunc(cells, compareCells)
	for _, c := range cells {
		if (q.From != "" && c.Day < q.From) || (q.To != "" && c.Day > q.To) {
			continue
		}
		p := periodOf(by, c.Day)
		rep.Rows = addRow(rep.Rows, BooksRow{Period: p, Status: c.Status, Orders: c.Orders, Money: c.Money})
		rep.Periods = addRow(rep.Periods, BooksRow{Period: p, Orders: c.Orders, Money: c.Money})
		rep.Total.Orders += c.Orders
		rep.Total.Money = rep.Total.Money.Add(c.Money)
	}
	// A month's cells come day by day, so its statuses repeat out of order.
	slices.SortStableFunc(rep.Rows, func(a, b BooksRow) int {
		return cmp.Or(strings.Compare(a.Period, b.Period), cmp.Compare(statusRank(a.Status), statusRank(b.Status)))
	})
	return rep
}

// addRow adds r to the row of its period and status, if rows has one
// (rows is sorted by period, so only the current period is searched).
func addRow(rows []BooksRow, r BooksRow) []BooksRow {
	for i := len(rows) - 1; i >= 0 && rows[i].Period == r.Period; i-- {
		if rows[i].Status == r.Status {
			rows[i].Orders += r.Orders
			rows[i].Money = rows[i].Money.Add(r.Money)
			return rows
		}
	}
	return append(rows, r)
}

// TrialBalanceOf lists the balances of b, the books of orders orders.
func TrialBalanceOf(cur domain.Currency, b domain.Books, orders int) TrialBalance {
	tb := TrialBalance{Currency: cur.Code, Orders: orders, Accounts: make([]AccountLine, 0, domain.NumAccounts)}
	for _, a := range domain.Accounts() {
		l := AccountLine{Account: a, Code: a.Code(), Title: a.Title(), Normal: a.Normal()}
		if v := b.Of(a); v >= 0 {
			l.Debit = v
		} else {
			l.Credit = -v
		}
		tb.Debits += l.Debit
		tb.Credits += l.Credit
		tb.Accounts = append(tb.Accounts, l)
	}
	tb.Balanced = tb.Debits == tb.Credits
	return tb
}

// Report builds a period report from the read model's index, which must
// also be a BooksIndex. q.AsOf must be zero: an as-of report folds the log
// (ReportAsOf).
func Report(ctx context.Context, ix OrderIndex, cur domain.Currency, q BooksQuery) (BooksReport, error) {
	if err := q.Validate(); err != nil {
		return BooksReport{}, err
	}
	if !q.AsOf.IsZero() {
		return BooksReport{}, fmt.Errorf("%w: the read model answers for now; an as-of report folds the log", ErrInvalidQuery)
	}
	bi, ok := ix.(BooksIndex)
	if !ok {
		return BooksReport{}, fmt.Errorf("books report: the read model (%T) keeps no books index", ix)
	}
	days, err := bi.DayStatus(ctx, q.From, q.To)
	if err != nil {
		return BooksReport{}, fmt.Errorf("books report: %w", err)
	}
	return BuildReport(cur, q, days), nil
}

// TrialBalanceNow is the trial balance of the read model's summed books.
func TrialBalanceNow(ctx context.Context, ix OrderIndex, cur domain.Currency) (TrialBalance, error) {
	ov, err := ix.Overview(ctx)
	if err != nil {
		return TrialBalance{}, fmt.Errorf("trial balance: %w", err)
	}
	if ov.BooksStale {
		return TrialBalance{}, fmt.Errorf("trial balance: %w", ErrBooksStale)
	}
	return TrialBalanceOf(cur, ov.Books, ov.Orders), nil
}

// FoldAsOf folds every order from the facts recorded (RecordedEvent.Created)
// at or before asOf (zero: every fact), with rules: the rows the read model
// would have held then, had today's code folded them. Rows come in order-id
// order. It is a replay over the log seen through asOf, so memory stays
// bounded by the replay's cache besides the rows returned.
func FoldAsOf(ctx context.Context, log domain.EventLog, rules domain.Rules, asOf time.Time) ([]Summary, error) {
	sink := &collect{}
	var src domain.EventLog = log
	if !asOf.IsZero() {
		src = asOfLog{EventLog: log, asOf: asOf}
	}
	if _, err := Replay(ctx, src, ReplayOptions{Rules: rules, Sink: sink}); err != nil {
		return nil, fmt.Errorf("fold as of %v: %w", asOf, err)
	}
	slices.SortFunc(sink.rows, func(a, b Summary) int { return strings.Compare(a.OrderID, b.OrderID) })
	return sink.rows, nil
}

// collect is a ReplaySink keeping the rows in memory.
type collect struct{ rows []Summary }

func (c *collect) Put(_ context.Context, rows []Summary) error {
	c.rows = append(c.rows, rows...)
	return nil
}

// asOfLog is an event log that shows only the events recorded at or
// before asOf. It hides the store's FactLog (a decoded event has no
// recorded time).
type asOfLog struct {
	domain.EventLog
	asOf time.Time
}

func (l asOfLog) keep(evs []domain.RecordedEvent) []domain.RecordedEvent {
	return slices.DeleteFunc(evs, func(e domain.RecordedEvent) bool { return e.Created.After(l.asOf) })
}

// ReadAll returns the next page with at least one event recorded by asOf,
// or none at the end: an empty page must mean the end to the replay.
func (l asOfLog) ReadAll(ctx context.Context, after *domain.Position, max int) ([]domain.RecordedEvent, error) {
	for {
		page, err := l.EventLog.ReadAll(ctx, after, max)
		if err != nil || len(page) == 0 {
			return page, err
		}
		last := page[len(page)-1].Position
		if kept := l.keep(page); len(kept) > 0 {
			return kept, nil
		}
		after = &last
	}
}

func (l asOfLog) ReadStream(ctx context.Context, stream string, from uint64, dir domain.Direction, max int) ([]domain.RecordedEvent, error) {
	evs, err := l.EventLog.ReadStream(ctx, stream, from, dir, max)
	return l.keep(evs), err
}

// DayStatusOf sums rows into (day, status) cells for the days from..to
// inclusive ("" open), the way the read model's index keeps them: an
// order counts on its checkout day, its money on the days it moved, both
// under its current status. Cells with nothing in them are left out.
func DayStatusOf(rows []Summary, from, to string) []DayStatusTotals {
	type key struct {
		day string
		st  domain.Status
	}
	cells := make(map[key]*DayStatusTotals)
	cell := func(day string, st domain.Status) *DayStatusTotals {
		c := cells[key{day, st}]
		if c == nil {
			c = &DayStatusTotals{Day: day, Status: st}
			cells[key{day, st}] = c
		}
		return c
	}
	in := func(day string) bool { return (from == "" || day >= from) && (to == "" || day <= to) }
	for i := range rows {
		r := &rows[i]
		if !r.CreatedAt.IsZero() {
			if d := r.CreatedAt.UTC().Format(domain.DayFormat); in(d) {
				cell(d, r.Status).Orders++
			}
		}
		for _, m := range r.Days {
			if in(m.Day) {
				c := cell(m.Day, r.Status)
				c.Money = c.Money.Add(m.Money)
			}
		}
	}
	out := make([]DayStatusTotals, 0, len(cells))
	for _, c := range cells {
		if c.Orders != 0 || (c.Money != domain.Totals{}) {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, compareCells)
	return out
}

// ReportAsOf is the period report of the facts recorded up to q.AsOf
// (zero: every fact), folded with today's rules.
func ReportAsOf(ctx context.Context, log domain.EventLog, rules domain.Rules, q BooksQuery) (BooksReport, error) {
	if err := q.Validate(); err != nil {
		return BooksReport{}, err
	}
	rows, err := FoldAsOf(ctx, log, rules, q.AsOf)
	if err != nil {
		return BooksReport{}, fmt.Errorf("books report: %w", err)
	}
	return BuildReport(rulesCurrency(rules), q, DayStatusOf(rows, q.From, q.To)), nil
}

// TrialBalanceAsOf is the trial balance of the facts recorded up to asOf
// (zero: every fact), folded with today's rules.
func TrialBalanceAsOf(ctx context.Context, log domain.EventLog, rules domain.Rules, asOf time.Time) (TrialBalance, error) {
	rows, err := FoldAsOf(ctx, log, rules, asOf)
	if err != nil {
		return TrialBalance{}, fmt.Errorf("trial balance: %w", err)
	}
	var b domain.Books
	for i := range rows {
		b = b.Add(rows[i].Books)
	}
	tb := TrialBalanceOf(rulesCurrency(rules), b, len(rows))
	tb.AsOf = asOf
	return tb, nil
}

// rulesCurrency is the currency the fold uses: the rules' or the default.
func rulesCurrency(r domain.Rules) domain.Currency {
	if r.Currency.Code == "" {
		return domain.DefaultCurrency()
	}
	return r.Currency
}
