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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The operator tools open the store themselves when no `ledger serve`
// holds it, and otherwise go through the running server's HTTP API
// (--server): the embedded store is one file that one process owns.

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
While 'ledger serve' runs, pass --server http://127.0.0.1:8080 --token T.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, logger, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			var res projections.ReplayResult
			restated := 0
			if server != "" {
				res, err = remoteReplay(cmd.Context(), server, token, dryRun, restate)
			} else {
				res, restated, err = a.localReplay(cmd.Context(), c, logger, dryRun, restate)
			}
			if err != nil {
				return err
			}
			return a.printReplay(res, restated, dryRun, report)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would change; keep the current read model")
	cmd.Flags().BoolVar(&restate, "restate", false, "append a restatement fact to each changed order")
	cmd.Flags().StringVar(&report, "report", "", "write the changes as JSON to this file")
	cmd.Flags().StringVar(&server, "server", "", "replay through a running ledger serve at this URL")
	cmd.Flags().StringVar(&token, "token", "", "the server's admin token (or LEDGER_HTTP_TOKEN)")
	return cmd
}

func (a *app) localReplay(ctx context.Context, c Config, logger *zap.Logger, dryRun, restate bool) (projections.ReplayResult, int, error) {
	store, err := openStore(ctx, c, logger)
	if err != nil {
		return projections.ReplayResult{}, 0, inUseHint(err)
	}
	defer store.Close()
	if err := bolt.RemoveStaleRebuilds(c.readModelPath()); err != nil {
		logger.Warn("could not remove a half-built read model", zap.Error(err))
	}
	cur, err := bolt.OpenReadModel(c.readModelPath())
	if err != nil {
		return projections.ReplayResult{}, 0, inUseHint(err)
	}
	rm := bolt.NewSwappable(cur)
	defer rm.Close()
	var total int64
	if h, ok, err := store.Head(ctx); err == nil && ok && c.Store == "embedded" {
		total = int64(h.Commit) // embedded positions count events
	}
	return rm.Rebuild(ctx, store, bolt.RebuildOptions{Rules: c.rules(), DryRun: dryRun, Restate: restate, Progress: a.progress(logger, total)})
}

// progress draws a bar on a terminal and logs a line otherwise.
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
		fmt.Fprintf(a.stderr, "\r%s%d facts, %d orders, %.0f facts/s, %s left   ", bar, p.Facts, p.Orders, rate, left)
	}
}

