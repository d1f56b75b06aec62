package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Tamper evidence, over both stores: seals cover every order event once,
// in one chain, however many instances seal at the same time; Verify
// says intact, and counts what came after the last seal.

var sealClock = func() time.Time { return time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) }

// appendFacts appends n events spread over a few order streams (and one
// event of a stream no seal covers) and returns the order events' count.
func appendFacts(t *testing.T, log domain.EventLog, n int) int {
	t.Helper()
	ctx := context.Background()
	streams := []string{domain.StreamName(uuid.NewString()), domain.StreamName(uuid.NewString()), domain.StreamName(uuid.NewString())}
	for i := range n {
		data := fmt.Sprintf(`{"amount":%d,"i":%d}`, 100+i, i)
		_, err := log.Append(ctx, streams[i%len(streams)], domain.Any,
			domain.EventData{ID: uuid.NewString(), Type: "PaymentRefundedIntegrationEvent", Data: []byte(data), Metadata: []byte(`{"m":1}`)})
		require.NoError(t, err)
	}
	_, err := log.Append(ctx, "ledger-other", domain.Any, domain.EventData{ID: uuid.NewString(), Type: "Other", Data: []byte(`{}`)})
	require.NoError(t, err)
	return n
}

func verify(t *testing.T, log domain.EventLog) projections.VerifyReport {
	t.Helper()
	rep, err := projections.Verify(context.Background(), log)
	require.NoError(t, err)
	return rep
}

// seals reads the seal stream.
func seals(t *testing.T, log domain.EventLog) []domain.Seal {
	t.Helper()
	evs, err := log.ReadStream(context.Background(), domain.SealStream, 0, domain.Forwards, 0)
	if err != nil {
		require.ErrorIs(t, err, domain.ErrStreamNotFound)
		return nil
	}
	out := make([]domain.Seal, len(evs))
	for i, e := range evs {
		require.Equal(t, domain.EventLogSealed, e.Type)
		require.NoError(t, json.Unmarshal(e.Data, &out[i]))
	}
	return out
}

func TestContractSealAndVerify(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		ctx := context.Background()
		log := open(t)
		s := projections.Sealer{Log: log, Clock: sealClock}

		rep := verify(t, log)
		assert.True(t, rep.OK, "an empty log is intact")
		n, err := s.Seal(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "nothing to seal")

		total := appendFacts(t, log, 10)
		rep = verify(t, log)
		assert.True(t, rep.OK)
		assert.Equal(t, int64(total), rep.Unsealed, "no seal yet: every fact is unsealed")

		n, err = s.Seal(ctx)
		require.NoError(t, err)
		assert.Equal(t, total, n)
		rep = verify(t, log)
		require.True(t, rep.OK, "%+v", rep.Difference)
		assert.Equal(t, 1, rep.Seals)
		assert.Equal(t, int64(total), rep.Sealed)
		assert.Zero(t, rep.Unsealed)
		all := seals(t, log)
		require.Len(t, all, 1)
		assert.Equal(t, all[0].Hash, rep.Hash)
		assert.Equal(t, sealClock(), rep.SealedAt)
		assert.Nil(t, all[0].After)
		assert.Equal(t, domain.ChainHash{}.String(), all[0].Prev)
		assert.Len(t, all[0].Digests, total*domain.DigestSize)

		n, err = s.Seal(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "sealed already: no second seal over nothing")
		assert.Len(t, seals(t, log), 1)

		// Facts after the last seal are counted, and the history is intact.
		total += appendFacts(t, log, 7)
		rep = verify(t, log)
		require.True(t, rep.OK, "%+v", rep.Difference)
		assert.Equal(t, int64(7), rep.Unsealed)
		assert.Equal(t, int64(10), rep.Sealed)

		// In pieces of MaxFacts, each following the one before.
		small := projections.Sealer{Log: log, Clock: sealClock, MaxFacts: 3}
		n, err = small.Seal(ctx)
		require.NoError(t, err)
		assert.Equal(t, 7, n)
		all = seals(t, log)
		require.Len(t, all, 4, "one seal of 10, then 3+3+1")
		for i, sl := range all {
			assert.Equal(t, uint64(i+1), sl.Seq)
			if i > 0 {
				assert.Equal(t, all[i-1].Hash, sl.Prev)
				assert.Equal(t, all[i-1].Through, *sl.After)
			}
		}
		assert.Equal(t, []int{10, 3, 3, 1}, []int{all[0].Count, all[1].Count, all[2].Count, all[3].Count})
		rep = verify(t, log)
		require.True(t, rep.OK, "%+v", rep.Difference)
		assert.Equal(t, 4, rep.Seals)
		assert.Equal(t, int64(total), rep.Sealed)
		assert.Zero(t, rep.Unsealed)
		assert.Equal(t, all[3].Through, *rep.Through)
	})
}

