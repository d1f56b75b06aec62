package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The operator tools open the store themselves when no `ledger serve`
// holds it, and otherwise go through the running server's HTTP API: the
// one --server names, or the one that owns the data dir (discover.go).

func (a *app) replayCmd() *cobra.Command {
	var dryRun, restate bool
	var report, server, token string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Rebuild the read model from the streams with the current code",
		Long: `Rebuild the order read model from the streams with the current code and
swap it in atomically (a crash mid-replay leaves the old one usable).
--dry-run only reports; --report FILE writes every order whose status or
money changed, before and after, as JSON; --restate appends a restatement
fact to each changed order so downstream gets orderStatusUpdated.
While 'ledger serve' runs, the replay goes through it (found from the data
dir, or --server): a dry run needs no token, a real one needs the server's
admin token (--token, or http.token / LEDGER_HTTP_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			var res projections.ReplayResult
			err = a.route(ctx, c, server, func() error {
				var err error
				res, _, err = a.localReplay(ctx, c, logger, dryRun, restate)
				return err
			}, func(base string) error {
				var err error
				res, err = remoteReplay(ctx, apiClient{base: base, token: orDefault(token, c.HTTP.Token)}, dryRun, restate)
				return err
			})
			if err != nil {
				return err
			}
			return a.printReplay(res, dryRun, report)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would change; keep the current read model")
	cmd.Flags().BoolVar(&restate, "restate", false, "append a restatement fact to each changed order")
	cmd.Flags().StringVar(&report, "report", "", "write the changes as JSON to this file")
	serverFlags(cmd.Flags(), &server, &token)
	return cmd
}

// serverFlags are the flags of the commands that can go through a
// running server; token may be nil for read-only ones.
func serverFlags(fs interface {
	StringVar(p *string, name, value, usage string)
}, server, token *string) {
	fs.StringVar(server, "server", "", "go through the ledger serve at this address (http://host:port or host:port); default: the one that owns the data dir, if any")
	if token != nil {
		fs.StringVar(token, "token", "", "the server's admin token (default http.token, LEDGER_HTTP_TOKEN)")
	}
}

func (a *app) localReplay(ctx context.Context, c Config, logger *zap.Logger, dryRun, restate bool) (projections.ReplayResult, int, error) {
	store, err := openStore(ctx, c, logger)
	if err != nil {
		return projections.ReplayResult{}, 0, err
	}
	defer store.Close()
	if err := bolt.RemoveStaleRebuilds(c.readModelPath()); err != nil {
		logger.Warn("could not remove a half-built read model", zap.Error(err))
	}
	cur, err := bolt.OpenReadModel(c.readModelPath())
	if err != nil {
		return projections.ReplayResult{}, 0, err
	}
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	var total int64
	if h, ok, err := store.Head(ctx); err == nil && ok && c.Store == "embedded" {
		total = int64(h.Commit) // embedded positions count events
	}
	return rm.Rebuild(ctx, store, bolt.RebuildOptions{Rules: c.rules(), DryRun: dryRun, Restate: restate, Progress: a.progress(logger, total)})
}

// progress draws a bar on a terminal and otherwise logs a line (seen
// with --verbose).
func (a *app) progress(logger *zap.Logger, total int64) func(projections.ReplayProgress) {
	f, isFile := a.stderr.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	return func(p projections.ReplayProgress) {
		rate := float64(p.Facts) / max(p.Elapsed.Seconds(), 1e-9)
		left := "?"
		if total > 0 && rate > 0 && p.Facts <= total {
			left = time.Duration(float64(total-p.Facts) / rate * float64(time.Second)).Round(time.Second).String()
		}
		if !tty {
			logger.Info("replaying", zap.Int64("facts", p.Facts), zap.Int64("orders", p.Orders),
				zap.Float64("facts_per_s", rate), zap.String("left", left))
			return
		}
		bar := ""
		if total > 0 {
			n := int(min(float64(p.Facts)/float64(total), 1) * 30)
			bar = "[" + strings.Repeat("#", n) + strings.Repeat(".", 30-n) + "] "
		}
		a.drewProgress = true
		fmt.Fprintf(a.stderr, "\r%s%d facts, %d orders, %.0f facts/s, %s left   ", bar, p.Facts, p.Orders, rate, left)
	}
}

// printReplay says what a replay did.
func (a *app) printReplay(res projections.ReplayResult, dryRun bool, report string) error {
	if a.drewProgress {
		fmt.Fprintln(a.stderr)
	}
	if report != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(report, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	mode := "replayed"
	if dryRun {
		mode = "dry run"
	}
	fmt.Fprintf(a.stdout, "%s: %d facts, %d orders in %s (%.0f facts/s); %d changed; %d restated\n", mode, res.Facts, res.Orders,
		res.Elapsed.Round(time.Millisecond), float64(res.Facts)/max(res.Elapsed.Seconds(), 1e-9), len(res.Changes), res.Restated)
	if len(res.Changes) == 0 {
		return nil
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ORDER\tSTATUS BEFORE\tSTATUS AFTER\tNET BEFORE\tNET AFTER")
	for i, ch := range res.Changes {
		if i == 50 {
			fmt.Fprintf(w, "… %d more (see --report)\t\t\t\t\n", len(res.Changes)-50)
			break
		}
		before, netBefore := "(new)", "-"
		if ch.Before != nil {
			before, netBefore = string(ch.Before.Status), fmt.Sprint(ch.Before.Money.Net)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", ch.OrderID, before, ch.After.Status, netBefore, ch.After.Money.Net)
	}
	return w.Flush()
}

// remoteReplay asks the server for a replay. A dry run needs no token.
func remoteReplay(ctx context.Context, api apiClient, dryRun, restate bool) (projections.ReplayResult, error) {
	var res projections.ReplayResult
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "1")
	}
	if restate {
		q.Set("restate", "1")
	}
	return res, api.do(ctx, http.MethodPost, "/api/admin/replay", q, nil, "", &res)
}

func (a *app) auditCmd() *cobra.Command {
	var asJSON, wide bool
	var server, asOfFlag string
	cmd := &cobra.Command{
		Use:   "audit <orderId>",
		Short: "Show an order's full financial history",
		Long: `Show an order's facts, what each did to its status and money, and the
messages each caused. The table fits 120 columns (ids shortened); --wide
shows everything, --json is for machines. --as-of TIME shows what the
ledger knew then: only the facts recorded by TIME (RFC 3339, or a date for
the end of that UTC day), folded with today's rules.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			id := strings.ToLower(args[0])
			asOf, err := projections.ParseAsOf(asOfFlag)
			if err != nil {
				return fmt.Errorf("--as-of: %w", err)
			}
			missing := fmt.Errorf("order %s: no facts stored", id)
			if !asOf.IsZero() {
				missing = fmt.Errorf("order %s: no facts recorded by %s", id, asOf.Format(time.RFC3339Nano))
			}
			var rep projections.AuditReport
			err = a.route(ctx, c, server, func() error {
				store, err := openStore(ctx, c, logger)
				if err != nil {
					return err
				}
				defer store.Close()
				rep, err = projections.AuditAsOf(ctx, store, c.rules(), c.outbound(), id, asOf)
				if errors.Is(err, domain.ErrStreamNotFound) {
					return missing
				}
				if err != nil || !asOf.IsZero() {
					return err // the parked lanes are now's, not as of then
				}
				if rep.Parked, err = localParked(ctx, c, id); err != nil {
					logger.Warn("cannot read the parked lanes", zap.Error(err))
				}
				return nil
			}, func(base string) error {
				var q url.Values
				if !asOf.IsZero() {
					q = url.Values{"as_of": {asOf.Format(time.RFC3339Nano)}}
				}
				err := apiClient{base: base}.getJSON(ctx, "/api/orders/"+url.PathEscape(id)+"/audit", q, &rep)
				var ae *apiError
				if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
					return missing
				}
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, rep)
			}
			if wide {
				return writeAuditWide(a.stdout, rep, c.currency())
			}
			return writeAuditTable(a.stdout, rep, c.currency())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	cmd.Flags().BoolVar(&wide, "wide", false, "one wide table with every column and whole ids")
	cmd.Flags().StringVar(&asOfFlag, "as-of", "", "only the facts recorded by this time (RFC 3339, or 2006-01-02: the end of that UTC day)")
	serverFlags(cmd.Flags(), &server, nil)
	return cmd
}

