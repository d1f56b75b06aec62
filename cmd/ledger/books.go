package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// `ledger books`: the trial balance and the period report, now from the
// read model (which keeps the books with every write), or as of a moment
// from a fold of the facts recorded by then. Like the other read
// commands they go through a running serve when there is one.

func (a *app) booksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "books",
		Short: "The books: trial balance and period reports",
		Long: `The books: every money movement as balanced double-entry postings over a
small chart of accounts (see the README's Books section).
  trial-balance  every account's balance; exits non-zero when they do not balance
  report         orders and money per day or month and status
  journal        the postings themselves, one line each, for export`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.trialBalanceCmd(), a.booksReportCmd(), a.journalCmd())
	return cmd
}

func (a *app) trialBalanceCmd() *cobra.Command {
	var asJSON bool
	var server, asOfFlag string
	cmd := &cobra.Command{
		Use:   "trial-balance",
		Short: "Every account's balance; exit 0 when debits equal credits",
		Long: `List every account of the chart with its balance on its side, and the
sums of the debits and the credits. Exits 0 when they are equal (the books
balance) and non-zero, naming the currency and the difference, when not.
Without --as-of it reads the read model's books; --as-of TIME folds the
facts recorded by TIME (RFC 3339, or a date for the end of that UTC day)
with today's rules.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			asOf, err := projections.ParseAsOf(asOfFlag)
			if err != nil {
				return fmt.Errorf("--as-of: %w", err)
			}
			var tb projections.TrialBalance
			err = a.route(ctx, c, server, func() error {
				if !asOf.IsZero() {
					store, err := openStore(ctx, c, logger)
					if err != nil {
						return err
					}
					defer store.Close()
					tb, err = projections.TrialBalanceAsOf(ctx, store, c.rules(), asOf)
					return err
				}
				return withReadModel(c, func(rm *bolt.ReadModel) error {
					var err error
					tb, err = projections.TrialBalanceNow(ctx, rm, c.currency())
					return err
				})
			}, func(base string) error {
				return apiClient{base: base}.getJSON(ctx, "/api/books/trial-balance", asOfQuery(asOf), &tb)
			})
			if err != nil {
				return err
			}
			if asJSON {
				err = writeJSON(a.stdout, tb)
			} else {
				err = writeTrialBalance(a.stdout, tb, c.currency())
			}
			if err != nil {
				return err
			}
			return unbalanced(tb, c.currency())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	cmd.Flags().StringVar(&asOfFlag, "as-of", "", "fold the facts recorded by this time (RFC 3339, or 2006-01-02: the end of that UTC day)")
	serverFlags(cmd.Flags(), &server, nil)
	return cmd
}

// unbalanced is the error of a trial balance whose debits and credits
// differ: what makes the command exit non-zero.
func unbalanced(tb projections.TrialBalance, cur domain.Currency) error {
	if tb.Balanced && tb.Debits == tb.Credits {
		return nil
	}
	return fmt.Errorf("the books do not balance in %s: debits %s, credits %s, difference %s",
		orDefault(tb.Currency, cur.Code), fmtMoney(tb.Debits, cur), fmtMoney(tb.Credits, cur), fmtMoney(tb.Debits-tb.Credits, cur))
}

func (a *app) booksReportCmd() *cobra.Command {
	var asJSON, asCSV bool
	var server, asOfFlag, by string
	var q projections.BooksQuery
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Orders and money per day or month and status",
		Long: `For each period (--by day or month) from --from to --to (dates, UTC,
inclusive; either may be left out) and each status: the orders checked out
in the period that are now in that status, and the money they moved in the
period (captured, refunded, charged back, reversed, net). A table by
default; --csv gives one line per period and status (no subtotals),
--json the whole report. --as-of TIME folds the facts recorded by then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && asCSV {
				return errors.New("--csv and --json: choose one")
			}
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			if q.AsOf, err = projections.ParseAsOf(asOfFlag); err != nil {
				return fmt.Errorf("--as-of: %w", err)
			}
			q.By = projections.Period(by)
			if err := q.Validate(); err != nil {
				return fmt.Errorf("books report: %w", err)
			}
			var rep projections.BooksReport
			err = a.route(ctx, c, server, func() error {
				rep, err = localReport(ctx, c, q, logger)
				return err
			}, func(base string) error {
				v := asOfQuery(q.AsOf)
				for k, s := range map[string]string{"from": q.From, "to": q.To, "by": string(q.By)} {
					if s != "" {
						v.Set(k, s)
					}
				}
				return apiClient{base: base}.getJSON(ctx, "/api/books/report", v, &rep)
			})
			if err != nil {
				return err
			}
			switch {
			case asJSON:
				return writeJSON(a.stdout, rep)
			case asCSV:
				return httpapi.WriteBooksCSV(a.stdout, rep, c.currency())
			}
			return writeBooksReport(a.stdout, rep, c.currency())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&q.From, "from", "", "first day, 2006-01-02 (UTC); default: the first")
	fs.StringVar(&q.To, "to", "", "last day, 2006-01-02 (UTC), inclusive; default: the last")
	fs.StringVar(&by, "by", string(projections.PeriodDay), "period: day or month")
	fs.BoolVar(&asCSV, "csv", false, "print CSV: one line per period and status")
	fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	fs.StringVar(&asOfFlag, "as-of", "", "fold the facts recorded by this time (RFC 3339, or 2006-01-02: the end of that UTC day)")
	serverFlags(fs, &server, nil)
	return cmd
}