// raceLog is a real log that runs before once, at the first ReadAll of
// the sealer it serves: another instance sealing in between.
type raceLog struct {
	domain.EventLog
	once   sync.Once
	before func()
}

func (l *raceLog) ReadAll(ctx context.Context, after *domain.Position, max int) ([]domain.RecordedEvent, error) {
	l.once.Do(l.before)
	return l.EventLog.ReadAll(ctx, after, max)
}

func TestContractSealRaceLeavesOneChain(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(t *testing.T) domain.EventLog) {
		ctx := context.Background()
		t.Run("same range", func(t *testing.T) {
			log := open(t)
			total := appendFacts(t, log, 5)
			var other int
			rl := &raceLog{EventLog: log, before: func() {
				var err error
				other, err = projections.Sealer{Log: log, Clock: sealClock}.Seal(ctx)
				require.NoError(t, err)
			}}
			n, err := projections.Sealer{Log: rl, Clock: sealClock}.Seal(ctx)
			require.NoError(t, err)
			assert.Equal(t, total, other)
			assert.Zero(t, n, "the same seal, stored by the other: not again")
			assert.Len(t, seals(t, log), 1)
			assert.True(t, verify(t, log).OK)
		})
		t.Run("longer range first", func(t *testing.T) {
			log := open(t)
			total := appendFacts(t, log, 5)
			var other int
			rl := &raceLog{EventLog: log, before: func() {
				total += appendFacts(t, log, 2) // the other instance sees more
				var err error
				other, err = projections.Sealer{Log: log, Clock: sealClock}.Seal(ctx)
				require.NoError(t, err)
			}}
			n, err := projections.Sealer{Log: rl, Clock: sealClock}.Seal(ctx)
			require.NoError(t, err, "the append that lost re-reads and stops")
			assert.Equal(t, total, other)
			assert.Zero(t, n)
			require.Len(t, seals(t, log), 1, "no fork")
			rep := verify(t, log)
			require.True(t, rep.OK, "%+v", rep.Difference)
			assert.Equal(t, int64(total), rep.Sealed)
		})
		t.Run("concurrent sealers and writers", func(t *testing.T) {
			log := open(t)
			const writers, sealers, each = 4, 4, 15
			var wg sync.WaitGroup
			done := make(chan struct{})
			for range writers {
				wg.Go(func() { appendFacts(t, log, each) })
			}
			var sw sync.WaitGroup
			sealed := make([]int, sealers)
			for i := range sealers {
				sw.Go(func() {
					s := projections.Sealer{Log: log, Clock: sealClock, MaxFacts: 7}
					for {
						n, err := s.Seal(ctx)
						assert.NoError(t, err)
						sealed[i] += n
						select {
						case <-done:
							return
						default:
						}
					}
				})
			}
			wg.Wait()
			close(done)
			sw.Wait()
			n, err := projections.Sealer{Log: log, Clock: sealClock, MaxFacts: 7}.Seal(ctx)
			require.NoError(t, err)
			sum := n
			for _, x := range sealed {
				sum += x
			}
			assert.Equal(t, writers*each, sum, "every fact sealed once, by one instance")
			rep := verify(t, log)
			require.True(t, rep.OK, "%+v", rep.Difference)
			assert.Equal(t, int64(writers*each), rep.Sealed)
			assert.Zero(t, rep.Unsealed)
			all := seals(t, log)
			assert.Equal(t, len(all), rep.Seals)
			for i, sl := range all {
				assert.Equal(t, uint64(i+1), sl.Seq, "one chain: seq follows the stream")
			}
		})
	})
}

