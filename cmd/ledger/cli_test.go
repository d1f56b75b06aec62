package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/internal/testenv"
	"github.com/bookworm-ledger/ledger/projections"
)

// seedStore stores the facts of orders in a fresh embedded store, the way
// the ingester would, and returns the data dir.
func seedStore(t testing.TB, dir string, orders []traffic.Order, withTimeouts bool) {
	t.Helper()
	l, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	ctx := context.Background()
	cur := domain.Currency{Code: "USD", Decimals: 2}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for _, o := range orders {
		for i, st := range o.Steps {
			id := traffic.MessageID(o.ID, i)
			w, err := traffic.Encode(st, traffic.Bare, id, at.Add(time.Duration(i)*time.Minute))
			require.NoError(t, err)
			p, err := ingest.Prepare(ingest.Message{MessageID: id, CorrelationID: o.ID, Type: st.Type, Envelope: domain.EnvelopeBare, Body: w.Body}, cur, at)
			require.NoError(t, err)
			_, err = l.Append(ctx, p.Stream, domain.Any, p.Event)
			require.NoError(t, err)
		}
		if withTimeouts && o.Scenario == traffic.Expired {
			for attempt := 1; attempt <= 3; attempt++ {
				_, err := projections.AppendTimeout(ctx, l, cur, projections.Due{OrderID: o.ID, Deadline: at.Add(time.Duration(attempt) * 30 * time.Minute), Attempt: attempt})
				require.NoError(t, err)
			}
		}
	}
}

// ledger runs the CLI in-process with a hermetic environment.
func ledger(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	err := runWith(context.Background(), args, &out, &errb, getenv, environ)
	return out.String(), errb.String(), err
}

func onePerScenario() []traffic.Order {
	var plan []traffic.Order
	for i, s := range traffic.Scenarios {
		plan = append(plan, traffic.Plan(uint64(500+i), 1, []traffic.Scenario{s})[0])
	}
	return plan
}

func TestAuditEveryLifecycleScenarioAsTableAndJSON(t *testing.T) {
	dir := t.TempDir()
	plan := onePerScenario()
	seedStore(t, dir, plan, true)
	env := map[string]string{"LEDGER_DATA_DIR": dir}
	for _, o := range plan {
		t.Run(string(o.Scenario), func(t *testing.T) {
			out, _, err := ledger(t, env, "audit", o.ID, "--json")
			require.NoError(t, err)
			var rep projections.AuditReport
			require.NoError(t, json.Unmarshal([]byte(out), &rep))
			assert.Equal(t, o.ID, rep.OrderID)
			assert.Equal(t, traffic.FinalStatus[o.Scenario], string(rep.Final.Status))
			want := len(o.Steps)
			if o.Scenario == traffic.Expired {
				want += 3
			}
			require.Len(t, rep.Entries, want)
			var outbound []string
			for i, e := range rep.Entries {
				assert.Equal(t, uint64(i), e.Revision)
				assert.NotEmpty(t, e.MessageID, "entry %d", i)
				assert.Equal(t, o.ID, e.CorrelationID)
				for _, ob := range e.Outbound {
					outbound = append(outbound, ob.Name)
					assert.Len(t, ob.MessageID, 36, "deterministic UUID message id")
				}
			}
			wantOut := append(append([]string{}, expected[o.Scenario].events...), expected[o.Scenario].commands...)
			assert.ElementsMatch(t, wantOut, outbound)
			last := rep.Entries[len(rep.Entries)-1]
			assert.Equal(t, rep.Final.Money, last.Totals, "running totals end at the final money")

			table, _, err := ledger(t, env, "audit", o.ID)
			require.NoError(t, err)
			assert.Contains(t, table, "order "+o.ID)
			assert.Contains(t, table, "status "+traffic.FinalStatus[o.Scenario])
			for _, name := range wantOut {
				assert.Contains(t, table, name)
			}
			assert.NotContains(t, table, "@example.com", "no e-mail addresses in the audit table")
		})
	}
	_, _, err := ledger(t, env, "audit", "0196a6b0-0000-7000-8000-0000000000ff")
	assert.ErrorContains(t, err, "no facts stored")
}

