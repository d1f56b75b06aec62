package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
)

var _ domain.EventLog = (*Log)(nil)

// Config tunes the embedded event log. The zero value is the production
// setting.
type Config struct {
	// NoSync skips fsync. Only for tests that say so: a crash can then lose
	// acknowledged appends or corrupt the file.
	NoSync bool
	// GroupCommitWindow is how long the committer may wait for more
	// appends before it commits a batch. It waits only while appends are
	// concurrent (recent batches held more than one) and only until the
	// batch is as large as recent ones, so a lone appender never waits.
	// Default 2ms: on a busy machine the appends of one consumer batch
	// reach the committer spread over a millisecond or more, and a
	// shorter window splits them over several fsyncs. Negative: never
	// wait, commit what is queued.
	GroupCommitWindow time.Duration
	// MaxBatch caps the appends written in one transaction. Default 1024.
	MaxBatch int
	// FileMode of a new file. Default 0600.
	FileMode os.FileMode
	// OpenTimeout bounds the wait for the file lock held by another
	// process. Default 500ms: the owner is a running service (it will not
	// let go) or a tool that will soon, and a caller that waits says
	// nothing meanwhile.
	OpenTimeout time.Duration
	// InitialMmapSize is the initial memory map size in bytes; a large map
	// avoids remaps, which wait for every reader. Default 256 MiB.
	InitialMmapSize int
	// ScanRelease is how many bytes of the file scans (ReadAll,
	// subscriptions) may map in, as estimated by mapEstimate, between drops
	// of the map's resident pages (see [Log.ReleaseMemory]). Default
	// 64 MiB; negative: never drop. Drops cost refaults: a full read of a
	// 1 GB log peaked at ~90 MB instead of 1 GB but took 1.3-1.9x as long.
	ScanRelease int
}

func (c *Config) setDefaults() {
	if c.GroupCommitWindow == 0 {
		c.GroupCommitWindow = 2 * time.Millisecond
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.FileMode == 0 {
		c.FileMode = 0o600
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.InitialMmapSize == 0 {
		c.InitialMmapSize = 256 << 20
	}
	if c.ScanRelease == 0 {
		c.ScanRelease = 64 << 20
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.GroupCommitWindow > time.Second {
		errs = append(errs, fmt.Errorf("group commit window %s is over 1s", c.GroupCommitWindow))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("max batch %d is negative", c.MaxBatch))
	}
	if c.FileMode&^os.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("file mode %v has more than permission bits", c.FileMode))
	}
	if c.OpenTimeout < 0 {
		errs = append(errs, fmt.Errorf("open timeout %s is negative", c.OpenTimeout))
	}
	if c.InitialMmapSize < 0 {
		errs = append(errs, fmt.Errorf("initial mmap size %d is negative", c.InitialMmapSize))
	}
	return errors.Join(errs...)
}

// DefaultOpenTimeout is Config.OpenTimeout's default.
const DefaultOpenTimeout = 500 * time.Millisecond

var (
	bucketAll     = []byte("all")
	bucketStreams = []byte("streams")
	bucketMeta    = []byte("meta")
	keyVersion    = []byte("version")
)

const (
	formatVersion = 1
	// maxStreamName keeps composite keys far below bbolt's key size limit.
	maxStreamName = 1024
	// readChunk bounds the events read in one read transaction, so a long
	// read never holds the file's map for long.
	readChunk = 4096
)

// Log is the embedded event log. It is safe for concurrent use.
type Log struct {
	db     *bbolt.DB
	cfg    Config
	logger *zap.Logger

	reqs      chan *appendReq
	closing   chan struct{} // closed by Close
	committed chan struct{} // closed when the committer has exited
	closeOnce sync.Once

	stats struct{ commits, appends, events, commitNanos atomic.Uint64 }

	mu     sync.Mutex
	head   uint64        // position of the last committed event; 0: empty
	headCh chan struct{} // closed and replaced whenever head moves

	sinceRelease atomic.Int64 // bytes scans mapped in since the last drop of resident pages

	inflight    atomic.Int64 // Append calls in progress
	concurrency int          // committer only: smoothed inflight
}