func TestSealRunSealsAtStartAndReports(t *testing.T) {
	log := openLog(t)
	appendFacts(t, log, 4)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan projections.SealResult, 1)
	s := projections.Sealer{Log: log, Clock: sealClock, Every: time.Hour, Observe: func(r projections.SealResult, err error) {
		assert.NoError(t, err)
		got <- r
		cancel()
	}}
	require.NoError(t, s.Run(ctx))
	r := <-got
	assert.Equal(t, 4, r.Facts)
	assert.Equal(t, 1, r.Seals)
	require.NotNil(t, r.Last)
	assert.Equal(t, uint64(1), r.Last.Seq)
	assert.Nil(t, r.Last.Digests, "the result does not carry the digests")

	require.NoError(t, projections.Sealer{Log: log}.Run(context.Background()), "Every 0: off, returns at once")
	assert.NoError(t, projections.Sealer{MaxFacts: projections.MaxSealFacts}.Validate())
	err := projections.Sealer{Every: -time.Second, MaxFacts: projections.MaxSealFacts + 1}.Validate()
	assert.ErrorContains(t, err, "every -1s: must not be negative")
	assert.ErrorContains(t, err, "max_facts 150001: must be within 1..150000")
}

// streamCountingLog is a real log that counts the events ReadAll returns, by
// stream.
type streamCountingLog struct {
	domain.EventLog
	mu   sync.Mutex
	read map[string]int
}

func (l *streamCountingLog) ReadAll(ctx context.Context, after *domain.Position, max int) ([]domain.RecordedEvent, error) {
	evs, err := l.EventLog.ReadAll(ctx, after, max)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.read[e.Stream]++
	}
	return evs, err
}

// With no order event coming, the events of other streams (an election's
// checkpoints keep coming) are read once, not again every round; an order
// event after them is sealed, and the seal still starts at the last one.
func TestSealRunReadsOtherStreamsOnce(t *testing.T) {
	log := &streamCountingLog{EventLog: openLog(t), read: map[string]int{}}
	ctx := context.Background()
	appendFacts(t, log, 3)
	_, err := projections.Sealer{Log: log, Clock: sealClock}.Seal(ctx)
	require.NoError(t, err)
	for range 50 {
		_, err := log.Append(ctx, "ledger-checkpoint-x", domain.Any, domain.EventData{ID: uuid.NewString(), Type: "Checkpoint", Data: []byte(`{}`)})
		require.NoError(t, err)
	}
	log.read = map[string]int{}

	runCtx, cancel := context.WithCancel(ctx)
	rounds := 0
	var late domain.Position
	s := projections.Sealer{Log: log, Clock: sealClock, Every: time.Millisecond, Observe: func(r projections.SealResult, err error) {
		assert.NoError(t, err)
		rounds++
		switch rounds {
		case 5:
			assert.Equal(t, 50, log.read["ledger-checkpoint-x"], "five idle rounds read the other stream once")
			res, err := log.Append(ctx, domain.StreamName(uuid.NewString()), domain.Any,
				domain.EventData{ID: uuid.NewString(), Type: "PaymentRefundedIntegrationEvent", Data: []byte(`{"amount":1}`)})
			require.NoError(t, err)
			late = res.Position
		case 6:
			assert.Equal(t, 1, r.Facts, "the order event after the idle stretch is sealed")
			cancel()
		}
	}}
	require.NoError(t, s.Run(runCtx))
	require.Equal(t, 6, rounds)
	all := seals(t, log)
	require.Len(t, all, 2)
	assert.Equal(t, all[0].Through, *all[1].After, "the range starts at the last seal, not where the reading did")
	assert.Equal(t, late, all[1].Through)
	assert.Equal(t, 1, all[1].Count)
	rep := verify(t, log)
	assert.True(t, rep.OK, "%+v", rep)
	assert.Equal(t, int64(4), rep.Sealed)
}