func readSummary(t *testing.T, dir, id string) projections.Summary {
	t.Helper()
	rm, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
	require.NoError(t, err)
	defer rm.Close()
	s, ok, err := rm.Summary(context.Background(), id)
	require.NoError(t, err)
	require.True(t, ok, "order %s in the read model", id)
	return s
}

func TestReplayWithChangedRuleReportsRestatesOnceAndSwaps(t *testing.T) {
	dir := t.TempDir()
	plan := traffic.Plan(77, 6, []traffic.Scenario{traffic.Refunded, traffic.Fulfilled})
	seedStore(t, dir, plan, false)
	var refunded []string
	for _, o := range plan {
		if o.Scenario == traffic.Refunded {
			refunded = append(refunded, o.ID)
		}
	}
	require.NotEmpty(t, refunded)

	// The read model as the "old code" built it: refunds wait for the provider.
	old := map[string]string{"LEDGER_DATA_DIR": dir, "LEDGER_RULES_REFUND_SETTLEMENT": "provider"}
	_, _, err := ledger(t, old, "replay")
	require.NoError(t, err)
	assert.Equal(t, domain.StatusRefunding, readSummary(t, dir, refunded[0]).Status)

	// The fix: immediate settlement. A dry run reports, and changes nothing.
	env := map[string]string{"LEDGER_DATA_DIR": dir}
	report := filepath.Join(t.TempDir(), "report.json")
	out, _, err := ledger(t, env, "replay", "--dry-run", "--report", report)
	require.NoError(t, err)
	assert.Contains(t, out, fmt.Sprintf("%d changed", len(refunded)))
	var res projections.ReplayResult
	b, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &res))
	require.Len(t, res.Changes, len(refunded))
	for _, c := range res.Changes {
		assert.Contains(t, refunded, c.OrderID)
		require.NotNil(t, c.Before)
		assert.Equal(t, domain.StatusRefunding, c.Before.Status)
		assert.Equal(t, domain.StatusRefunded, c.After.Status)
		assert.Equal(t, c.After.Money.Captured, c.After.Money.Refunded)
	}
	assert.Equal(t, domain.StatusRefunding, readSummary(t, dir, refunded[0]).Status, "dry run keeps the read model")

	restatedReport := filepath.Join(t.TempDir(), "restated.json")
	out, _, err = ledger(t, env, "replay", "--restate", "--report", restatedReport)
	require.NoError(t, err)
	assert.Contains(t, out, fmt.Sprintf("%d restated", len(refunded)))
	assert.Equal(t, domain.StatusRefunded, readSummary(t, dir, refunded[0]).Status, "the rebuilt model is swapped in")
	b, err = os.ReadFile(restatedReport)
	require.NoError(t, err)
	var restated projections.ReplayResult
	require.NoError(t, json.Unmarshal(b, &restated))
	assert.Equal(t, len(refunded), restated.Restated, "the report (and the API's answer) says how many were restated")

	out, _, err = ledger(t, env, "replay", "--restate")
	require.NoError(t, err)
	assert.Contains(t, out, "0 changed; 0 restated", "running it twice adds nothing")

	// Each changed order got exactly one restatement, which tells
	// downstream orderStatusUpdated.
	audit, _, err := ledger(t, env, "audit", refunded[0], "--json")
	require.NoError(t, err)
	var rep projections.AuditReport
	require.NoError(t, json.Unmarshal([]byte(audit), &rep))
	n := 0
	for _, e := range rep.Entries {
		if e.Type == string(domain.FactOrderRestated) {
			n++
			require.NotEmpty(t, e.Outbound)
			assert.Equal(t, "orderStatusUpdated", e.Outbound[0].Name)
		}
	}
	assert.Equal(t, 1, n)
}