func (a *app) printReplay(res projections.ReplayResult, restated int, dryRun bool, report string) error {
	fmt.Fprintln(a.stderr)
	if report != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(report, b, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	mode := "replayed"
	if dryRun {
		mode = "dry run"
	}
	fmt.Fprintf(a.stdout, "%s: %d facts, %d orders in %s (%.0f facts/s); %d changed; %d restated\n",
		mode, res.Facts, res.Orders, res.Elapsed.Round(time.Millisecond), float64(res.Facts)/max(res.Elapsed.Seconds(), 1e-9), len(res.Changes), restated)
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

func remoteReplay(ctx context.Context, server, token string, dryRun, restate bool) (projections.ReplayResult, error) {
	var res projections.ReplayResult
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "1")
	}
	if restate {
		q.Set("restate", "1")
	}
	if token == "" {
		token = os.Getenv("LEDGER_HTTP_TOKEN")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/api/admin/replay?"+q.Encode(), nil)
	if err != nil {
		return res, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return res, doJSON(req, &res)
}

func doJSON(req *http.Request, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

func inUseHint(err error) error {
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("%w (a running 'ledger serve' owns it: pass --server http://127.0.0.1:8080)", err)
	}
	return err
}

func (a *app) auditCmd() *cobra.Command {
	var asJSON bool
	var server string
	cmd := &cobra.Command{
		Use:   "audit <orderId>",
		Short: "Show an order's full financial history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, logger, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			id := strings.ToLower(args[0])
			var rep projections.AuditReport
			if server != "" {
				req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, strings.TrimRight(server, "/")+"/api/orders/"+url.PathEscape(id)+"/audit", nil)
				if err != nil {
					return err
				}
				err = doJSON(req, &rep)
				if err != nil {
					return err
				}
			} else {
				store, err := openStore(cmd.Context(), c, logger)
				if err != nil {
					return inUseHint(err)
				}
				defer store.Close()
				rep, err = projections.Audit(cmd.Context(), store, c.rules(), c.outbound(), id)
				if errors.Is(err, domain.ErrStreamNotFound) {
					return fmt.Errorf("order %s: no facts stored", id)
				}
				if err != nil {
					return err
				}
				if rep.Parked, err = localParked(cmd.Context(), c, id); err != nil {
					logger.Warn("cannot read the parked lanes", zap.Error(err))
				}
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return writeAuditTable(a.stdout, rep, c.currency())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	cmd.Flags().StringVar(&server, "server", "", "read through a running ledger serve at this URL")
	return cmd
}

// writeAuditTable prints the audit for people.
func writeAuditTable(out io.Writer, rep projections.AuditReport, cur domain.Currency) error {
	money := func(v int64) string { return fmtMoney(v, cur) }
	fmt.Fprintf(out, "order %s  (stream %s)\n", rep.OrderID, rep.Stream)
	fmt.Fprintf(out, "status %s  captured %s  refunded %s  charged back %s  reversed %s  net %s %s\n\n",
		rep.Final.Status, money(rep.Final.Money.Captured), money(rep.Final.Money.Refunded), money(rep.Final.Money.ChargedBack),
		money(rep.Final.Money.Reversed), money(rep.Final.Money.Net), cur.Code)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REV\tTIME\tFACT\tMESSAGE ID\tCORRELATION\tSTATUS\tRESULT\tΔ NET\tCAPTURED\tREFUNDED\tCHARGED BACK\tNET")
	for _, e := range rep.Entries {
		status := string(e.StatusBefore) + " → " + string(e.StatusAfter)
		if e.StatusBefore == "" {
			status = "→ " + string(e.StatusAfter)
		}
		result := string(e.Disposition)
		if e.Reason != "" {
			result += ": " + e.Reason
		}
		if e.Error != "" {
			result = "undecodable: " + e.Error
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Revision, e.At.UTC().Format(time.RFC3339),
			strings.TrimSuffix(e.Type, "IntegrationEvent"), e.MessageID, e.CorrelationID, status, result,
			money(e.Delta.Net), money(e.Totals.Captured), money(e.Totals.Refunded), money(e.Totals.ChargedBack), money(e.Totals.Net))
		for _, o := range e.Outbound {
			fmt.Fprintf(w, "\t\t  ↳ %s %s\t%s\t%s\t\t\t\t\t\t\t\n", o.Kind, o.Name, o.MessageID, o.Exchange+routing(o.RoutingKey))
		}
		for _, f := range e.Flags {
			fmt.Fprintf(w, "\t\t  ! %s\t\t\t\t\t\t\t\t\t\n", f)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, h := range rep.Held {
		fmt.Fprintf(out, "held    rev %d %s: %s\n", h.Revision, h.Type, h.Reason)
	}
	for _, ig := range rep.Ignored {
		fmt.Fprintf(out, "ignored rev %d %s: %s\n", ig.Revision, ig.Type, ig.Reason)
	}
	for _, p := range rep.Parked {
		fmt.Fprintf(out, "parked  %s from rev %d (%s %s) since %s: %s", laneLabel(string(p.Kind)), p.FromRevision,
			p.Message, p.MessageID, p.ParkedAt.UTC().Format(time.RFC3339), p.Reason)
		if p.Detail != "" {
			fmt.Fprintf(out, ": %s", oneLine(p.Detail))
		}
		if p.Retries > 0 {
			fmt.Fprintf(out, " (retried %d×)", p.Retries)
		}
		fmt.Fprintln(out)
	}
	if len(rep.Parked) > 0 {
		fmt.Fprintf(out, "after a fix: ledger parked retry %s\n", rep.OrderID)
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
		return nil, inUseHint(err)
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
	var prefix, after string
	var limit int
	cmd := &cobra.Command{
		Use:   "streams [stream]",
		Short: "List streams, or print one stream's events",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, logger, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			store, err := openStore(cmd.Context(), c, logger)
			if err != nil {
				return inUseHint(err)
			}
			defer store.Close()
			if len(args) == 1 {
				evs, err := store.ReadStream(cmd.Context(), args[0], 0, domain.Forwards, 0)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(a.stdout)
				for _, e := range evs {
					if err := enc.Encode(map[string]any{"revision": e.Revision, "position": e.Position.String(), "id": e.ID,
						"type": e.Type, "created": e.Created, "data": json.RawMessage(e.Data), "metadata": rawOrNull(e.Metadata)}); err != nil {
						return err
					}
				}
				return nil
			}
			infos, err := store.ListStreams(cmd.Context(), prefix, after, limit)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "STREAM\tEVENTS\tLAST REVISION")
			for _, in := range infos {
				fmt.Fprintf(w, "%s\t%d\t%d\n", in.Name, in.Count, in.LastRevision)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", domain.StreamPrefix, "only streams starting with this")
	cmd.Flags().StringVar(&after, "after", "", "list streams after this name (paging)")
	cmd.Flags().IntVar(&limit, "limit", 50, "streams per page")
	return cmd
}

func rawOrNull(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(b)
}