// A seal of MaxSealFacts events fits one EventStoreDB append.
func TestSealOfMaxFactsFitsOneAppend(t *testing.T) {
	seal := domain.Seal{Seq: 1, Count: projections.MaxSealFacts, Digests: make([]byte, projections.MaxSealFacts*domain.DigestSize),
		Hash: domain.ChainHash{}.String(), Prev: domain.ChainHash{}.String(), SealedAt: sealClock()}
	b, err := json.Marshal(seal)
	require.NoError(t, err)
	assert.Less(t, len(b), 1<<20-64<<10)
}

// tamperCase seals a bolt store of 12 facts, closes it, changes it with
// fn and returns what Verify says, with the events as they were.
func tamperCase(t *testing.T, fn func(path string, evs []domain.RecordedEvent)) (projections.VerifyReport, []domain.RecordedEvent) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := bolt.Open(path, bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	appendFacts(t, l, 6)
	_, err = projections.Sealer{Log: l, Clock: sealClock, MaxFacts: 4}.Seal(ctx) // seals over 1-4, 5-6
	require.NoError(t, err)
	appendFacts(t, l, 6)
	_, err = projections.Sealer{Log: l, Clock: sealClock}.Seal(ctx)
	require.NoError(t, err)
	evs, err := l.ReadAll(ctx, nil, 0)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	fn(path, evs)
	l, err = bolt.Open(path, bolt.Config{NoSync: true}, nil)
	require.NoError(t, err)
	defer l.Close()
	rep, err := projections.Verify(ctx, l)
	require.NoError(t, err)
	assert.False(t, rep.OK)
	require.NotNil(t, rep.Difference)
	return rep, evs
}

// orderEvent is the i-th order event of evs (0-based).
func orderEvent(t *testing.T, evs []domain.RecordedEvent, i int) domain.RecordedEvent {
	t.Helper()
	for _, e := range evs {
		if domain.SealedStream(e.Stream) {
			if i == 0 {
				return e
			}
			i--
		}
	}
	t.Fatalf("no order event %d", i)
	return domain.RecordedEvent{}
}