func TestReplayKilledMidwayLeavesReadModelUsable(t *testing.T) {
	dir := t.TempDir()
	plan := traffic.Plan(99, 6000, nil)
	seedStore(t, dir, plan, false)
	env := append(os.Environ(), "LEDGER_DATA_DIR="+dir, "LEDGER_LOG_FORMAT=json")
	first := exec.Command(ledgerBin, "replay")
	first.Env = env
	out, err := first.CombinedOutput()
	require.NoError(t, err, "%s", out)
	before := readSummary(t, dir, plan[0].ID)

	killed := false
	for delay := 300 * time.Millisecond; delay > time.Millisecond && !killed; delay /= 2 {
		cmd := exec.Command(ledgerBin, "replay")
		cmd.Env = env
		require.NoError(t, cmd.Start())
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed = true
		} else {
			t.Logf("replay finished before the kill at %s (%v); trying sooner", delay, err)
		}
	}
	require.True(t, killed, "could not kill a replay midway")

	// The old read model is intact and usable.
	after := readSummary(t, dir, plan[0].ID)
	assert.Equal(t, before, after)
	rm, err := bolt.OpenReadModel(filepath.Join(dir, "readmodel.db"))
	require.NoError(t, err)
	n, err := rm.Count(context.Background())
	require.NoError(t, err)
	assert.Equal(t, len(plan), n)
	require.NoError(t, rm.Close())

	// The next replay cleans up the half-built file and succeeds.
	again := exec.Command(ledgerBin, "replay")
	again.Env = env
	out, err = again.CombinedOutput()
	require.NoError(t, err, "%s", out)
	left, _ := filepath.Glob(filepath.Join(dir, "readmodel.db.replay-*"))
	assert.Empty(t, left)
}

func TestConfigErrorsSayWhatToFix(t *testing.T) {
	env := map[string]string{
		"LEDGER_STORE": "postgres", "LEDGER_AMQP_URL": "http://x", "LEDGER_AMQP_QUEUE_TYPE": "stream",
		"LEDGER_RULES_REFUND_SETTLEMENT": "later", "LEDGER_RULES_CURRENCY": "usd", "LEDGER_AMQP_ENVELOPE": "soap",
	}
	_, _, err := ledger(t, env, "serve")
	require.Error(t, err)
	for _, want := range []string{"store \"postgres\": use embedded or esdb", "amqp.url", "amqp.queue_type \"stream\"",
		"rules.refund_settlement \"later\"", "rules.currency \"usd\"", "amqp.envelope \"soap\""} {
		assert.Contains(t, err.Error(), want)
	}
	_, _, err = ledger(t, map[string]string{"LEDGER_PROFILE": "moon"}, "serve")
	assert.ErrorContains(t, err, "unknown profile \"moon\"")

	// A password in the URL never shows in the error.
	_, _, err = ledger(t, map[string]string{"LEDGER_AMQP_URL": "ftp://user:s3cret@host/"}, "serve")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestProfilesAndPrecedence(t *testing.T) {
	c, err := loadConfig("", nil, func(k string) string { return map[string]string{"LEDGER_PROFILE": "staging"}[k] })
	require.NoError(t, err)
	assert.Equal(t, "amqp://stg.eventbus:5672/", c.AMQP.URL)
	assert.Equal(t, "json", c.Log.Format)
	assert.Equal(t, "127.0.0.1:8080", c.HTTP.Addr, "HTTP binds loopback by default")

	file := filepath.Join(t.TempDir(), "ledger.yaml")
	require.NoError(t, os.WriteFile(file, []byte("profile: qa\namqp:\n  queue: from-file\nrules:\n  placement_timeout: 5m\n"), 0o600))
	c, err = loadConfig(file, nil, func(k string) string {
		return map[string]string{"LEDGER_AMQP_QUEUE": "from-env"}[k]
	})
	require.NoError(t, err)
	assert.Equal(t, "amqp://qa.eventbus:5672/", c.AMQP.URL, "profile from the file")
	assert.Equal(t, "from-env", c.AMQP.Queue, "environment beats the file")
	assert.Equal(t, 5*time.Minute, c.Rules.PlacementTimeout)
}

func TestVersion(t *testing.T) {
	out, _, err := ledger(t, nil, "version")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "ledger "), out)
}

