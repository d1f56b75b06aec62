package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

// appendReq is one Append call waiting for the committer. The caller
// encodes the records and keys; the committer fills in revisions,
// positions and the creation time, so its own work stays small.
type appendReq struct {
	stream   string
	expected domain.ExpectedRevision
	recs     [][]byte // encoded records; revision and created patched at commit
	idKeys   [][]byte // stream, 0x00, id
	nameKey  []byte   // stream, 0x00: the prefix of its keys

	res  domain.AppendResult
	err  error
	done chan struct{} // closed once res or err is final
}

// Append writes events to stream if expected holds; see [domain.EventLog].
// Appends that wait at the same time are written in one transaction and
// one fsync. When ctx ends before the answer, the append may still land;
// a retry with the same event ids is then reported as a duplicate.
func (l *Log) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events ...domain.EventData) (domain.AppendResult, error) {
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	r, err := newAppendReq(stream, expected, events)
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	if l.isClosed() {
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, domain.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	select {
	case l.reqs <- r:
	case <-l.closing:
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, domain.ErrClosed)
	case <-ctx.Done():
		return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, ctx.Err())
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-l.committed:
		select {
		case <-r.done:
			return r.res, r.err
		default:
			return domain.AppendResult{}, fmt.Errorf("append %s: %w", stream, domain.ErrClosed)
		}
	case <-ctx.Done():
		return domain.AppendResult{}, fmt.Errorf("append %s: outcome unknown: %w", stream, ctx.Err())
	}
}

// newAppendReq validates an append and encodes it, in the caller's
// goroutine, so the committer only patches and writes.
func newAppendReq(stream string, expected domain.ExpectedRevision, events []domain.EventData) (*appendReq, error) {
	ids, err := validate(stream, events)
	if err != nil {
		return nil, err
	}
	r := &appendReq{
		stream:   stream,
		expected: expected,
		recs:     make([][]byte, len(events)),
		idKeys:   make([][]byte, len(events)),
		nameKey:  append([]byte(stream), 0),
		done:     make(chan struct{}),
	}
	for i, e := range events {
		r.recs[i] = encodeRecord(stream, 0, 0, ids[i], e)
		r.idKeys[i] = streamKey(stream, tagID, ids[i][:])
	}
	return r, nil
}

// commitLoop is the only writer of the file. Each round it takes every
// queued append (up to MaxBatch), applies them in one transaction and
// commits with one fsync; appends arriving meanwhile form the next batch.
func (l *Log) commitLoop() {
	defer close(l.committed)
	batch := make([]*appendReq, 0, l.cfg.MaxBatch)
	for {
		if l.isClosed() {
			l.rejectQueued()
			return
		}
		select {
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		case <-l.closing:
			l.rejectQueued()
			return
		}
		batch = l.gather(batch)
		l.commit(batch)
		clear(batch)
	}
}

// gather adds queued appends to batch. When appends are concurrent, it
// waits up to the window until the batch holds as many appends as there
// are appenders: those answered by the last commit are usually about to
// come back, and one commit for all of them beats two half-full ones.
// The appender count is the number of Append calls in progress, smoothed
// so that it decays rather than drops.
func (l *Log) gather(batch []*appendReq) []*appendReq {
	l.concurrency = max(int(l.inflight.Load()), l.concurrency-l.concurrency/8)
drain:
	for len(batch) < l.cfg.MaxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		default:
			break drain
		}
	}
	target := min(l.concurrency, l.cfg.MaxBatch)
	if l.cfg.GroupCommitWindow < 0 || len(batch) >= target {
		return batch
	}
	timer := time.NewTimer(l.cfg.GroupCommitWindow)
	defer timer.Stop()
	for len(batch) < target {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-timer.C:
			return batch
		case <-l.closing:
			return batch
		}
	}
	return batch
}

func (l *Log) rejectQueued() {
	for {
		select {
		case r := <-l.reqs:
			r.err = fmt.Errorf("append %s: %w", r.stream, domain.ErrClosed)
			close(r.done)
		default:
			return
		}
	}
}

// commit writes a batch. An append whose writes fail (not a rule
// failure such as a wrong expected version, which writes nothing) is
// answered with its error and the batch is redone without it, so one bad
// append never fails the others.
func (l *Log) commit(batch []*appendReq) {
	pending := batch
	for len(pending) > 0 {
		bad, err := l.tryCommit(pending)
		if bad < 0 {
			return
		}
		r := pending[bad]
		r.res, r.err = domain.AppendResult{}, fmt.Errorf("append %s: %w", r.stream, err)
		close(r.done)
		rest := make([]*appendReq, 0, len(pending)-1)
		rest = append(rest, pending[:bad]...)
		pending = append(rest, pending[bad+1:]...)
	}
}