// Open opens or creates the event log file at path.
func Open(path string, cfg Config, logger *zap.Logger) (*Log, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	db, err := bbolt.Open(path, cfg.FileMode, &bbolt.Options{
		Timeout: cfg.OpenTimeout,
		NoSync:  cfg.NoSync,
		// The freelist is written with every commit (one more page) rather
		// than rebuilt at open: the rebuild reads every page of the file,
		// which for a large log is seconds and its whole size in RSS.
		NoFreelistSync:  false,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: cfg.InitialMmapSize,
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("open event log %s: %w: %w", path, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	head, err := initLog(db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	// A file written without a synced freelist (older builds) had it
	// rebuilt by reading every page: shed those pages.
	if err := db.View(releaseMapped); err != nil {
		logger.Warn("drop pages read at open", zap.Error(err))
	}
	l := &Log{
		db:        db,
		cfg:       cfg,
		logger:    logger,
		reqs:      make(chan *appendReq, cfg.MaxBatch),
		closing:   make(chan struct{}),
		committed: make(chan struct{}),
		head:      head,
		headCh:    make(chan struct{}),
	}
	go l.commitLoop()
	logger.Info("event log opened", zap.String("path", path), zap.Uint64("head", head), zap.Bool("no_sync", cfg.NoSync))
	return l, nil
}

// initLog checks the format and returns the head, creating the buckets of
// a new file. An existing file is only read: no commit, no fsync at open.
func initLog(db *bbolt.DB) (uint64, error) {
	var head uint64
	ready := false
	check := func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketAll) == nil || tx.Bucket(bucketStreams) == nil {
			return nil
		}
		switch v := meta.Get(keyVersion); {
		case v == nil:
			return nil
		case len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion:
			return fmt.Errorf("unsupported file format %x", v)
		}
		if k, _ := tx.Bucket(bucketAll).Cursor().Last(); k != nil {
			head = binary.BigEndian.Uint64(k)
		}
		ready = true
		return nil
	}
	if err := db.View(check); err != nil || ready {
		return head, err
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketAll, bucketStreams, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if tx.Bucket(bucketMeta).Get(keyVersion) == nil {
			if err := tx.Bucket(bucketMeta).Put(keyVersion, u64(formatVersion)); err != nil {
				return fmt.Errorf("write format version: %w", err)
			}
		}
		return check(tx)
	})
	return head, err
}

// Close stops the committer, fails queued appends with ErrClosed, finishes
// every subscription and closes the file.
func (l *Log) Close() error {
	err := domain.ErrClosed
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.committed
		err = l.db.Close()
		if err != nil {
			err = fmt.Errorf("close event log: %w", err)
		}
		l.logger.Info("event log closed", zap.Uint64("head", l.headPos()))
	})
	return err
}

// Stats counts what the committer has written since Open.
type Stats struct {
	Commits uint64 // transactions committed (one fsync each)
	Appends uint64 // Append calls answered from a commit, duplicates and rule failures included
	Events  uint64 // events written
	// CommitTime is the time spent in commits: writing pages and fsync.
	CommitTime time.Duration
}

// Stats returns the counters; Appends/Commits is the group commit factor.
func (l *Log) Stats() Stats {
	return Stats{
		Commits:    l.stats.commits.Load(),
		Appends:    l.stats.appends.Load(),
		Events:     l.stats.events.Load(),
		CommitTime: time.Duration(l.stats.commitNanos.Load()),
	}
}

func (l *Log) isClosed() bool {
	select {
	case <-l.closing:
		return true
	default:
		return false
	}
}

func (l *Log) headPos() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// headState returns the head and a channel closed when it next moves.
func (l *Log) headState() (uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head, l.headCh
}

func (l *Log) setHead(h uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h != l.head {
		l.head = h
		close(l.headCh)
		l.headCh = make(chan struct{})
	}
}

// view runs a read transaction, mapping a closed file to ErrClosed.
func (l *Log) view(fn func(tx *bbolt.Tx) error) error {
	if l.isClosed() {
		return domain.ErrClosed
	}
	err := l.db.View(fn)
	if errors.Is(err, bbolt.ErrDatabaseNotOpen) {
		return domain.ErrClosed
	}
	return err
}