// byScenario is the order of plan that plays s.
func byScenario(t *testing.T, plan []traffic.Order, s traffic.Scenario) traffic.Order {
	t.Helper()
	for _, o := range plan {
		if o.Scenario == s {
			return o
		}
	}
	t.Fatalf("no %s order in the plan", s)
	return traffic.Order{}
}

// widest is the widest line of out, in runes.
func widest(out string) (int, string) {
	n, line := 0, ""
	for _, l := range strings.Split(out, "\n") {
		if w := utf8.RuneCountInString(l); w > n {
			n, line = w, l
		}
	}
	return n, line
}

// assertCamelCase walks a JSON document and fails on any key that starts
// with an upper-case letter (keys under skip, free-form maps, are not
// walked).
func assertCamelCase(t *testing.T, doc []byte, skip ...string) {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(doc, &v), "%s", doc)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				r, _ := utf8.DecodeRuneInString(k)
				assert.False(t, unicode.IsUpper(r), "key %s%s is not camelCase", path, k)
				if !slices.Contains(skip, k) {
					walk(path+k+".", val)
				}
			}
		case []any:
			for _, val := range x {
				walk(path, val)
			}
		}
	}
	walk("", v)
}

// moneyRows parses the money table of an audit: per row, the running
// totals captured, refunded, charged back, reversed and net (minor units).
func moneyRows(t *testing.T, table string, decimals int) [][5]int64 {
	t.Helper()
	_, money, ok := strings.Cut(table, "\nmoney (")
	require.True(t, ok, "a money table:\n%s", table)
	lines := strings.Split(money, "\n")
	require.Contains(t, lines[1], "CAPTURED  REFUNDED  CHARGED BACK  REVERSED")
	var rows [][5]int64
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) < 7 {
			break
		}
		var r [5]int64
		for i, s := range f[len(f)-5:] {
			n, err := domain.ParseDecimal(s, decimals)
			require.NoError(t, err, "%q in %q", s, l)
			r[i] = n
		}
		rows = append(rows, r)
	}
	return rows
}