// auditWidth is what the default audit fits in.
const auditWidth = 120

// writeAuditTable prints the audit for people in auditWidth columns: the
// facts (ids shortened, the reason), then the money they moved, running
// totals that add up on every row.
func writeAuditTable(out io.Writer, rep projections.AuditReport, cur domain.Currency) error {
	money := func(v int64) string { return fmtMoney(v, cur) }
	writeAuditHead(out, rep, cur, auditWidth)

	// The status is the money table's: here the room goes to the reason.
	facts := &textTable{cols: []column{{head: "REV", right: true}, {head: "TIME"}, {head: "FACT", min: 14},
		{head: "MESSAGE"}, {head: "CORRELATION"}, {head: "REASON", min: 20}}}
	for _, e := range rep.Entries {
		facts.row(strconv.FormatUint(e.Revision, 10), auditTime(e, "2006-01-02 15:04:05"), factName(e.Type),
			short(e.MessageID), short(e.CorrelationID), entryReason(e))
		for _, o := range e.Outbound {
			facts.line(2, fmt.Sprintf("↳ %s %s %s", o.Kind, o.Name, short(o.MessageID)))
		}
		for _, f := range e.Flags {
			facts.line(2, "! "+f)
		}
	}
	fmt.Fprintln(out, "facts")
	if err := facts.render(out, auditWidth); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nmoney (%s): net = captured - refunded - charged back + reversed\n", cur.Code)
	mt := &textTable{cols: []column{{head: "REV", right: true}, {head: "FACT", min: 14}, {head: "STATUS"}, {head: "Δ NET", right: true},
		{head: "CAPTURED", right: true}, {head: "REFUNDED", right: true}, {head: "CHARGED BACK", right: true},
		{head: "REVERSED", right: true}, {head: "NET", right: true}}}
	for _, e := range rep.Entries {
		t := e.Totals
		mt.row(strconv.FormatUint(e.Revision, 10), factName(e.Type), orDash(string(e.StatusAfter)), money(e.Delta.Net),
			money(t.Captured), money(t.Refunded), money(t.ChargedBack), money(t.Reversed), money(t.Net))
	}
	if err := mt.render(out, auditWidth); err != nil {
		return err
	}
	if err := writeAuditJournal(out, rep, cur); err != nil {
		return err
	}
	writeAuditNotes(out, rep, auditWidth)
	return nil
}