func localReport(ctx context.Context, c Config, q projections.BooksQuery, logger *zap.Logger) (projections.BooksReport, error) {
	if !q.AsOf.IsZero() {
		store, err := openStore(ctx, c, logger)
		if err != nil {
			return projections.BooksReport{}, err
		}
		defer store.Close()
		return projections.ReportAsOf(ctx, store, c.rules(), q)
	}
	var rep projections.BooksReport
	err := withReadModel(c, func(rm *bolt.ReadModel) error {
		var err error
		rep, err = projections.Report(ctx, rm, c.currency(), q)
		return err
	})
	return rep, err
}

// withReadModel runs fn on the data dir's read model, which the tools
// read but never create.
func withReadModel(c Config, fn func(*bolt.ReadModel) error) error {
	path := c.readModelPath()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no read model at %s yet: `ledger replay` builds it from the facts (or pass --as-of to fold them)", path)
	}
	rm, err := bolt.OpenReadModel(path)
	if err != nil {
		return err
	}
	defer rm.Close()
	return fn(rm)
}

// asOfQuery is ?as_of= for a moment, nothing for now.
func asOfQuery(asOf time.Time) url.Values {
	v := url.Values{}
	if !asOf.IsZero() {
		v.Set("as_of", asOf.UTC().Format(time.RFC3339Nano))
	}
	return v
}

// asOfLine says which facts a report folded.
func asOfLine(asOf time.Time) string {
	if asOf.IsZero() {
		return "now (the read model)"
	}
	return "as of " + asOf.UTC().Format(time.RFC3339Nano) + ": the facts recorded by then, folded with today's rules"
}

// writeTrialBalance prints every account with its balance on its side.
func writeTrialBalance(out io.Writer, tb projections.TrialBalance, cur domain.Currency) error {
	money := func(v int64) string { return fmtMoney(v, cur) }
	fmt.Fprintf(out, "trial balance (%s) of %d orders, %s\n\n", orDefault(tb.Currency, cur.Code), tb.Orders, asOfLine(tb.AsOf))
	t := &textTable{cols: []column{{head: "CODE"}, {head: "ACCOUNT"}, {head: "NORMAL"}, {head: "DEBIT", right: true}, {head: "CREDIT", right: true}}}
	for _, l := range tb.Accounts {
		dr, cr := "", ""
		switch {
		case l.Debit != 0:
			dr = money(l.Debit)
		case l.Credit != 0:
			cr = money(l.Credit)
		case l.Normal == domain.Credit:
			cr = money(0)
		default:
			dr = money(0)
		}
		t.row(l.Code, l.Title, l.Normal.String(), dr, cr)
	}
	t.row("", "total", "", money(tb.Debits), money(tb.Credits))
	if err := t.render(out, 0); err != nil {
		return err
	}
	if tb.Balanced && tb.Debits == tb.Credits {
		fmt.Fprintln(out, "\nbalanced: debits equal credits")
	} else {
		fmt.Fprintf(out, "\nNOT BALANCED: debits - credits = %s\n", money(tb.Debits-tb.Credits))
	}
	return nil
}

// writeBooksReport prints the report's rows, each period's subtotal when
// it has more than one status, and the total.
func writeBooksReport(out io.Writer, rep projections.BooksReport, cur domain.Currency) error {
	money := func(v int64) string { return fmtMoney(v, cur) }
	span := "every day"
	if rep.From != "" || rep.To != "" {
		span = orDefault(rep.From, "the first day") + " to " + orDefault(rep.To, "the last")
	}
	fmt.Fprintf(out, "books (%s) by %s, %s, %s\n", orDefault(rep.Currency, cur.Code), rep.By, span, asOfLine(rep.AsOf))
	fmt.Fprintln(out, "orders: checked out in the period, by their status now; money: moved in the period; net = captured - refunded - charged back + reversed")
	fmt.Fprintln(out)
	t := &textTable{cols: []column{{head: "PERIOD"}, {head: "STATUS"}, {head: "ORDERS", right: true}, {head: "CAPTURED", right: true},
		{head: "REFUNDED", right: true}, {head: "CHARGED BACK", right: true}, {head: "REVERSED", right: true}, {head: "NET", right: true}}}
	add := func(period, status string, r projections.BooksRow) {
		m := r.Money
		t.row(period, status, strconv.Itoa(r.Orders), money(m.Captured), money(m.Refunded), money(m.ChargedBack), money(m.Reversed), money(m.Net))
	}
	for i, p := range rep.Periods {
		n := 0
		for _, r := range rep.Rows {
			if r.Period == p.Period {
				add(r.Period, orDash(string(r.Status)), r)
				n++
			}
		}
		if n > 1 {
			add("", "all", p)
		}
		if i < len(rep.Periods)-1 && n > 1 {
			t.line(0, "")
		}
	}
	add("total", "all", rep.Total)
	return t.render(out, 0)
}