// Head returns the position of the last event, and false for an empty log.
func (l *Log) Head(ctx context.Context) (domain.Position, bool, error) {
	if l.isClosed() {
		return domain.Position{}, false, fmt.Errorf("head: %w", domain.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return domain.Position{}, false, fmt.Errorf("head: %w", err)
	}
	h := l.headPos()
	return domain.Position{Commit: h, Prepare: h}, h > 0, nil
}

// ReadStream reads events of one stream; see [domain.EventLog].
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, dir domain.Direction, max int) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	var out []domain.RecordedEvent
	d := getDecoder(stream)
	defer d.free()
	err := l.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketStreams).Cursor()
		// prefix is stream, 0x00, tagRev; name is its first part.
		prefix := make([]byte, 0, len(stream)+2+8)
		prefix = append(append(prefix, stream...), 0, tagRev)
		last, ok := lastRevisionBuf(c, prefix[:len(stream)+1], &d.key)
		if !ok {
			return domain.ErrStreamNotFound
		}
		if dir == domain.Backwards && from > last {
			from = last
		}
		if dir == domain.Forwards && from > last {
			return nil
		}
		// Revisions are contiguous, so the count is known: size out once.
		n := last - from + 1
		if dir == domain.Backwards {
			n = from + 1
		}
		if max > 0 && uint64(max) < n {
			n = uint64(max)
		}
		out = make([]domain.RecordedEvent, 0, min(n, 1<<20))
		d.expect(int(min(n, 1<<20)))
		all := tx.Bucket(bucketAll)
		seek := binary.BigEndian.AppendUint64(prefix, from)
		k, v := c.Seek(seek)
		if dir == domain.Backwards && !bytes.Equal(k, seek) {
			// Revisions are contiguous, so this only happens if the
			// index disagrees with the stream's last revision.
			return fmt.Errorf("revision %d missing from index: %w", from, errCorrupt)
		}
		prefix = seek[:len(prefix)]
		for ; k != nil && len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix); k, v = step(c, dir) {
			if max > 0 && len(out) >= max {
				break
			}
			if len(v) != 8 {
				return fmt.Errorf("revision key %x: %w", k, errCorrupt)
			}
			pos := binary.BigEndian.Uint64(v)
			rec := all.Get(v)
			if rec == nil {
				return fmt.Errorf("position %d missing: %w", pos, errCorrupt)
			}
			var err error
			if out, err = d.decode(out, pos, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	d.finish(out)
	return out, nil
}

func step(c *bbolt.Cursor, dir domain.Direction) ([]byte, []byte) {
	if dir == domain.Backwards {
		return c.Prev()
	}
	return c.Next()
}

// ReadAll reads the global log in position order; see [domain.EventLog].
func (l *Log) ReadAll(ctx context.Context, after *domain.Position, max int) ([]domain.RecordedEvent, error) {
	var from uint64
	if after != nil {
		from = after.Commit
	}
	var out []domain.RecordedEvent
	if max > 0 {
		out = make([]domain.RecordedEvent, 0, min(max, readChunk))
	}
	d := getDecoder("")
	defer d.free()
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read all: %w", err)
		}
		n := readChunk
		if max > 0 && max-len(out) < n {
			n = max - len(out)
		}
		before := len(out)
		var last uint64
		var err error
		out, last, err = l.scan(out, d, from, n, "", false)
		if err != nil {
			return nil, fmt.Errorf("read all: %w", err)
		}
		if len(out)-before < n || (max > 0 && len(out) >= max) {
			break
		}
		from = last
	}
	d.finish(out)
	return out, nil
}

// scan appends to out up to n events after position from. With filter,
// only events that keep(stream, prefix) count. It returns the last
// position it looked at, kept or not, so a filtered reader never rescans.
func (l *Log) scan(out []domain.RecordedEvent, d *decoder, from uint64, n int, prefix string, filter bool) ([]domain.RecordedEvent, uint64, error) {
	last := from
	if from == ^uint64(0) {
		return out, last, nil
	}
	// The read can hold no more events than the log has after from.
	d.expect(int(min(uint64(n), l.headPos()-min(from, l.headPos()))))
	err := l.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAll).Cursor()
		got, looked := 0, 0
		var mapped mapEstimate
		var seek [8]byte
		binary.BigEndian.PutUint64(seek[:], from+1)
		for k, v := c.Seek(seek[:]); k != nil && got < n && looked < 16*n; k, v = c.Next() {
			looked++
			mapped.touch(v)
			pos := binary.BigEndian.Uint64(k)
			last = pos
			if filter {
				s, err := recordStream(v)
				if err != nil {
					return fmt.Errorf("position %d: %w", pos, err)
				}
				if !keep(s, prefix) {
					continue
				}
			}
			var err error
			if out, err = d.decode(out, pos, v); err != nil {
				return err
			}
			got++
		}
		l.scanned(tx, mapped.bytes)
		return nil
	})
	return out, last, err
}

