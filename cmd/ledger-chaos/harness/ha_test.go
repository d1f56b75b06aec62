package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func acquired(inst string, s float64) LeaderEvent {
	return LeaderEvent{Instance: inst, At: at(s), Acquired: true}
}

func lost(inst string, s float64) LeaderEvent { return LeaderEvent{Instance: inst, At: at(s)} }

// The JSON lines the service writes are read with their times; other lines
// and a half-written last line (a kill -9) are skipped.
func TestParseLeadershipReadsTheJSONLines(t *testing.T) {
	log := `{"level":"info","ts":"2026-03-01T13:00:00.100+0100","msg":"ledger serving","instance":"i1"}
{"level":"info","ts":"2026-03-01T13:00:01.200+0100","msg":"leadership acquired","instance":"i1","at":"2026-03-01T13:00:01.150+0100"}
not json at all, leadership
{"level":"warn","ts":"2026-03-01T13:00:05.500+0100","msg":"leadership lost","instance":"i1","held":"4.35s","reason":"lease lost"}
{"level":"info","ts":"2026-03-01T13:00:09.000+0100","msg":"leadership acquired"}
{"level":"info","ts":"2026-03-01T13:00:09.9`
	evs, err := ParseLeadership(strings.NewReader(log), "i1")
	require.NoError(t, err)
	require.Len(t, evs, 3)
	assert.Equal(t, LeaderEvent{Instance: "i1", At: at(1.15), Acquired: true}, normalize(evs[0]))
	assert.Equal(t, LeaderEvent{Instance: "i1", At: at(5.5), Reason: "lease lost"}, normalize(evs[1]))
	assert.Equal(t, LeaderEvent{Instance: "i1", At: at(9), Acquired: true}, normalize(evs[2]), "the ts when there is no at; the instance given")
}

func normalize(e LeaderEvent) LeaderEvent { e.At = e.At.UTC(); return e }

// A term ends at its lost line, at a kill -9 while it was open, or at the
// end of the run.
func TestIntervalsEndAtLostKillOrEndOfRun(t *testing.T) {
	evs := []LeaderEvent{
		acquired("i1", 1), lost("i1", 4), // a clean term
		acquired("i1", 10), // killed at 12
		acquired("i1", 20), lost("i1", 25),
		acquired("i1", 30), // still leading at the end
	}
	terms := Intervals("i1", evs, []time.Time{at(12), at(27)}, at(40))
	require.Len(t, terms, 4)
	assert.Equal(t, Interval{Instance: "i1", From: at(1), To: at(4), End: "lost"}, terms[0])
	assert.Equal(t, Interval{Instance: "i1", From: at(10), To: at(12), End: "killed"}, terms[1])
	assert.Equal(t, Interval{Instance: "i1", From: at(20), To: at(25), End: "lost"}, terms[2], "the kill at 27 hit a follower")
	assert.Equal(t, Interval{Instance: "i1", From: at(30), To: at(40), End: "end of run"}, terms[3])

	// A kill at the very end, and a lost line the dying process got out
	// just after the kill was sent: the term ends at the kill.
	terms = Intervals("i2", []LeaderEvent{acquired("i2", 1), lost("i2", 5.001)}, []time.Time{at(5)}, at(9))
	assert.Equal(t, []Interval{{Instance: "i2", From: at(1), To: at(5), End: "killed"}}, terms)
	terms = Intervals("i2", []LeaderEvent{acquired("i2", 1)}, []time.Time{at(9)}, at(9))
	assert.Equal(t, []Interval{{Instance: "i2", From: at(1), To: at(9), End: "killed"}}, terms)

	// Two acquired lines in a row with no kill between: the first term is
	// taken to last until the second began.
	terms = Intervals("i3", []LeaderEvent{acquired("i3", 1), acquired("i3", 3), lost("i3", 4)}, nil, at(9))
	assert.Equal(t, []Interval{{Instance: "i3", From: at(1), To: at(3), End: "acquired again"},
		{Instance: "i3", From: at(3), To: at(4), End: "lost"}}, terms)
}