// writeAuditJournal prints each fact's journal entry, a posting a line,
// when any fact moved money.
func writeAuditJournal(out io.Writer, rep projections.AuditReport, cur domain.Currency) error {
	jt := &textTable{cols: []column{{head: "REV", right: true}, {head: "FACT", min: 14}, {head: "ENTRY"}, {head: "ACCOUNT"},
		{head: "DEBIT", right: true}, {head: "CREDIT", right: true}}}
	for _, e := range rep.Entries {
		for i, p := range e.Postings {
			rev, fact := "", ""
			if i == 0 {
				rev, fact = strconv.FormatUint(e.Revision, 10), factName(e.Type)
			}
			dr, cr := fmtMoney(p.Amount, cur), ""
			if p.Side == domain.Credit {
				dr, cr = "", dr
			}
			jt.row(rev, fact, p.Entry.String(), p.Account.Code()+" "+p.Account.Name(), dr, cr)
		}
	}
	if len(jt.rows) == 0 {
		return nil
	}
	fmt.Fprintf(out, "\njournal (%s): each fact's postings; debits equal credits\n", cur.Code)
	return jt.render(out, auditWidth)
}

// writeAuditWide prints everything in one table, whole ids and times.
func writeAuditWide(out io.Writer, rep projections.AuditReport, cur domain.Currency) error {
	money := func(v int64) string { return fmtMoney(v, cur) }
	writeAuditHead(out, rep, cur, 0)
	t := &textTable{cols: []column{{head: "REV", right: true}, {head: "POSITION"}, {head: "TIME"}, {head: "FACT"},
		{head: "MESSAGE ID"}, {head: "CORRELATION"}, {head: "ENVELOPE"}, {head: "STATUS"}, {head: "RESULT"}, {head: "REASON"},
		{head: "Δ NET", right: true}, {head: "CAPTURED", right: true}, {head: "REFUNDED", right: true},
		{head: "CHARGED BACK", right: true}, {head: "REVERSED", right: true}, {head: "NET", right: true}}}
	for _, e := range rep.Entries {
		status := string(e.StatusBefore) + " → " + string(e.StatusAfter)
		if e.StatusBefore == "" {
			status = "→ " + string(e.StatusAfter)
		}
		result := string(e.Disposition)
		if e.Error != "" {
			result = "undecodable"
		}
		tt := e.Totals
		t.row(strconv.FormatUint(e.Revision, 10), e.Position, auditTime(e, time.RFC3339Nano), e.Type, orDash(e.MessageID),
			orDash(e.CorrelationID), orDash(e.Envelope), status, result, entryReason(e), money(e.Delta.Net),
			money(tt.Captured), money(tt.Refunded), money(tt.ChargedBack), money(tt.Reversed), money(tt.Net))
		for _, o := range e.Outbound {
			t.line(3, fmt.Sprintf("↳ %s %s  message %s  to %s%s", o.Kind, o.Name, o.MessageID, o.Exchange, routing(o.RoutingKey)))
		}
		for _, f := range e.Flags {
			t.line(3, "! "+f)
		}
		for _, p := range e.Postings {
			t.line(3, fmt.Sprintf("  %s %-6s %s %s %s", p.Entry, p.Side, p.Account.Code(), p.Account.Name(), money(p.Amount)))
		}
		for _, tr := range e.Transitions {
			t.line(3, fmt.Sprintf("  %s → %s: %s (caused by event %s)", orDash(string(tr.From)), tr.To, orDash(tr.Reason), tr.Cause))
		}
	}
	if err := t.render(out, 0); err != nil {
		return err
	}
	writeAuditNotes(out, rep, 0)
	return nil
}

