package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bbolt "go.etcd.io/bbolt"

	"github.com/bookworm-ledger/ledger/domain"
)

// Forensic helpers, for tests of tamper evidence only: they change a
// store file behind the Log's back, as someone who can write the file
// could, and keep its index consistent with what they did, so a test can
// check that `ledger verify` names the change. The file must not be open.
// Never use them on a store in service.

// RewriteEvent replaces the event at position pos of the store file at
// path with what edit makes of it (any field but the position), stored
// in the compact form the log writes.
func RewriteEvent(path string, pos uint64, edit func(e *domain.RecordedEvent)) error {
	return tamper(path, func(all, streams *bbolt.Bucket) error {
		e, err := storedEvent(all, pos)
		if err != nil {
			return err
		}
		if err := unindex(streams, e); err != nil {
			return err
		}
		edit(&e)
		return put(all, streams, e, pos)
	})
}

// RemoveEvent deletes the event at position pos of the store file at
// path; the positions of the others stay.
func RemoveEvent(path string, pos uint64) error {
	return tamper(path, func(all, streams *bbolt.Bucket) error {
		e, err := storedEvent(all, pos)
		if err != nil {
			return err
		}
		if err := unindex(streams, e); err != nil {
			return err
		}
		return all.Delete(u64(pos))
	})
}

// InsertEvent puts e at position pos of the store file at path, moving
// the event there and every later one a position up. e's index keys
// replace any there (an event forged at an existing revision hides the
// real one from ReadStream).
func InsertEvent(path string, pos uint64, e domain.RecordedEvent) error {
	return tamper(path, func(all, streams *bbolt.Bucket) error {
		last, _ := all.Cursor().Last()
		if last == nil || pos == 0 {
			return fmt.Errorf("position %d: not in the log", pos)
		}
		for p := binary.BigEndian.Uint64(last); p >= pos; p-- {
			if all.Get(u64(p)) == nil {
				continue
			}
			moved, err := storedEvent(all, p)
			if err != nil {
				return err
			}
			if err := put(all, streams, moved, p+1); err != nil {
				return err
			}
		}
		return put(all, streams, e, pos)
	})
}

func tamper(path string, fn func(all, streams *bbolt.Bucket) error) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("tamper with %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: DefaultOpenTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("tamper with %s: %w: %w", path, ErrLocked, err)
	}
	if err != nil {
		return fmt.Errorf("tamper with %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		all, streams := tx.Bucket(bucketAll), tx.Bucket(bucketStreams)
		if all == nil || streams == nil {
			return errors.New("not an event log")
		}
		return fn(all, streams)
	})
	if err != nil {
		err = fmt.Errorf("tamper with %s: %w", path, err)
	}
	return errors.Join(err, db.Close())
}

// storedEvent decodes the event at pos.
func storedEvent(all *bbolt.Bucket, pos uint64) (domain.RecordedEvent, error) {
	v := all.Get(u64(pos))
	if v == nil {
		return domain.RecordedEvent{}, fmt.Errorf("position %d: no event", pos)
	}
	d := getDecoder("")
	defer d.free()
	out, err := d.decode(nil, pos, v)
	if err != nil {
		return domain.RecordedEvent{}, err
	}
	d.finish(out)
	return out[0], nil
}

// put stores e at pos, with its index keys.
func put(all, streams *bbolt.Bucket, e domain.RecordedEvent, pos uint64) error {
	id, ok := parseUUID(e.ID)
	if !ok {
		return fmt.Errorf("event id %q: not a canonical UUID", e.ID)
	}
	rec := encodeRecord(e.Stream, e.Revision, e.Created.UnixNano(), id,
		domain.EventData{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata})
	if err := all.Put(u64(pos), rec); err != nil {
		return err
	}
	if err := streams.Put(streamKey(e.Stream, tagRev, u64(e.Revision)), u64(pos)); err != nil {
		return err
	}
	return streams.Put(streamKey(e.Stream, tagID, id[:]), append(u64(e.Revision), u64(pos)...))
}

// unindex deletes e's index keys.
func unindex(streams *bbolt.Bucket, e domain.RecordedEvent) error {
	id, _ := parseUUID(e.ID)
	return errors.Join(streams.Delete(streamKey(e.Stream, tagRev, u64(e.Revision))), streams.Delete(streamKey(e.Stream, tagID, id[:])))
}