func TestOverlapsCountsSharedTimeOfDifferentInstances(t *testing.T) {
	term := func(inst string, from, to float64) Interval {
		return Interval{Instance: inst, From: at(from), To: at(to)}
	}
	assert.Empty(t, Overlaps([]Interval{term("i1", 0, 5), term("i2", 5, 9), term("i3", 9, 12)}), "hand-overs that only touch")
	assert.Empty(t, Overlaps([]Interval{term("i1", 0, 5), term("i1", 4, 9)}), "one instance cannot publish twice at once")
	ov := Overlaps([]Interval{term("i3", 9, 12), term("i1", 0, 5), term("i2", 4.5, 9.5), term("i1", 6, 7)})
	require.Len(t, ov, 3)
	assert.Equal(t, "i1", ov[0].A.Instance)
	assert.Equal(t, "i2", ov[0].B.Instance)
	assert.Equal(t, at(4.5), ov[0].From)
	assert.Equal(t, at(5), ov[0].To)
	assert.Equal(t, time.Second, ov[1].To.Sub(ov[1].From), "i2 and i1's second term: the whole of the latter")
	assert.Equal(t, 500*time.Millisecond, ov[2].To.Sub(ov[2].From), "i2 and i3")
	assert.Contains(t, ov[0].String(), "overlap by 500ms")
}

func TestFailoversTakeTheNextAcquiredOfAnotherInstance(t *testing.T) {
	evs := []LeaderEvent{
		acquired("i1", 0), acquired("i2", 3.5), acquired("i2", 3.95), // i2's own line after its cut does not count
		acquired("i1", 4), acquired("i3", 11), acquired("i2", 30),
	}
	faults := []HAFault{
		{Kind: "kill", Instance: "i1", At: at(1)},
		{Kind: "cut", Instance: "i2", At: at(3.9)},
		{Kind: "kill", Instance: "i2", At: at(31)},
	}
	fos := Failovers(faults, evs)
	require.Len(t, fos, 3)
	assert.Equal(t, "i2", fos[0].To)
	assert.Equal(t, 2500*time.Millisecond, fos[0].Took)
	assert.Equal(t, "i1", fos[1].To, "the first line of another instance after the cut")
	assert.Equal(t, 100*time.Millisecond, fos[1].Took)
	assert.Empty(t, fos[2].To, "nobody took over")

	h := HAReport{Failovers: fos, Bound: time.Second}
	assert.Equal(t, []time.Duration{2500 * time.Millisecond, 100 * time.Millisecond}, h.FailoverTimes())
	assert.Equal(t, []string{
		"1 faults after which no other instance acquired the role",
		"1 failovers took longer than 1s",
	}, h.Failures())
}

// A cut counts from the victim's lost line when that came while
// rabbitmqctl ran, and from the call's start otherwise.
func TestCutMomentsUseTheVictimsLostLineWithinTheCall(t *testing.T) {
	faults := []HAFault{
		{Kind: "cut", Instance: "i1", At: at(10), Done: at(13)},
		{Kind: "cut", Instance: "i2", At: at(20), Done: at(21)},
		{Kind: "kill", Instance: "i1", At: at(30)},
	}
	events := map[string][]LeaderEvent{
		"i1": {acquired("i1", 1), lost("i1", 12), acquired("i1", 25), lost("i1", 30.5)},
		"i2": {acquired("i2", 14), lost("i2", 22)},
	}
	got := cutMoments(faults, events)
	assert.Equal(t, at(12), got[0].At)
	assert.Equal(t, at(20), got[1].At, "lost after the call ended: the call's start")
	assert.Equal(t, at(30), got[2].At, "a kill is at its time")
	assert.Equal(t, at(10), faults[0].At, "the input is left alone")
}

func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	assert.Equal(t, time.Duration(3), Quantile(ds, 0.5))
	assert.Equal(t, time.Duration(5), Quantile(ds, 1))
	assert.Equal(t, time.Duration(1), Quantile(ds, 0))
	assert.Equal(t, time.Duration(2), Quantile([]time.Duration{2, 1}, 1))
	assert.Equal(t, time.Duration(1), Quantile([]time.Duration{2, 1}, 0.5))
	assert.Zero(t, Quantile(nil, 0.5))
}