func writeAuditHead(out io.Writer, rep projections.AuditReport, cur domain.Currency, width int) {
	money := func(v int64) string { return fmtMoney(v, cur) }
	fmt.Fprintln(out, fit(fmt.Sprintf("order %s  (stream %s)", rep.OrderID, rep.Stream), width))
	if !rep.AsOf.IsZero() {
		fmt.Fprintln(out, fit(fmt.Sprintf("as of %s: the facts recorded by then, folded with today's rules",
			rep.AsOf.UTC().Format(time.RFC3339Nano)), width))
	}
	m := rep.Final.Money
	fmt.Fprintln(out, fit(fmt.Sprintf("status %s  captured %s  refunded %s  charged back %s  reversed %s  net %s %s",
		rep.Final.Status, money(m.Captured), money(m.Refunded), money(m.ChargedBack), money(m.Reversed), money(m.Net), cur.Code), width))
	fmt.Fprintln(out)
}

// writeAuditNotes prints what is held, ignored and parked, each line
// within width (0: no bound).
func writeAuditNotes(out io.Writer, rep projections.AuditReport, width int) {
	if len(rep.Held)+len(rep.Ignored)+len(rep.Parked) > 0 {
		fmt.Fprintln(out)
	}
	for _, h := range rep.Held {
		fmt.Fprintln(out, fit(fmt.Sprintf("held    rev %d %s: %s", h.Revision, h.Type, h.Reason), width))
	}
	for _, ig := range rep.Ignored {
		fmt.Fprintln(out, fit(fmt.Sprintf("ignored rev %d %s: %s", ig.Revision, ig.Type, ig.Reason), width))
	}
	for _, p := range rep.Parked {
		line := fmt.Sprintf("parked  %s from rev %d (%s %s) since %s: %s", laneLabel(string(p.Kind)), p.FromRevision,
			p.Message, p.MessageID, p.ParkedAt.UTC().Format(time.RFC3339), p.Reason)
		if p.Detail != "" {
			line += ": " + oneLine(p.Detail)
		}
		if p.Retries > 0 {
			line += fmt.Sprintf(" (retried %d×)", p.Retries)
		}
		fmt.Fprintln(out, fit(line, width))
	}
	if len(rep.Parked) > 0 {
		fmt.Fprintf(out, "after a fix: ledger parked retry %s\n", rep.OrderID)
	}
}