func TestAuditTableFits120AndEveryRowAddsUp(t *testing.T) {
	dir := t.TempDir()
	plan := onePerScenario()
	seedStore(t, dir, plan, true)
	env := map[string]string{"LEDGER_DATA_DIR": dir}
	won := byScenario(t, plan, traffic.ChargebackWon)
	for _, o := range plan {
		table, stderr, err := ledger(t, env, "audit", o.ID)
		require.NoError(t, err)
		assert.Empty(t, stderr, "an offline command is quiet")
		n, line := widest(table)
		assert.LessOrEqual(t, n, 120, "%s: widest line:\n%s", o.Scenario, line)
		assert.NotContains(t, table, "orderProcessing /", "%s: exchanges are not correlations", o.Scenario)
		rows := moneyRows(t, table, 2)
		var rep projections.AuditReport
		out, _, err := ledger(t, env, "audit", o.ID, "--json")
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		require.Len(t, rows, len(rep.Entries), "%s: a money row a fact", o.Scenario)
		for i, r := range rows {
			assert.Equal(t, r[4], r[0]-r[1]-r[2]+r[3], "%s row %d: captured - refunded - charged back + reversed = net", o.Scenario, i)
			tot := rep.Entries[i].Totals
			assert.Equal(t, [5]int64{tot.Captured, tot.Refunded, tot.ChargedBack, tot.Reversed, tot.Net}, r, "%s row %d", o.Scenario, i)
		}
	}

	// The reversed chargeback, as the issue saw it: reason, reversed,
	// correlation under its own header.
	table, _, err := ledger(t, env, "audit", won.ID)
	require.NoError(t, err)
	header := ""
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "REV  TIME") {
			header = l
		}
	}
	for _, col := range []string{"TIME", "FACT", "MESSAGE", "CORRELATION", "REASON"} {
		assert.Contains(t, header, col)
	}
	corrAt := strings.Index(header, "CORRELATION")
	var rep projections.AuditReport
	out, _, err := ledger(t, env, "audit", won.ID, "--json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	for _, e := range rep.Entries {
		var row string
		for _, l := range strings.Split(table, "\n") {
			if strings.Contains(l, e.MessageID[:8]) && strings.Contains(l, e.At.UTC().Format("2006-01-02 15:04:05")) {
				row = l
			}
		}
		require.NotEmpty(t, row, "a row for rev %d with its time and short message id", e.Revision)
		assert.Equal(t, e.CorrelationID[:8], strings.Fields(string([]rune(row)[corrAt:]))[0], "the correlation id under CORRELATION")
	}
	assert.Contains(t, table, "chargeback reversed: dispute won")
	assert.Contains(t, table, "REVERSED")
	last := moneyRows(t, table, 2)[len(rep.Entries)-1]
	assert.Equal(t, rep.Final.Money.Reversed, last[3])
	assert.Equal(t, last[0], last[4], "reversed: the money is back")
	for _, e := range rep.Entries {
		for _, ob := range e.Outbound {
			assert.Contains(t, table, "↳ "+string(ob.Kind)+" "+ob.Name+" "+ob.MessageID[:8], "outbound on its own indented line")
		}
	}

	// --wide: everything, whole ids.
	wide, _, err := ledger(t, env, "audit", won.ID, "--wide")
	require.NoError(t, err)
	for _, e := range rep.Entries {
		assert.Contains(t, wide, e.MessageID)
		assert.Contains(t, wide, e.Type)
		for _, ob := range e.Outbound {
			assert.Contains(t, wide, ob.MessageID)
			assert.Contains(t, wide, "to "+ob.Exchange+routing(ob.RoutingKey))
		}
	}
	assert.Contains(t, wide, "CHARGEBACK → CHARGEBACK_REVERSED")
	assertCamelCase(t, []byte(out))
}

func TestReplayReportShape(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, onePerScenario(), true)
	env := map[string]string{"LEDGER_DATA_DIR": dir}
	_, stderr, err := ledger(t, env, "replay")
	require.NoError(t, err)
	assert.Empty(t, stderr)
	report := filepath.Join(t.TempDir(), "report.json")
	out, stderr, err := ledger(t, env, "replay", "--dry-run", "--report", report)
	require.NoError(t, err)
	assert.Empty(t, stderr, "quiet, not even a blank line")
	assert.Contains(t, out, "0 changed")
	assertReplayReport(t, report, 0)
}

// assertReplayReport checks a replay report's stable shape.
func assertReplayReport(t *testing.T, file string, changes int) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assertCamelCase(t, b)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &raw))
	if changes == 0 {
		assert.Equal(t, "[]", string(raw["changes"]), "no changes is [], not null")
	}
	var ms any
	require.NoError(t, json.Unmarshal(raw["elapsedMs"], &ms))
	n, ok := ms.(float64)
	require.True(t, ok, "elapsedMs is a number: %s", raw["elapsedMs"])
	assert.Equal(t, n, float64(int64(n)), "whole milliseconds")
	assert.Less(t, n, float64(60_000), "milliseconds, not nanoseconds")
	assert.NotContains(t, raw, "elapsed")
	var head struct {
		Commit *uint64 `json:"commit"`
	}
	require.NoError(t, json.Unmarshal(raw["head"], &head))
	assert.NotNil(t, head.Commit)
	var res projections.ReplayResult
	require.NoError(t, json.Unmarshal(b, &res))
	assert.Len(t, res.Changes, changes)
	assert.Equal(t, time.Duration(n)*time.Millisecond, res.Elapsed, "the report reads back")
}