func TestVerifyNamesWhatDiffers(t *testing.T) {
	t.Run("altered amount", func(t *testing.T) {
		var target domain.RecordedEvent
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			target = orderEvent(t, evs, 8) // in the third seal
			require.NoError(t, bolt.RewriteEvent(path, target.Position.Commit, func(e *domain.RecordedEvent) {
				require.Contains(t, string(e.Data), `"amount":1`)
				e.Data = []byte(strings.Replace(string(e.Data), `"amount":1`, `"amount":9`, 1))
			}))
		})
		d := rep.Difference
		assert.Equal(t, projections.DiffAltered, d.What)
		assert.Equal(t, target.Position, *d.Position)
		assert.Equal(t, target.Stream, d.Stream)
		assert.Equal(t, target.Revision, *d.Revision)
		assert.Equal(t, target.ID, d.EventID)
		assert.Equal(t, uint64(3), d.Seal)
		assert.Equal(t, 2, d.Index)
		assert.Equal(t, 2, rep.Seals, "the seals before it are intact")
		assert.Equal(t, int64(6), rep.Sealed)
		assert.Contains(t, d.String(), "altered at position "+target.Position.String())
	})
	t.Run("altered created time", func(t *testing.T) {
		var target domain.RecordedEvent
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			target = orderEvent(t, evs, 0)
			require.NoError(t, bolt.RewriteEvent(path, target.Position.Commit, func(e *domain.RecordedEvent) { e.Created = e.Created.Add(time.Second) }))
		})
		assert.Equal(t, projections.DiffAltered, rep.Difference.What)
		assert.Equal(t, target.Position, *rep.Difference.Position)
		assert.Zero(t, rep.Seals)
	})
	t.Run("removed", func(t *testing.T) {
		var target, before, after domain.RecordedEvent
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			before, target, after = orderEvent(t, evs, 1), orderEvent(t, evs, 2), orderEvent(t, evs, 3)
			require.NoError(t, bolt.RemoveEvent(path, target.Position.Commit))
		})
		d := rep.Difference
		assert.Equal(t, projections.DiffMissing, d.What)
		assert.Equal(t, before.Position, *d.After)
		assert.Equal(t, after.Position, *d.Position)
		assert.Equal(t, 2, d.Index)
		assert.Contains(t, d.String(), fmt.Sprintf("after position %s, before position %s", before.Position, after.Position))
	})
	t.Run("removed last of a seal", func(t *testing.T) {
		var target domain.RecordedEvent
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			target = orderEvent(t, evs, 3) // the first seal's last
			require.NoError(t, bolt.RemoveEvent(path, target.Position.Commit))
		})
		d := rep.Difference
		assert.Equal(t, projections.DiffMissing, d.What)
		assert.Equal(t, 3, d.Index)
		assert.Equal(t, uint64(1), d.Seal)
		assert.Nil(t, d.Position, "the range ends where it was")
	})
	t.Run("inserted", func(t *testing.T) {
		var at domain.RecordedEvent
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			at = orderEvent(t, evs, 5)
			forged := at
			forged.ID, forged.Data = uuid.NewString(), []byte(`{"amount":1,"i":99}`)
			require.NoError(t, bolt.InsertEvent(path, at.Position.Commit, forged))
		})
		d := rep.Difference
		assert.Equal(t, projections.DiffExtra, d.What)
		assert.Equal(t, at.Position, *d.Position, "the forged event took its place")
		assert.Equal(t, uint64(2), d.Seal)
		assert.Equal(t, 1, d.Index)
	})
	t.Run("seal hash altered", func(t *testing.T) {
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			seal := sealEvent(t, evs, 1)
			require.NoError(t, bolt.RewriteEvent(path, seal.Position.Commit, func(e *domain.RecordedEvent) {
				var s domain.Seal
				require.NoError(t, json.Unmarshal(e.Data, &s))
				s.Hash = strings.Repeat("ab", 32)
				e.Data, _ = json.Marshal(s)
			}))
		})
		assert.Equal(t, projections.DiffSealAltered, rep.Difference.What)
		assert.Equal(t, uint64(2), rep.Difference.Seal)
		assert.Equal(t, 1, rep.Seals)
	})
	t.Run("seal removed", func(t *testing.T) {
		rep, _ := tamperCase(t, func(path string, evs []domain.RecordedEvent) {
			require.NoError(t, bolt.RemoveEvent(path, sealEvent(t, evs, 0).Position.Commit))
		})
		assert.Equal(t, projections.DiffChainBroken, rep.Difference.What)
		assert.Contains(t, rep.Difference.String(), "seq 2, want 1")
	})
}

// sealEvent is the i-th event of the seal stream in evs.
func sealEvent(t *testing.T, evs []domain.RecordedEvent, i int) domain.RecordedEvent {
	t.Helper()
	for _, e := range evs {
		if e.Stream == domain.SealStream {
			if i == 0 {
				return e
			}
			i--
		}
	}
	t.Fatalf("no seal %d", i)
	return domain.RecordedEvent{}
}
