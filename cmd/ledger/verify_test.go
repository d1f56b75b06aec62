package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/projections"
)

// sealStore seals the embedded store in dir, as serve does, in seals of
// at most maxFacts.
func sealStore(t *testing.T, dir string, maxFacts int) {
	t.Helper()
	l, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	n, err := projections.Sealer{Log: l, MaxFacts: maxFacts}.Seal(context.Background())
	require.NoError(t, err)
	require.Positive(t, n)
}

// copyStore copies the embedded store of dir into a new data dir.
func copyStore(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	src, err := os.Open(filepath.Join(dir, "ledger.db"))
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.Create(filepath.Join(to, "ledger.db"))
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	return to
}

// storedEvents reads the global log of the embedded store in dir.
func storedEvents(t *testing.T, dir string) []domain.RecordedEvent {
	t.Helper()
	l, err := bolt.Open(filepath.Join(dir, "ledger.db"), bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	evs, err := l.ReadAll(context.Background(), nil, 0)
	require.NoError(t, err)
	return evs
}

var storedAmount = regexp.MustCompile(`"(totalMoney|amount)":"[0-9.]+","(?:totalMoney|amount)Minor":([0-9]+)`)

// raiseAmount adds a dollar to the stored amount of a fact, both of its
// spellings, so it still reads as a valid fact.
func raiseAmount(t *testing.T, e *domain.RecordedEvent) (was, now int64) {
	t.Helper()
	m := storedAmount.FindSubmatch(e.Data)
	require.NotNil(t, m, "%s has an amount", e.Data)
	was, err := strconv.ParseInt(string(m[2]), 10, 64)
	require.NoError(t, err)
	now = was + 100
	key := string(m[1])
	repl := fmt.Sprintf(`"%s":"%s","%sMinor":%d`, key, domain.FormatMinor(now, 2), key, now)
	e.Data = []byte(strings.Replace(string(e.Data), string(m[0]), repl, 1))
	return was, now
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// TestVerifyNamesAnAmountAlteredInACopyOfTheFile is the test: a
// sealed embedded store verifies; a copy of its file with one stored
// amount changed (re-encoded in the file's compact form, so the ledger
// reads a valid fact) does not, and verify names the position.
func TestVerifyNamesAnAmountAlteredInACopyOfTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seedStore(t, dir, onePerScenario(), false)
	sealStore(t, dir, 10)

	out, stderr, err := ledger(t, map[string]string{"LEDGER_DATA_DIR": dir}, "verify")
	require.NoError(t, err, "%s%s", out, stderr)
	assert.Regexp(t, `^intact: \d+ seal\(s\) over \d+ fact\(s\); 0 fact\(s\) after the last seal, not sealed yet\n`+
		`last seal through position \d+/\d+, sealed [0-9T:-]+Z, hash [0-9a-f]{64}\n$`, out)
	js, _, err := ledger(t, map[string]string{"LEDGER_DATA_DIR": dir}, "verify", "--json")
	require.NoError(t, err)
	var rep projections.VerifyReport
	require.NoError(t, json.Unmarshal([]byte(js), &rep))
	assert.True(t, rep.OK)
	assert.Greater(t, rep.Seals, 1, "in seals of 10")
	assertCamelCase(t, []byte(js))

	// One amount, deep in the log, altered in a copy of the file.
	evs := storedEvents(t, dir)
	var target domain.RecordedEvent
	for _, e := range evs[len(evs)/2:] {
		if domain.SealedStream(e.Stream) && storedAmount.Match(e.Data) {
			target = e
			break
		}
	}
	require.NotEmpty(t, target.ID, "a fact with an amount")
	forged := copyStore(t, dir)
	var was, now int64
	require.NoError(t, bolt.RewriteEvent(filepath.Join(forged, "ledger.db"), target.Position.Commit, func(e *domain.RecordedEvent) {
		was, now = raiseAmount(t, e)
	}))
	// The ledger itself reads the forged fact as a valid one.
	for _, e := range storedEvents(t, forged) {
		if e.Position == target.Position {
			f, err := codec.DecodeFact(e.Type, e.Data)
			require.NoError(t, err)
			assert.Equal(t, now, f.Amount)
			assert.NotEqual(t, was, f.Amount)
		}
	}

	out, _, err = ledger(t, map[string]string{"LEDGER_DATA_DIR": forged}, "verify")
	require.Error(t, err)
	where := "altered at position " + target.Position.String()
	assert.Contains(t, err.Error(), where)
	assert.Contains(t, err.Error(), fmt.Sprintf("%s@%d, event %s", target.Stream, target.Revision, target.ID))
	t.Logf("ledger verify on the forged copy:\n%s%v", out, err)
	assert.Contains(t, out, "NOT INTACT: "+where)
	assert.Contains(t, out, "intact before it: ", "the seals before it checked out")

	// The binary exits non-zero, naming it on stderr.
	_, stderr, err = cli(t, forged, "amqp://127.0.0.1:1/", nil, "verify")
	assert.Equal(t, 1, exitCode(err), "%v", err)
	assert.Contains(t, stderr, "ledger: the history differs from its seals: "+where)
	js, _, err = ledger(t, map[string]string{"LEDGER_DATA_DIR": forged}, "verify", "--json")
	require.Error(t, err)
	require.NoError(t, json.Unmarshal([]byte(js), &rep))
	assert.False(t, rep.OK)
	assert.Equal(t, projections.DiffAltered, rep.Difference.What)
	assert.Equal(t, target.Position, *rep.Difference.Position)

	// The original is untouched.
	_, _, err = ledger(t, map[string]string{"LEDGER_DATA_DIR": dir}, "verify")
	assert.NoError(t, err)
}

// TestVerifyNamesARemovedOrInsertedEvent: a fact deleted from a copy of
// the file, or one slipped in among the sealed ones.
func TestVerifyNamesARemovedOrInsertedEvent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seedStore(t, dir, onePerScenario()[:4], false)
	sealStore(t, dir, 0)
	evs := storedEvents(t, dir)
	var order []domain.RecordedEvent
	for _, e := range evs {
		if domain.SealedStream(e.Stream) {
			order = append(order, e)
		}
	}
	require.Greater(t, len(order), 5)
	before, gone, next := order[2], order[3], order[4]

	removed := copyStore(t, dir)
	require.NoError(t, bolt.RemoveEvent(filepath.Join(removed, "ledger.db"), gone.Position.Commit))
	_, stderr, err := cli(t, removed, "amqp://127.0.0.1:1/", nil, "verify")
	assert.Equal(t, 1, exitCode(err), "%v", err)
	t.Logf("removed: %s", stderr)
	assert.Contains(t, stderr, fmt.Sprintf("missing: event 3 of seal 1, after position %s, before position %s", before.Position, next.Position))

	inserted := copyStore(t, dir)
	extra := gone
	extra.ID = uuid.NewString()
	require.NoError(t, bolt.InsertEvent(filepath.Join(inserted, "ledger.db"), gone.Position.Commit, extra))
	_, stderr, err = cli(t, inserted, "amqp://127.0.0.1:1/", nil, "verify")
	assert.Equal(t, 1, exitCode(err), "%v", err)
	t.Logf("inserted: %s", stderr)
	assert.Contains(t, stderr, fmt.Sprintf("extra at position %s (%s@%d, event %s)", gone.Position, extra.Stream, extra.Revision, extra.ID))
}