func TestOfflineCommandsPrintNoInfoLines(t *testing.T) {
	dir := t.TempDir()
	plan := onePerScenario()
	seedStore(t, dir, plan, true)
	env := map[string]string{"LEDGER_DATA_DIR": dir}
	id := plan[0].ID
	for _, args := range [][]string{{"audit", id}, {"audit", id, "--json"}, {"audit", id, "--wide"}, {"streams"},
		{"streams", domain.StreamName(id)}, {"replay", "--dry-run"}, {"replay"}} {
		out, stderr, err := ledger(t, env, args...)
		require.NoError(t, err, "%v", args)
		assert.NotEmpty(t, out, "%v", args)
		assert.Empty(t, stderr, "%v: quiet", args)
		_, stderr, err = ledger(t, env, append(args, "--verbose")...)
		require.NoError(t, err, "%v", args)
		assert.Contains(t, stderr, "INFO", "%v --verbose: says what it does", args)
	}
	// Warnings still show: a log level that asks for less is kept.
	_, stderr, err := ledger(t, map[string]string{"LEDGER_DATA_DIR": dir, "LEDGER_LOG_LEVEL": "error"}, "streams", "--verbose")
	require.NoError(t, err)
	assert.NotContains(t, stderr, "INFO")
}

func TestStreamsOneStreamAsJSONLines(t *testing.T) {
	dir := t.TempDir()
	plan := onePerScenario()
	seedStore(t, dir, plan, true)
	env := map[string]string{"LEDGER_DATA_DIR": dir}
	o := byScenario(t, plan, traffic.Expired)
	out, _, err := ledger(t, env, "streams", domain.StreamName(o.ID))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, len(o.Steps)+3)
	for i, l := range lines {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &e))
		assert.Equal(t, float64(i), e["revision"])
		assert.IsType(t, map[string]any{}, e["data"], "JSON data is JSON")
		assertCamelCase(t, []byte(l), "data", "metadata")
	}
	_, _, err = ledger(t, env, "streams", "order-nope")
	assert.ErrorContains(t, err, "stream order-nope: not found")
	out, _, err = ledger(t, env, "streams", "--limit", "2")
	require.NoError(t, err)
	assert.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 3, "a header and two streams")
}

// startServe runs `ledger serve` on dir against a fresh vhost with env on
// top (no admin token unless env gives one), and stops it when t ends.
func startServe(t *testing.T, dir string, env ...string) (*testenv.Serve, string) {
	t.Helper()
	u := testenv.Vhost(t)
	in, err := testenv.StartServe(context.Background(), testenv.ServeOptions{
		Binary: ledgerBin, AMQPURL: u, DataDir: dir,
		Env: append([]string{"LEDGER_HTTP_TOKEN=", "LEDGER_AMQP_QUEUE_TYPE=classic"}, env...),
	})
	require.NoError(t, err)
	t.Cleanup(func() { stopLedger(t, in) })
	return in, u
}

