package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

var (
	bucketCheckpoints = []byte("checkpoints")
	bucketSummaries   = []byte("summaries")
	bucketDue         = []byte("due")     // deadline (8 bytes BE unix nanos) + order id -> attempt
	bucketDueKey      = []byte("due_key") // order id -> its key in bucketDue
)

// ReadModel is the order read model in its own bbolt file: summaries, the
// placement deadlines index, the order indexes and aggregates (index.go),
// projection checkpoints and the lifecycle's parked lanes (parked.go). It
// is local to one instance and can be rebuilt from the streams at any time.
type ReadModel struct {
	db   *bbolt.DB
	path string
	opts ReadModelOptions

	// touched estimates bytes of file pages mapped in since the last drop
	// of resident pages (rowPage per row read or written).
	touched atomic.Int64
	// deferred: writes keep no order index keys (DeferIndexes, until
	// BuildIndexes).
	deferred atomic.Bool
	wmu      sync.Mutex // row writes wait for BuildIndexes
	// bulk holds the rows Put gave a DeferIndexes file, encoded, until a
	// read, BuildIndexes, Sync or Close (or bulkLimit bytes of them)
	// writes them in key order (bulk.go). Guarded by wmu; hasBulk says
	// whether it holds any without taking wmu.
	bulk    bulkRows
	hasBulk atomic.Bool
}

var _ projections.ReadModel = (*ReadModel)(nil)

// ReadModelOptions tunes a read model file. The zero value is the live
// setting.
type ReadModelOptions struct {
	// NoSync skips fsync on every write. Only for a file being rebuilt
	// that is renamed into place (ReplaceFile) after Sync and Close: a
	// crash leaves an unfinished rebuild, which is thrown away.
	NoSync bool
	// ReleaseEvery is how many bytes of file pages reads and writes may
	// map in (estimated at 64 KiB per row) before the model drops its
	// resident pages (see [ReadModel.ReleaseMemory]). Default 32 MiB;
	// negative: never.
	ReleaseEvery int
	// DeferIndexes: for a new file a rebuild fills. Writes keep the
	// aggregates but not the order index keys, which BuildIndexes writes
	// once, sorted, after the last row; until then the file answers no
	// OrderIndex question. Keeping them row by row made a replay half
	// again as slow and its peak memory 1.7 times (keys in random order
	// rewrite a page each; index_build.go).
	DeferIndexes bool
}

// OpenReadModel opens (or creates) the read model at path, with every
// write fsync'd.
func OpenReadModel(path string) (*ReadModel, error) {
	return OpenReadModelWith(path, ReadModelOptions{})
}

// OpenReadModelWith opens (or creates) the read model at path with opts.
func OpenReadModelWith(path string, opts ReadModelOptions) (*ReadModel, error) {
	if opts.ReleaseEvery == 0 {
		opts.ReleaseEvery = 32 << 20
	}
	bo := &bbolt.Options{
		Timeout:    2 * time.Second,
		NoSync:     opts.NoSync,
		NoGrowSync: opts.NoSync,
	}
	if opts.DeferIndexes {
		// A rebuild grows the file by all its rows at once: a map sized
		// up front (address space, not memory) spares it the remaps, each
		// of which copies every node of the write out of the old map.
		bo.InitialMmapSize = 1 << 30
	}
	db, err := bbolt.Open(path, 0o600, bo)
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("open read model %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open read model %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketCheckpoints, bucketSummaries, bucketDue, bucketDueKey, bucketParked, bucketModelMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := markBooksIfEmpty(tx); err != nil {
			return err
		}
		if opts.DeferIndexes {
			// No version mark until BuildIndexes: a file left unbuilt is
			// indexed from its rows when next opened.
			if k, _ := tx.Bucket(bucketSummaries).Cursor().First(); k != nil {
				return errors.New("DeferIndexes needs a new read model")
			}
			return resetIndexes(tx)
		}
		return nil
	})
	if err == nil && !opts.DeferIndexes {
		err = ensureIndexes(db)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init read model %s: %w", path, err)
	}
	rm := &ReadModel{db: db, path: path, opts: opts}
	rm.deferred.Store(opts.DeferIndexes)
	return rm, nil
}

// Path is the file the read model lives in.
func (r *ReadModel) Path() string { return r.path }

// Close writes what Put buffered and closes the file.
func (r *ReadModel) Close() error { return errors.Join(r.settle(), r.db.Close()) }