// The report over three instances: i1 killed while leading, i2 cut and
// still logging its lost line after i3 took over (two publishers).
func TestBuildHAReport(t *testing.T) {
	events := map[string][]LeaderEvent{
		"i1": {acquired("i1", 0)},
		"i2": {acquired("i2", 3), lost("i2", 9.2)},
		"i3": {acquired("i3", 9), lost("i3", 20)},
	}
	faults := []HAFault{{Kind: "kill", Instance: "i1", At: at(1)}, {Kind: "cut", Instance: "i2", At: at(8)}}
	h := BuildHAReport(events, faults, at(20), DefaultFailoverBound)
	assert.Equal(t, 3, h.Instances)
	assert.Equal(t, 3, h.Changes)
	require.Len(t, h.Terms, 3)
	assert.Equal(t, "killed", h.Terms[0].End)
	require.Len(t, h.Overlaps, 1)
	assert.Equal(t, 200*time.Millisecond, h.Overlaps[0].To.Sub(h.Overlaps[0].From))
	assert.Equal(t, []time.Duration{2 * time.Second, time.Second}, h.FailoverTimes())
	assert.Equal(t, []string{"1 intervals with two publishers"}, h.Failures())
	assert.Len(t, h.Details(), 3)

	var b bytes.Buffer
	require.NoError(t, WriteHATable(&b, Load{}, Faults{Kills: 1, ConnectionKills: 1}, Report{}, h))
	assert.Regexp(t, `intervals with two publishers\s+1\s+FAIL \(must be 0\); 3 terms over 3 instances`, b.String())
	assert.Regexp(t, `failover p50 / max\s+1s / 2s\s+ok \(bound 15s\); 2 of 2 faults failed over`, b.String())
}

func TestConnectionsNamedPicksTheInstancesConnectionsOfTheVhost(t *testing.T) {
	out := "<rabbit@h.1.2.0>\tv1\t[{\"product\",\"AMQP 0.9.1 Client\"},{\"connection_name\",\"ledger i1\"},{\"capabilities\",[]}]\n" +
		"<rabbit@h.1.3.0>\tv1\t[{\"connection_name\",\"ledger i10\"}]\n" +
		"<rabbit@h.1.4.0>\tv2\t[{\"connection_name\",\"ledger i1\"}]\n" +
		"<rabbit@h.1.5.0>\tv1\t[{\"product\",\"AMQP 0.9.1 Client\"}]\n" +
		"<rabbit@h.1.6.0>\tv1\t[{\"connection_name\",\"ledger i1\"}]\n"
	assert.Equal(t, []string{"<rabbit@h.1.2.0>", "<rabbit@h.1.6.0>"}, connectionsNamed(out, "v1", "ledger i1"))
	assert.Empty(t, connectionsNamed(out, "v3", "ledger i1"))
}

func TestSharedLifecycleLag(t *testing.T) {
	books := []domain.RecordedEvent{
		{Stream: "ledger-checkpoint-lifecycle", Type: "CheckpointClaimed", Data: []byte(`{"owner":"i1","position":null}`)},
		{Stream: "ledger-parked", Type: "LanesParked", Data: []byte(`{"lanes":[]}`)},
		{Stream: "ledger-checkpoint-lifecycle", Type: "CheckpointSaved", Data: []byte(`{"owner":"i1","position":{"commit":20,"prepare":20}}`)},
	}
	facts := []domain.Position{{Commit: 10, Prepare: 10}, {Commit: 20, Prepare: 20}, {Commit: 30, Prepare: 30}}
	cp, err := lastCheckpoint(books, projections.CheckpointStream(projections.LifecycleName))
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, int64(1), sharedLag(facts, cp))
	cp, err = lastCheckpoint(books[:1], projections.CheckpointStream(projections.LifecycleName))
	require.NoError(t, err)
	assert.Nil(t, cp)
	assert.Equal(t, int64(3), sharedLag(facts, cp))
	assert.True(t, bookkeeping("ledger-checkpoint-lifecycle"))
	assert.True(t, bookkeeping("ledger-parked"))
	assert.False(t, bookkeeping(domain.StreamName("x")))
}