// cli runs the built binary on dir with env on top and returns stdout,
// stderr and the error.
func cli(t *testing.T, dir, amqpURL string, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(ledgerBin, args...)
	cmd.Env = append(append(os.Environ(), "LEDGER_DATA_DIR="+dir, "LEDGER_AMQP_URL="+amqpURL, "LEDGER_HTTP_TOKEN="), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// waitProjected waits until the server's read model has every order of
// plan in its final status.
func waitProjected(t *testing.T, in *testenv.Serve, plan []traffic.Order) {
	t.Helper()
	for _, o := range plan {
		var sum projections.Summary
		require.Eventually(t, func() bool {
			return getJSON(t, in, "/api/orders/"+o.ID, &sum) == 200 && string(sum.Status) == traffic.FinalStatus[o.Scenario]
		}, 30*time.Second, 50*time.Millisecond, "order %s projected", o.ID)
	}
}

// TestServerReadCommandsWithoutToken: while serve owns the store and has
// no admin token, every read command works through it: named by URL, by
// host:port, or found by itself.
func TestServerReadCommandsWithoutToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := onePerScenario()
	seedStore(t, dir, plan, true)
	in, u := startServe(t, dir)
	waitProjected(t, in, plan)
	won := byScenario(t, plan, traffic.ChargebackWon)

	for name, flags := range map[string][]string{
		"url": {"--server", in.URL()}, "host:port": {"--server", in.Addr()}, "discovered": nil,
	} {
		t.Run(name, func(t *testing.T) {
			run := func(args ...string) (string, string) {
				t.Helper()
				out, stderr, err := cli(t, dir, u, nil, append(args, flags...)...)
				require.NoError(t, err, "%v: %s%s", args, out, stderr)
				assert.Empty(t, stderr, "%v: quiet", args)
				return out, stderr
			}
			table, _ := run("audit", won.ID)
			assert.Contains(t, table, "status CHARGEBACK_REVERSED")
			assert.Contains(t, table, "chargeback reversed: dispute won")
			n, line := widest(table)
			assert.LessOrEqual(t, n, 120, line)
			for _, r := range moneyRows(t, table, 2) {
				assert.Equal(t, r[4], r[0]-r[1]-r[2]+r[3])
			}
			js, _ := run("audit", won.ID, "--json")
			assertCamelCase(t, []byte(js))

			list, _ := run("streams")
			for _, o := range plan {
				assert.Contains(t, list, domain.StreamName(o.ID))
			}
			one, _ := run("streams", domain.StreamName(won.ID))
			assert.Len(t, strings.Split(strings.TrimSpace(one), "\n"), len(won.Steps))
			for _, l := range strings.Split(strings.TrimSpace(one), "\n") {
				assertCamelCase(t, []byte(l), "data", "metadata")
			}

			report := filepath.Join(t.TempDir(), "report.json")
			out, _ := run("replay", "--dry-run", "--report", report)
			assert.Contains(t, out, "dry run: ")
			assert.Contains(t, out, "0 changed")
			assertReplayReport(t, report, 0)

			parked, _ := run("parked", "list")
			assert.Contains(t, parked, "nothing parked")
			pj, _ := run("parked", "list", "--json")
			assertCamelCase(t, []byte(pj))
			if flags != nil {
				dl, _ := run("deadletters", "list")
				assert.Contains(t, dl, "0 message(s)")
				dj, _ := run("deadletters", "list", "--json", "--queue", "skipped")
				assertCamelCase(t, []byte(dj), "headers")
				_, stderr, err := cli(t, dir, u, nil, append([]string{"deadletters", "show", "no-such-message"}, flags...)...)
				require.Error(t, err)
				assert.Contains(t, stderr, "message no-such-message: not among the first 1000 of error or skipped")
			}

			// A real replay needs the token: the refusal names the setting.
			_, stderr, err := cli(t, dir, u, nil, append([]string{"replay"}, flags...)...)
			require.Error(t, err)
			assert.Contains(t, stderr, "it has no admin token; start it with http.token set (LEDGER_HTTP_TOKEN) and pass --token or LEDGER_HTTP_TOKEN here")
		})
	}

	// --verbose says, in one line, where the tool went.
	_, stderr, err := cli(t, dir, u, nil, "streams", "--verbose")
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("ledger: %s is in use by ledger serve (pid %d): going through %s\n", dir, in.PID(), in.URL()), stderr)

	// Still the one owner: nothing here opened the store.
	require.NoError(t, in.Alive())
	assert.Contains(t, in.Logs(), `"dry_run":true`, "the dry runs went through the server")
}

