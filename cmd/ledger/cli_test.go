package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/ingest"
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
	err := run(context.Background(), args, &out, &errb, getenv)
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

	out, _, err = ledger(t, env, "replay", "--restate")
	require.NoError(t, err)
	assert.Contains(t, out, fmt.Sprintf("%d restated", len(refunded)))
	assert.Equal(t, domain.StatusRefunded, readSummary(t, dir, refunded[0]).Status, "the rebuilt model is swapped in")

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