func (a *app) journalCmd() *cobra.Command {
	var asJSON, asCSV bool
	var server, asOfFlag string
	var q projections.JournalQuery
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "The postings, one line each: what finance exports",
		Long: `Every posting of the facts whose business time (the fact's own time, UTC)
falls from --from to --to (dates, inclusive; either may be left out), of
one order (--order) or all, in business-time order: the fact, the rule
(capture, recognition, refund, chargeback, reversal), the account and
the amount on its side. It folds the log (no read model needed); --as-of
TIME folds only the facts recorded by then. A table with the sums by
default (the debits equal the credits, or the command fails); --csv one
line per posting, amounts as decimals; --json the lines and the sums.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && asCSV {
				return errors.New("--csv and --json: choose one")
			}
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			if q.AsOf, err = projections.ParseAsOf(asOfFlag); err != nil {
				return fmt.Errorf("--as-of: %w", err)
			}
			if err := q.Validate(); err != nil {
				return fmt.Errorf("books journal: %w", err)
			}
			var rep projections.JournalReport
			err = a.route(ctx, c, server, func() error {
				store, err := openStore(ctx, c, logger)
				if err != nil {
					return err
				}
				defer store.Close()
				rep, err = projections.JournalReportOf(ctx, store, c.rules(), q)
				if errors.Is(err, domain.ErrStreamNotFound) {
					return fmt.Errorf("order %s: no facts", q.OrderID)
				}
				return err
			}, func(base string) error {
				v := asOfQuery(q.AsOf)
				for k, s := range map[string]string{"from": q.From, "to": q.To, "order": q.OrderID} {
					if s != "" {
						v.Set(k, s)
					}
				}
				return apiClient{base: base}.getJSON(ctx, "/api/books/journal", v, &rep)
			})
			if err != nil {
				return err
			}
			switch {
			case asJSON:
				err = writeJSON(a.stdout, rep)
			case asCSV:
				err = httpapi.WriteJournalCSV(a.stdout, rep.Lines, c.currency())
			default:
				err = writeJournal(a.stdout, rep, c.currency())
			}
			if err != nil {
				return err
			}
			if rep.Debits != rep.Credits {
				return fmt.Errorf("the journal does not balance in %s: debits %s, credits %s", orDefault(rep.Currency, c.currency().Code),
					fmtMoney(rep.Debits, c.currency()), fmtMoney(rep.Credits, c.currency()))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&q.From, "from", "", "first day of the facts' business time, 2006-01-02 (UTC); default: the first")
	fs.StringVar(&q.To, "to", "", "last day, 2006-01-02 (UTC), inclusive; default: the last")
	fs.StringVar(&q.OrderID, "order", "", "only this order's postings")
	fs.BoolVar(&asCSV, "csv", false, "print CSV: one line per posting")
	fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	fs.StringVar(&asOfFlag, "as-of", "", "fold the facts recorded by this time (RFC 3339, or 2006-01-02: the end of that UTC day)")
	serverFlags(fs, &server, nil)
	return cmd
}

// writeJournal prints one line per posting and the sums.
func writeJournal(out io.Writer, rep projections.JournalReport, cur domain.Currency) error {
	money := func(v int64) string { return fmtMoney(v, cur) }
	span := "every day"
	if rep.From != "" || rep.To != "" {
		span = orDefault(rep.From, "the first day") + " to " + orDefault(rep.To, "the last")
	}
	if rep.OrderID != "" {
		span += ", order " + rep.OrderID
	}
	known := "every fact recorded"
	if !rep.AsOf.IsZero() {
		known = "as of " + rep.AsOf.UTC().Format(time.RFC3339Nano) + ": the facts recorded by then"
	}
	fmt.Fprintf(out, "journal (%s), %s, %s; dated by the facts' business time\n\n", orDefault(rep.Currency, cur.Code), span, known)
	t := &textTable{cols: []column{{head: "AT"}, {head: "ORDER"}, {head: "REV", right: true}, {head: "FACT"}, {head: "ENTRY"},
		{head: "ACCOUNT"}, {head: "DEBIT", right: true}, {head: "CREDIT", right: true}}}
	for _, l := range rep.Lines {
		dr, cr := money(l.Amount), ""
		if l.Side == domain.Credit {
			dr, cr = "", dr
		}
		t.row(l.At.UTC().Format(time.RFC3339), l.OrderID, strconv.FormatUint(l.Revision, 10), l.Fact, l.Entry.String(),
			l.Account.Code()+" "+l.Account.Name(), dr, cr)
	}
	t.row("total", strconv.Itoa(len(rep.Lines))+" postings", "", "", "", "", money(rep.Debits), money(rep.Credits))
	if err := t.render(out, 0); err != nil {
		return err
	}
	if rep.Debits == rep.Credits {
		fmt.Fprintln(out, "\nbalanced: debits equal credits")
	} else {
		fmt.Fprintf(out, "\nNOT BALANCED: debits - credits = %s\n", money(rep.Debits-rep.Credits))
	}
	return nil
}