// scanned counts the bytes scans have mapped in and, every
// cfg.ScanRelease bytes, drops the map's resident pages (see
// releaseMapped) while tx still pins the map. A sequential scan never comes back to the pages it
// passed; without this a full read of the log leaves every page of the
// file resident and counted in the process's RSS.
func (l *Log) scanned(tx *bbolt.Tx, n int) {
	if l.cfg.ScanRelease < 0 || l.sinceRelease.Add(int64(n)) < int64(l.cfg.ScanRelease) {
		return
	}
	l.sinceRelease.Store(0)
	if err := releaseMapped(tx); err != nil {
		l.logger.Warn("drop scanned pages", zap.Error(err))
	}
}

// ReleaseMemory drops the file pages the process has touched through
// bbolt's memory map from its resident set. bbolt maps the whole file
// read-only and shared; its pages are clean copies of the page cache, so
// dropping them frees no data: they stay cached by the kernel and a later
// read refaults them cheaply. Without it every page ever read stays in
// the RSS for the life of the process (a 1 GB log read once is 1 GB of
// RSS). Scans drop what they pass on their own; a service may call this
// periodically to shed pages of random reads.
func (l *Log) ReleaseMemory() error {
	if err := l.view(releaseMapped); err != nil {
		return fmt.Errorf("release memory: %w", err)
	}
	return nil
}

// keep is the subscription filter: the prefix, and never a system stream.
func keep(stream []byte, prefix string) bool {
	if len(stream) > 0 && stream[0] == '$' {
		return false
	}
	return len(stream) >= len(prefix) && string(stream[:len(prefix)]) == prefix
}

// ListStreams lists streams by name; see [domain.EventLog]. limit <= 0
// means no limit.
func (l *Log) ListStreams(ctx context.Context, prefix, after string, limit int) ([]domain.StreamInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	var out []domain.StreamInfo
	err := l.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketStreams).Cursor()
		seek := prefix
		if after > prefix {
			seek = after
		}
		k, _ := c.Seek([]byte(seek))
		for k != nil && (limit <= 0 || len(out) < limit) {
			end := bytes.IndexByte(k, 0)
			if end < 0 {
				return fmt.Errorf("stream key %q: %w", k, errCorrupt)
			}
			name := string(k[:end])
			if !strings.HasPrefix(name, prefix) {
				break
			}
			if name > after {
				last, ok := lastRevision(c, []byte(name+"\x00"))
				if !ok {
					return fmt.Errorf("stream %q without revisions: %w", name, errCorrupt)
				}
				// Revisions are contiguous from 0: nothing is ever removed.
				out = append(out, domain.StreamInfo{Name: name, LastRevision: last, Count: last + 1})
			}
			// Skip the stream's other keys: they all sort before name+0x01.
			k, _ = c.Seek([]byte(name + "\x01"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return out, nil
}

// validate checks an append before it is queued and parses the event ids.
func validate(stream string, events []domain.EventData) ([][16]byte, error) {
	switch {
	case stream == "":
		return nil, fmt.Errorf("%w: empty stream name", domain.ErrInvalidEvent)
	case len(stream) > maxStreamName:
		return nil, fmt.Errorf("%w: stream name longer than %d bytes", domain.ErrInvalidEvent, maxStreamName)
	case strings.IndexByte(stream, 0) >= 0:
		return nil, fmt.Errorf("%w: stream name contains a NUL byte", domain.ErrInvalidEvent)
	case len(events) == 0:
		return nil, fmt.Errorf("%w: no events", domain.ErrInvalidEvent)
	}
	ids := make([][16]byte, len(events))
	var seen map[[16]byte]struct{}
	if len(events) > 1 {
		seen = make(map[[16]byte]struct{}, len(events))
	}
	for i, e := range events {
		if e.ID == "" {
			return nil, fmt.Errorf("%w: event %d has no id", domain.ErrInvalidEvent, i)
		}
		if e.Type == "" {
			return nil, fmt.Errorf("%w: event %d (%s) has no type", domain.ErrInvalidEvent, i, e.ID)
		}
		id, ok := parseUUID(e.ID)
		if !ok {
			return nil, fmt.Errorf("%w: event %d id %q is not a lower-case uuid", domain.ErrInvalidEvent, i, e.ID)
		}
		if seen != nil {
			if _, dup := seen[id]; dup {
				return nil, fmt.Errorf("%w: event id %s twice in one append", domain.ErrInvalidEvent, e.ID)
			}
			seen[id] = struct{}{}
		}
		ids[i] = id
	}
	return ids, nil
}