// TestVerifyThroughServe: serve seals the store when it starts; verify
// goes through it (named or found) and says intact; the API answers the
// same report, and the metrics count the seal.
func TestVerifyThroughServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := onePerScenario()[:3]
	seedStore(t, dir, plan, false)
	facts := 0
	for _, o := range plan {
		facts += len(o.Steps)
	}
	in, u := startServe(t, dir)
	var rep projections.VerifyReport
	require.Eventually(t, func() bool {
		return getJSON(t, in, "/api/books/verify", &rep) == 200 && rep.Seals > 0
	}, 30*time.Second, 50*time.Millisecond, "serve seals at start")
	assert.True(t, rep.OK, "%+v", rep.Difference)
	// Placement time-outs serve appends may come after the seal.
	assert.GreaterOrEqual(t, rep.Sealed+rep.Unsealed, int64(facts))
	assert.GreaterOrEqual(t, rep.Sealed, int64(facts), "everything seeded was there at start")

	for _, flags := range [][]string{{"--server", in.URL()}, nil} {
		out, stderr, err := cli(t, dir, u, nil, append([]string{"verify"}, flags...)...)
		require.NoError(t, err, "%v: %s%s", flags, out, stderr)
		assert.Empty(t, stderr)
		t.Logf("ledger verify %v:\n%s", flags, out)
		assert.Contains(t, out, "intact: ")
		assert.Contains(t, out, ", hash "+rep.Hash)
	}
	require.Eventually(t, func() bool {
		m, err := in.Metrics(context.Background())
		return err == nil && m["ledger_seals_total"] >= 1 && m["ledger_seal_last_position"] >= float64(rep.Through.Commit) &&
			m["ledger_sealed_facts_total"] >= float64(rep.Sealed)
	}, 30*time.Second, 50*time.Millisecond, "the metrics count the seal")
	require.NoError(t, in.Alive())
}

func TestSealSettings(t *testing.T) {
	c, err := loadEnv(nil)
	require.NoError(t, err)
	assert.Equal(t, projections.DefaultSealEvery, c.Seal.Every)
	assert.Equal(t, projections.DefaultSealMaxFacts, c.Seal.MaxFacts)
	c, err = loadEnv(map[string]string{"LEDGER_SEAL_EVERY": "0"})
	require.NoError(t, err, "0 turns sealing off")
	assert.Zero(t, c.Seal.Every)
	for env, want := range map[string]string{
		"LEDGER_SEAL_EVERY":     "seal.every 500ms: must be at least 1s (LEDGER_SEAL_EVERY)",
		"LEDGER_SEAL_MAX_FACTS": "seal.max_facts 0: must be at least 1 (LEDGER_SEAL_MAX_FACTS)",
	} {
		val := map[string]string{"LEDGER_SEAL_EVERY": "500ms", "LEDGER_SEAL_MAX_FACTS": "0"}[env]
		_, err := loadEnv(map[string]string{env: val})
		require.Error(t, err, env)
		assert.Equal(t, want, err.Error())
	}
	_, err = loadEnv(map[string]string{"LEDGER_SEAL_MAX_FACTS": "150001"})
	require.Error(t, err)
	assert.Equal(t, "seal.max_facts 150001: must be within 1..150000 (a seal must fit one EventStoreDB append)", err.Error())
}
