package httpapi

import (
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The books: the trial balance and the period report, now from the read
// model's aggregates (Deps.Index), or as of a moment from a fold of the
// facts recorded by then (Deps.Log with Deps.Rules).

// booksQuery reads ?from=&to=&by=&as_of=.
func booksQuery(r *http.Request) (projections.BooksQuery, error) {
	v := r.URL.Query()
	q := projections.BooksQuery{From: v.Get("from"), To: v.Get("to"), By: projections.Period(v.Get("by"))}
	var err error
	if q.From, err = parseDay("from", q.From); err != nil {
		return q, err
	}
	if q.To, err = parseDay("to", q.To); err != nil {
		return q, err
	}
	if q.By != "" && q.By != projections.PeriodDay && q.By != projections.PeriodMonth {
		return q, badRequest("by: want day or month")
	}
	if q.AsOf, err = asOfParam(r); err != nil {
		return q, err
	}
	if err := q.Validate(); err != nil {
		return q, badRequest(err.Error())
	}
	return q, nil
}

// csvParam reads format=json|csv ("" is json).
func csvParam(r *http.Request) (bool, error) {
	switch r.URL.Query().Get("format") {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	}
	return false, badRequest("format: want json or csv")
}

// csvHeaders starts a CSV download named name.csv.
func csvHeaders(w http.ResponseWriter, name string) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
}

// booksReport answers GET /api/books/report: JSON, or CSV with
// format=csv (one line per period and status).
func (s *Server) booksReport(w http.ResponseWriter, r *http.Request) {
	q, err := booksQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	asCSV, err := csvParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, ok := s.report(w, r, q)
	if !ok {
		return
	}
	if !asCSV {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	csvHeaders(w, "books-"+string(rep.By))
	_ = WriteBooksCSV(w, rep, s.cfg.Currency)
}

// report builds the report q asks for; on failure it has answered.
func (s *Server) report(w http.ResponseWriter, r *http.Request, q projections.BooksQuery) (projections.BooksReport, bool) {
	var rep projections.BooksReport
	var err error
	switch {
	case !q.AsOf.IsZero():
		rep, err = projections.ReportAsOf(r.Context(), s.deps.Log, s.booksRules(), q)
	case s.deps.Index == nil:
		writeError(w, http.StatusNotImplemented, noIndex)
		return rep, false
	default:
		rep, err = projections.Report(r.Context(), s.deps.Index, s.cfg.Currency, q)
	}
	if err != nil {
		s.failBooks(w, r, err)
		return rep, false
	}
	return rep, true
}

// trialBalance answers GET /api/books/trial-balance?as_of=. An unbalanced
// trial balance is an answer (balanced false), not an error.
func (s *Server) trialBalance(w http.ResponseWriter, r *http.Request) {
	asOf, err := asOfParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var tb projections.TrialBalance
	switch {
	case !asOf.IsZero():
		tb, err = projections.TrialBalanceAsOf(r.Context(), s.deps.Log, s.booksRules(), asOf)
	case s.deps.Index == nil:
		writeError(w, http.StatusNotImplemented, noIndex)
		return
	default:
		tb, err = projections.TrialBalanceNow(r.Context(), s.deps.Index, s.cfg.Currency)
	}
	if err != nil {
		s.failBooks(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tb)
}

// booksChart answers GET /api/books/chart.svg: the report's periods drawn.
func (s *Server) booksChart(w http.ResponseWriter, r *http.Request) {
	q, err := booksQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, ok := s.report(w, r, q)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
	_, _ = w.Write(RenderPeriodChart(rep, s.cfg.Currency))
}

// booksRules are the fold's rules for the books as of a moment, in the
// server's currency.
func (s *Server) booksRules() domain.Rules {
	r := s.deps.Rules
	if r.Currency.Code == "" {
		r.Currency = s.cfg.Currency
	}
	return r
}

// failBooks is fail, with a read model written before the books told as
// what it is: a conflict a replay resolves.
func (s *Server) failBooks(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, projections.ErrBooksStale) {
		writeError(w, http.StatusConflict, projections.ErrBooksStale.Error())
		return
	}
	s.fail(w, r, err)
}

// BooksCSVHeader is the first line WriteBooksCSV writes.
var BooksCSVHeader = []string{"period", "status", "orders", "captured", "refunded", "charged_back", "reversed", "net", "currency"}

// WriteBooksCSV writes a report's rows, one line per period and status
// (no subtotals, so the lines add up to the total), amounts as decimals
// in cur's major unit.
func WriteBooksCSV(out io.Writer, rep projections.BooksReport, cur domain.Currency) error {
	w := csv.NewWriter(out)
	if err := w.Write(BooksCSVHeader); err != nil {
		return err
	}
	m := func(v int64) string { return formatMoney(v, cur.Decimals) }
	for _, row := range rep.Rows {
		t := row.Money
		if err := w.Write([]string{row.Period, string(row.Status), strconv.Itoa(row.Orders), m(t.Captured), m(t.Refunded),
			m(t.ChargedBack), m(t.Reversed), m(t.Net), cur.Code}); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// booksAsOfLabel is how a chart names its moment.
func booksAsOfLabel(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " as of " + t.UTC().Format(time.RFC3339)
}

// journalQuery reads ?from=&to=&order=&as_of=.
func journalQuery(r *http.Request) (projections.JournalQuery, error) {
	v := r.URL.Query()
	q := projections.JournalQuery{OrderID: v.Get("order")}
	var err error
	if q.From, err = parseDay("from", v.Get("from")); err != nil {
		return q, err
	}
	if q.To, err = parseDay("to", v.Get("to")); err != nil {
		return q, err
	}
	if q.AsOf, err = asOfParam(r); err != nil {
		return q, err
	}
	if err := q.Validate(); err != nil {
		return q, badRequest(err.Error())
	}
	return q, nil
}

// booksJournal answers GET /api/books/journal: the postings, JSON (with
// their sums), or CSV with format=csv. It folds the log (Deps.Log).
func (s *Server) booksJournal(w http.ResponseWriter, r *http.Request) {
	q, err := journalQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	asCSV, err := csvParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := projections.JournalReportOf(r.Context(), s.deps.Log, s.booksRules(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !asCSV {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	csvHeaders(w, "journal")
	_ = WriteJournalCSV(w, rep.Lines, s.cfg.Currency)
}

// JournalCSVHeader is the first line WriteJournalCSV writes.
var JournalCSVHeader = []string{"at", "recorded", "order_id", "revision", "event_id", "fact", "entry", "account", "code", "side", "debit", "credit", "currency"}

// WriteJournalCSV writes one line per posting, its amount as a decimal in
// cur's major unit under debit or credit (the other empty), times in RFC
// 3339 UTC.
func WriteJournalCSV(out io.Writer, lines []projections.JournalLine, cur domain.Currency) error {
	w := csv.NewWriter(out)
	if err := w.Write(JournalCSVHeader); err != nil {
		return err
	}
	for _, l := range lines {
		amount := formatMoney(l.Amount, cur.Decimals)
		dr, cr := amount, ""
		if l.Side == domain.Credit {
			dr, cr = "", amount
		}
		if err := w.Write([]string{l.At.UTC().Format(time.RFC3339Nano), l.Recorded.UTC().Format(time.RFC3339Nano), l.OrderID,
			strconv.FormatUint(l.Revision, 10), l.EventID, l.Fact, l.Entry.String(), l.Account.Name(), l.Account.Code(), l.Side.String(),
			dr, cr, cur.Code}); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}