// Sync flushes every write to disk. A file opened with NoSync must be
// synced before it is closed and renamed into place.
func (r *ReadModel) Sync() error {
	if err := r.settle(); err != nil {
		return err
	}
	if err := r.db.Sync(); err != nil {
		return fmt.Errorf("sync read model %s: %w", r.path, err)
	}
	return nil
}

// ReleaseMemory drops the file pages the process has mapped in from its
// resident set; see [Log.ReleaseMemory]. The model also does this on its
// own every ReleaseEvery bytes of pages touched: a rebuild writes every
// page of a fresh file, and a replay diffing against the live model reads
// every page of it, so without it both files end up wholly in the RSS.
func (r *ReadModel) ReleaseMemory() error {
	if err := r.db.View(releaseMapped); err != nil {
		return fmt.Errorf("release read model memory: %w", err)
	}
	return nil
}

// rowPage is what one row read or written is charged: rows are keyed by
// random order ids, so each maps in up to a fault-around window. Measured
// on a 1M-fact replay (diff + new model): charging 64 KiB kept its peak
// RSS at 258 MB (Current.Summary 9.3 s); 16 KiB gave 409 MB (6.2 s), 4 KiB
// 524 MB (4.9 s). Set ReleaseEvery to trade memory for time.
const rowPage = faultAround

// touch counts rows read or written and drops the resident pages when
// they add up to ReleaseEvery. Best effort: a failure only costs memory.
func (r *ReadModel) touch(rows int) {
	if r.opts.ReleaseEvery < 0 || r.touched.Add(int64(rows*rowPage)) < int64(r.opts.ReleaseEvery) {
		return
	}
	r.touched.Store(0)
	_ = r.db.View(releaseMapped)
}

func encodePos(p domain.Position) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, p.Commit)
	binary.BigEndian.PutUint64(b[8:], p.Prepare)
	return b
}

func decodePos(b []byte) (domain.Position, error) {
	if len(b) != 16 {
		return domain.Position{}, fmt.Errorf("checkpoint of %d bytes", len(b))
	}
	return domain.Position{Commit: binary.BigEndian.Uint64(b), Prepare: binary.BigEndian.Uint64(b[8:])}, nil
}

// Apply stores rows and the checkpoint in one transaction.
func (r *ReadModel) Apply(ctx context.Context, name string, pos domain.Position, rows []projections.Summary) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := r.write(func(tx *bbolt.Tx, noKeys bool) error {
		if err := putRows(tx, rows, noKeys); err != nil {
			return err
		}
		return tx.Bucket(bucketCheckpoints).Put([]byte(name), encodePos(pos))
	})
	r.touch(len(rows))
	return err
}

// Put stores rows (the replay sink).
func (r *ReadModel) Put(ctx context.Context, rows []projections.Summary) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.deferred.Load() {
		return r.buffer(rows)
	}
	err := r.write(func(tx *bbolt.Tx, noKeys bool) error { return putRows(tx, rows, noKeys) })
	r.touch(len(rows))
	return err
}

// write runs fn in a write transaction, telling it whether the order
// index keys wait for BuildIndexes.
func (r *ReadModel) write(fn func(tx *bbolt.Tx, noKeys bool) error) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := r.flushBulk(); err != nil {
		return err
	}
	noKeys := r.deferred.Load()
	return r.db.Update(func(tx *bbolt.Tx) error { return fn(tx, noKeys) })
}

// putRows stores rows and keeps the deadline index, the aggregates and,
// unless noKeys, the order indexes in step. Only a row that replaces one
// is read first, to take it out of them.
func putRows(tx *bbolt.Tx, rows []projections.Summary, noKeys bool) error {
	sums, due, dueKey := tx.Bucket(bucketSummaries), tx.Bucket(bucketDue), tx.Bucket(bucketDueKey)
	ix := newIndexWriter(tx, noKeys)
	for i := range rows {
		row := &rows[i]
		v := rowIndex{ix: indexedOf(row), deadline: row.PlacementDeadline, attempts: row.PlacementAttempts}
		if err := putRow(sums, due, dueKey, ix, []byte(row.OrderID), appendSummaryRow(nil, row), &v, false); err != nil {
			return err
		}
	}
	return ix.flush()
}

// rowIndex is what the indexes and the deadline index need of a row.
type rowIndex struct {
	ix       indexed
	deadline time.Time
	attempts int
}