// tryCommit applies and commits batch. It answers every request and
// returns -1, or returns the index of a request whose writes failed after
// rolling back, answering none.
func (l *Log) tryCommit(batch []*appendReq) (int, error) {
	failAll := func(err error) {
		for _, r := range batch {
			r.res, r.err = domain.AppendResult{}, fmt.Errorf("append %s: %w: %w", r.stream, domain.ErrUnavailable, err)
			close(r.done)
		}
	}
	tx, err := l.db.Begin(true)
	if err != nil {
		failAll(fmt.Errorf("begin: %w", err))
		return -1, nil
	}
	w := writer{
		all:     tx.Bucket(bucketAll),
		streams: tx.Bucket(bucketStreams),
		pos:     l.head, // only this goroutine moves head
		created: time.Now().UnixNano(),
	}
	w.all.FillPercent = 1 // keys only ever grow: pack pages full
	for i, r := range batch {
		r.res, r.err = domain.AppendResult{}, nil
		if err := w.apply(r); err != nil {
			_ = tx.Rollback()
			return i, err
		}
	}
	began := time.Now()
	err = tx.Commit()
	l.stats.commitNanos.Add(uint64(time.Since(began)))
	if err != nil {
		// The file may or may not hold the batch's meta page now; trust
		// the file, not our counter.
		l.reloadHead()
		failAll(fmt.Errorf("commit: %w", err))
		return -1, nil
	}
	l.setHead(w.pos)
	l.stats.commits.Add(1)
	l.stats.appends.Add(uint64(len(batch)))
	l.stats.events.Add(w.written)
	for _, r := range batch {
		close(r.done)
	}
	return -1, nil
}

func (l *Log) reloadHead() {
	var head uint64
	err := l.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketAll).Cursor().Last(); k != nil {
			head = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		l.logger.Error("reload head after failed commit", zap.Error(err))
		return
	}
	l.setHead(head)
}

// writer applies appends inside one write transaction. It sees the
// effects of earlier appends of the same batch, since bbolt reads its own
// uncommitted writes.
type writer struct {
	all, streams *bbolt.Bucket
	pos          uint64
	created      int64
	written      uint64 // events written so far
}

// apply sets r.res or r.err for a rule outcome and returns nil; it returns
// an error only when a write failed and the transaction must be dropped.
func (w *writer) apply(r *appendReq) error {
	last, exists := lastRevision(w.streams.Cursor(), r.nameKey)

	dups := 0
	var dupRev, dupPos uint64
	for i, k := range r.idKeys {
		if v := w.streams.Get(k); v != nil {
			dups++
			if i == len(r.idKeys)-1 {
				dupRev, dupPos = binary.BigEndian.Uint64(v[0:8]), binary.BigEndian.Uint64(v[8:16])
			}
		}
	}
	switch {
	case dups == len(r.idKeys):
		r.res = domain.AppendResult{NextRevision: dupRev, Position: domain.Position{Commit: dupPos, Prepare: dupPos}, Duplicate: true}
		return nil
	case dups > 0:
		r.err = fmt.Errorf("append %s: %d of %d events: %w", r.stream, dups, len(r.idKeys), domain.ErrPartialDuplicate)
		return nil
	case !r.expected.Holds(last, exists):
		r.err = fmt.Errorf("append %s: %w", r.stream, &domain.WrongExpectedVersionError{
			Stream: r.stream, Expected: r.expected, Actual: last, ActualExists: exists,
		})
		return nil
	}

	rev := uint64(0)
	if exists {
		rev = last + 1
	}
	// bbolt keeps the key and value slices until commit: one fresh slab
	// per append holds them.
	name := r.nameKey
	slab := make([]byte, 0, len(r.recs)*(8+len(name)+9+16))
	for i, rec := range r.recs {
		w.pos++
		binary.BigEndian.PutUint64(rec[1:9], rev)
		binary.BigEndian.PutUint64(rec[9:17], uint64(w.created))
		posKey := appendU64(&slab, w.pos)
		if err := w.all.Put(posKey, rec); err != nil {
			return fmt.Errorf("write event %d: %w", i, err)
		}
		revKey := take(&slab, len(name)+9)
		copy(revKey, name)
		revKey[len(name)] = tagRev
		binary.BigEndian.PutUint64(revKey[len(name)+1:], rev)
		if err := w.streams.Put(revKey, posKey); err != nil {
			return fmt.Errorf("write revision index %d: %w", i, err)
		}
		idVal := take(&slab, 16)
		binary.BigEndian.PutUint64(idVal[0:8], rev)
		binary.BigEndian.PutUint64(idVal[8:16], w.pos)
		if err := w.streams.Put(r.idKeys[i], idVal); err != nil {
			return fmt.Errorf("write id index %d: %w", i, err)
		}
		rev++
	}
	w.written += uint64(len(r.recs))
	r.res = domain.AppendResult{NextRevision: rev - 1, Position: domain.Position{Commit: w.pos, Prepare: w.pos}}
	return nil
}

// take cuts n bytes off the front of the unused capacity of slab.
func take(slab *[]byte, n int) []byte {
	s := *slab
	if cap(s)-len(s) < n {
		return make([]byte, n)
	}
	b := s[len(s) : len(s)+n : len(s)+n]
	*slab = s[:len(s)+n]
	return b
}

func appendU64(slab *[]byte, v uint64) []byte {
	b := take(slab, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