// entryReason says why a fact did what it did: the transitions' reasons,
// or why it was held, ignored or could not be read.
func entryReason(e projections.AuditEntry) string {
	switch {
	case e.Error != "":
		return "undecodable: " + oneLine(e.Error)
	case e.Disposition != domain.DispApplied && e.Disposition != "":
		if e.Reason != "" {
			return string(e.Disposition) + ": " + e.Reason
		}
		return string(e.Disposition)
	}
	var rs []string
	lead := ""
	for _, t := range e.Transitions {
		if t.Reason == "" {
			continue
		}
		// "order cancelled: refund requested", "order cancelled: refunded"
		// read "order cancelled: refund requested; refunded".
		r := t.Reason
		if l, rest, ok := strings.Cut(r, ": "); ok && len(rs) > 0 && l == lead {
			r = rest
		} else if ok {
			lead = l
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 && e.Reason != "" {
		rs = append(rs, e.Reason)
	}
	return strings.Join(rs, "; ")
}

// auditTime is when the fact happened (else when it was stored).
func auditTime(e projections.AuditEntry, layout string) string {
	t := e.At
	if t.IsZero() {
		t = e.Recorded
	}
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(layout)
}

// factName drops the contracts' IntegrationEvent suffix.
func factName(t string) string { return strings.TrimSuffix(t, "IntegrationEvent") }

// short is the first 8 characters of an id: enough to tell ids of one
// order apart and to find the whole one with --wide or --json.
func short(id string) string {
	if id == "" {
		return "-"
	}
	if r := []rune(id); len(r) > 8 {
		return string(r[:8])
	}
	return id
}

// fit cuts s to width runes, marking the cut (width 0: no bound).
func fit(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	if width == 1 {
		return "…"
	}
	return string(r[:width-1]) + "…"
}

// column is one column of a textTable.
type column struct {
	head  string
	right bool // numbers: aligned right
	min   int  // > 0: the column may shrink to this many runes to fit
}

// textTable lays out rows in columns, with free lines (the messages a
// fact caused, say) under a row that do not widen the columns.
type textTable struct {
	cols []column
	rows []tableRow
}

type tableRow struct {
	cells []string
	line  string // a free line instead of cells
	at    int    // the column the free line starts at
}

func (t *textTable) row(cells ...string) { t.rows = append(t.rows, tableRow{cells: cells}) }

func (t *textTable) line(at int, s string) { t.rows = append(t.rows, tableRow{line: s, at: at}) }

const colGap = 2

// render writes the table within width runes (0: no bound), shrinking
// the columns that may (the widest first) and cutting their cells.
func (t *textTable) render(out io.Writer, width int) error {
	w := make([]int, len(t.cols))
	for i, c := range t.cols {
		w[i] = utf8.RuneCountInString(c.head)
	}
	for _, r := range t.rows {
		for i, c := range r.cells {
			w[i] = max(w[i], utf8.RuneCountInString(c))
		}
	}
	total := func() int {
		n := colGap * (len(w) - 1)
		for _, x := range w {
			n += x
		}
		return n
	}
	for width > 0 && total() > width {
		widest := -1
		for i, c := range t.cols {
			if c.min > 0 && w[i] > max(c.min, utf8.RuneCountInString(c.head)) && (widest < 0 || w[i] > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break // nothing left to shrink
		}
		w[widest]--
	}
	var b strings.Builder
	write := func(cells []string) {
		b.Reset()
		for i, c := range cells {
			c = fit(c, w[i])
			pad := strings.Repeat(" ", w[i]-utf8.RuneCountInString(c))
			if t.cols[i].right {
				b.WriteString(pad + c)
			} else if i < len(cells)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", colGap))
			}
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
	heads := make([]string, len(t.cols))
	for i, c := range t.cols {
		heads[i] = c.head
	}
	write(heads)
	for _, r := range t.rows {
		if r.cells == nil {
			indent := 0
			for i := range r.at {
				indent += w[i] + colGap
			}
			fmt.Fprintln(out, fit(strings.Repeat(" ", indent)+r.line, width))
			continue
		}
		write(r.cells)
	}
	return nil
}

// localParked reads an order's parked lanes from the read model when
// there is one (the tools must not create it).
func localParked(ctx context.Context, c Config, orderID string) ([]projections.Parked, error) {
	if _, err := os.Stat(c.readModelPath()); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	rm, err := bolt.OpenReadModel(c.readModelPath())
	if err != nil {
		return nil, err
	}
	defer rm.Close()
	return projections.ParkedOf(ctx, rm, orderID)
}

func routing(k string) string {
	if k == "" {
		return ""
	}
	return " / " + k
}

func fmtMoney(v int64, cur domain.Currency) string {
	if v < 0 {
		return "-" + domain.FormatMinor(-v, cur.Decimals)
	}
	return domain.FormatMinor(v, cur.Decimals)
}

func (a *app) streamsCmd() *cobra.Command {
	var prefix, after, server string
	var limit int
	cmd := &cobra.Command{
		Use:   "streams [stream]",
		Short: "List streams, or print one stream's events",
		Long: `List the streams (--prefix, --after and --limit page through them), or print
one stream's events, one JSON object a line.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			if limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", limit)
			}
			return a.route(ctx, c, server, func() error {
				store, err := openStore(ctx, c, logger)
				if err != nil {
					return err
				}
				defer store.Close()
				if len(args) == 1 {
					evs, err := store.ReadStream(ctx, args[0], 0, domain.Forwards, 0)
					if errors.Is(err, domain.ErrStreamNotFound) {
						return fmt.Errorf("stream %s: not found", args[0])
					}
					if err != nil {
						return err
					}
					enc := json.NewEncoder(a.stdout)
					for _, e := range evs {
						if err := enc.Encode(httpapi.EventOf(e)); err != nil {
							return err
						}
					}
					return nil
				}
				infos, err := store.ListStreams(ctx, prefix, after, limit)
				if err != nil {
					return err
				}
				rows := make([]streamRow, len(infos))
				for i, in := range infos {
					rows[i] = streamRow{Name: in.Name, Count: in.Count, LastRevision: in.LastRevision}
				}
				return writeStreams(a.stdout, rows)
			}, func(base string) error {
				api := apiClient{base: base}
				if len(args) == 1 {
					return remoteStream(ctx, api, args[0], a.stdout)
				}
				var res struct {
					Streams []streamRow `json:"streams"`
				}
				q := url.Values{"prefix": {prefix}, "limit": {strconv.Itoa(limit)}}
				if after != "" {
					q.Set("after", after)
				}
				if err := api.getJSON(ctx, "/api/streams", q, &res); err != nil {
					return err
				}
				return writeStreams(a.stdout, res.Streams)
			})
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", domain.StreamPrefix, "only streams starting with this")
	cmd.Flags().StringVar(&after, "after", "", "list streams after this name (paging)")
	cmd.Flags().IntVar(&limit, "limit", 50, "streams per page")
	serverFlags(cmd.Flags(), &server, nil)
	return cmd
}

type streamRow struct {
	Name         string `json:"name"`
	Count        uint64 `json:"count"`
	LastRevision uint64 `json:"lastRevision"`
}

func writeStreams(out io.Writer, rows []streamRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tEVENTS\tLAST REVISION")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%d\n", r.Name, r.Count, r.LastRevision)
	}
	return w.Flush()
}

// remoteStream prints a stream read through the server, page by page.
func remoteStream(ctx context.Context, api apiClient, stream string, out io.Writer) error {
	enc := json.NewEncoder(out)
	q := url.Values{"limit": {"1000"}, "from": {"0"}}
	for {
		var page struct {
			Events []httpapi.Event `json:"events"`
			Next   *uint64         `json:"next"`
		}
		err := api.getJSON(ctx, "/api/streams/"+url.PathEscape(stream), q, &page)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fmt.Errorf("stream %s: not found", stream)
		}
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		if page.Next == nil {
			return nil
		}
		q.Set("from", strconv.FormatUint(*page.Next, 10))
	}
}