// putRow stores one row, enc being its stored form, and keeps the
// indexes in step. fresh: the file holds no row of id (a bulk write into
// an empty file), so there is no old row to look for.
func putRow(sums, due, dueKey *bbolt.Bucket, ix *indexWriter, id, enc []byte, v *rowIndex, fresh bool) error {
	var old *indexed
	if !fresh {
		if prev := sums.Get(id); prev != nil {
			old = &indexed{}
			if err := decodeIndexed(prev, old); err != nil {
				return fmt.Errorf("decode summary %s: %w", id, err)
			}
		}
	}
	if err := sums.Put(id, enc); err != nil {
		return err
	}
	if err := ix.update(id, old, &v.ix); err != nil {
		return err
	}
	if !fresh {
		if old := dueKey.Get(id); old != nil {
			if err := due.Delete(bytes.Clone(old)); err != nil {
				return err
			}
			if err := dueKey.Delete(id); err != nil {
				return err
			}
		}
	}
	if v.ix.Status == domain.StatusInit && !v.deadline.IsZero() {
		k := make([]byte, 8, 8+len(id))
		binary.BigEndian.PutUint64(k, uint64(v.deadline.UnixNano()))
		k = append(k, id...)
		val := make([]byte, 8)
		binary.BigEndian.PutUint64(val, uint64(v.attempts))
		if err := due.Put(k, val); err != nil {
			return err
		}
		if err := dueKey.Put(id, k); err != nil {
			return err
		}
	}
	return nil
}

// Checkpoint returns the stored position of name, or nil.
func (r *ReadModel) Checkpoint(ctx context.Context, name string) (*domain.Position, error) {
	var out *domain.Position
	err := r.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints).Get([]byte(name))
		if b == nil {
			return nil
		}
		p, err := decodePos(b)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		out = &p
		return nil
	})
	return out, err
}

// SaveCheckpoint stores pos for name.
func (r *ReadModel) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).Put([]byte(name), encodePos(pos))
	})
}

// Summary returns one order's row.
func (r *ReadModel) Summary(ctx context.Context, orderID string) (projections.Summary, bool, error) {
	var s projections.Summary
	var ok bool
	err := r.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSummaries).Get([]byte(orderID))
		if b == nil {
			return nil
		}
		ok = true
		return decodeRow(b, &s)
	})
	r.touch(1)
	if err != nil {
		return s, false, fmt.Errorf("summary %s: %w", orderID, err)
	}
	return s, ok, nil
}

// Summaries lists rows after the order id after, in id order.
func (r *ReadModel) Summaries(ctx context.Context, after string, limit int) ([]projections.Summary, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []projections.Summary
	err := r.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketSummaries).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
		if k != nil {
			out = make([]projections.Summary, 0, min(limit, 4096))
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, projections.Summary{})
			if err := decodeRow(v, &out[len(out)-1]); err != nil {
				return rowError(k, err)
			}
		}
		return nil
	})
	r.touch(len(out))
	return out, err
}

// Due lists INIT orders whose placement deadline is at or before now.
func (r *ReadModel) Due(ctx context.Context, now time.Time, limit int) ([]projections.Due, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []projections.Due
	end := uint64(now.UnixNano())
	err := r.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) < 8 || len(v) != 8 {
				return errors.New("corrupt due index entry")
			}
			at := binary.BigEndian.Uint64(k)
			if at > end {
				break
			}
			out = append(out, projections.Due{
				OrderID:  string(k[8:]),
				Deadline: time.Unix(0, int64(at)).UTC(),
				Attempt:  int(binary.BigEndian.Uint64(v)),
			})
		}
		return nil
	})
	return out, err
}

// Count returns the number of summaries.
func (r *ReadModel) Count(ctx context.Context) (int, error) {
	n := 0
	err := r.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketSummaries).Stats().KeyN
		return nil
	})
	return n, err
}

// ReplaceFile atomically moves the read model built at src over dst (both
// closed): a crash before the rename leaves dst as it was.
func ReplaceFile(src, dst string) error {
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("swap read model %s -> %s: %w", src, dst, err)
	}
	d, err := os.Open(dirOf(dst))
	if err != nil {
		return nil // the rename happened; the directory sync is best effort
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if i == 0 {
				return "/"
			}
			return p[:i]
		}
	}
	return "."
}

// ErrLocked means another process (a running `ledger serve`) holds the
// file: bbolt allows one writer process per file.
var ErrLocked = errors.New("file is locked by another process")