// TestServerRefusedTokenSaysWhichSetting: a real replay and a retry
// through a server with a token say what is missing or wrong; a dry run
// needs no token at all.
func TestServerRefusedTokenSaysWhichSetting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := onePerScenario()[:3]
	seedStore(t, dir, plan, false)
	in, u := startServe(t, dir, "LEDGER_HTTP_TOKEN=right-token")
	waitProjected(t, in, plan)

	_, stderr, err := cli(t, dir, u, nil, "replay")
	require.Error(t, err)
	assert.Contains(t, stderr, "the server refused (401 Unauthorized): it needs its admin token; pass --token or set LEDGER_HTTP_TOKEN (http.token) here")
	_, stderr, err = cli(t, dir, u, nil, "replay", "--token", "wrong", "--server", in.Addr())
	require.Error(t, err)
	assert.Contains(t, stderr, "the server refused (401 Unauthorized): the token differs from its http.token")
	assert.NotContains(t, stderr, "right-token")
	_, stderr, err = cli(t, dir, u, []string{"LEDGER_HTTP_TOKEN=wrong"}, "parked", "retry", "--all")
	require.Error(t, err)
	assert.Contains(t, stderr, "the token differs")

	out, stderr, err := cli(t, dir, u, nil, "replay", "--dry-run", "--token", "wrong")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "0 changed", "a dry run only reads: no token asked, a wrong one ignored")
	out, stderr, err = cli(t, dir, u, []string{"LEDGER_HTTP_TOKEN=right-token"}, "replay")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "replayed: ")
	assert.Contains(t, out, "0 changed")
}

// TestDiscoverSecondServeRefusedNamingThePID: a second serve on the same
// data fails at once and says which process owns it.
func TestDiscoverSecondServeRefusedNamingThePID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, u := startServe(t, dir)
	addr, err := testenv.FreeAddr()
	require.NoError(t, err)
	cmd := exec.Command(ledgerBin, "serve")
	cmd.Env = append(os.Environ(), "LEDGER_DATA_DIR="+dir, "LEDGER_AMQP_URL="+u, "LEDGER_HTTP_ADDR="+addr, "LEDGER_LOG_FORMAT=json")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), fmt.Sprintf("%s is in use by ledger serve (pid %d, http %s, since ",
		filepath.Join(dir, "ledger.db"), in.PID(), in.Addr()))
	assert.NotContains(t, string(out), "timeout")
	assert.Less(t, took, 4*time.Second, "no long lock wait (race-built binary)")
	require.NoError(t, in.Alive())
	o, ok := readOwner(dir)
	require.True(t, ok)
	assert.Equal(t, in.PID(), o.PID, "the owner file is still the first serve's")

	require.NoError(t, in.Stop())
	_, err = os.Stat(ownerPath(dir))
	assert.ErrorIs(t, err, os.ErrNotExist, "a clean shutdown removes the owner file")
}

// TestDiscoverStaleOwnerFileIgnored: an owner file of a process that is
// gone, or of one that does not answer, is ignored by the tools and
// replaced by the next serve.
func TestDiscoverStaleOwnerFileIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := onePerScenario()[:2]
	seedStore(t, dir, plan, false)
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	deadPID := gone.Process.Pid
	require.False(t, processAlive(deadPID))

	for _, o := range []owner{
		{PID: deadPID, HTTP: "127.0.0.1:1", StartedAt: time.Now(), Version: "old"},
		{PID: os.Getpid(), HTTP: "127.0.0.1:1", StartedAt: time.Now(), Version: "not a server"},
	} {
		require.NoError(t, writeOwner(dir, o))
		out, stderr, err := cli(t, dir, "amqp://guest:guest@127.0.0.1:1/", nil, "audit", plan[0].ID)
		require.NoError(t, err, stderr)
		assert.Contains(t, out, "order "+plan[0].ID, "read from the store itself")
		assert.Empty(t, stderr)
	}

	require.NoError(t, writeOwner(dir, owner{PID: deadPID, HTTP: "127.0.0.1:1", StartedAt: time.Now()}))
	in, _ := startServe(t, dir)
	o, ok := readOwner(dir)
	require.True(t, ok)
	assert.Equal(t, in.PID(), o.PID, "replaced by the live serve")
	assert.Equal(t, in.Addr(), o.HTTP, "with the address it bound, before it answered: %s", in.LogTail(30))
	assert.Equal(t, version, o.Version)
	require.NoError(t, in.Stop(), in.LogTail(30))
	_, err := os.Stat(ownerPath(dir))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
