package projections

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// State shared by the instances of a highly available deployment: kept in
// streams of the shared event log, outside domain.StreamPrefix, so no
// projection ever folds them.

// ErrFenced is matched when a checkpoint write failed because another
// instance claimed the checkpoint since this one did.
var ErrFenced = errors.New("checkpoint fenced: another instance took the publisher role")

// Event types of the shared streams.
const (
	EventCheckpointClaimed = "CheckpointClaimed"
	EventCheckpointSaved   = "CheckpointSaved"
	EventLanesParked       = "LanesParked"
	EventLaneUnparked      = "LaneUnparked"
)

// ParkedStream holds the parked lanes of the lifecycle publisher (SharedParks).
const ParkedStream = "ledger-parked"

// CheckpointStream is the stream of projection name's shared checkpoint.
func CheckpointStream(name string) string { return "ledger-checkpoint-" + name }

// conflictAttempts bounds the re-reads after a write lost a race to
// another writer: each conflict means someone else made progress.
const conflictAttempts = 8

type checkpointEvent struct {
	Owner    string           `json:"owner"`
	Position *domain.Position `json:"position"`
	At       time.Time        `json:"at"`
}

// SharedCheckpoint keeps one projection's checkpoint in stream
// CheckpointStream(name) of the shared event log. Every write expects the
// revision of the last event this instance read or wrote, so once another
// instance has claimed the stream this one can no longer move it: its
// saves fail with ErrFenced until it claims again. Safe for concurrent use.
type SharedCheckpoint struct {
	log    domain.EventLog
	name   string
	owner  string
	stream string

	mu      sync.Mutex
	term    string // random per Claim: two processes given one name never write one id
	claimed bool
	fenced  error            // set by the first fenced save; cleared by Claim
	rev     uint64           // revision of the last event read or written
	pos     *domain.Position // claimed or last saved position
}

var _ CheckpointStore = (*SharedCheckpoint)(nil)

// NewSharedCheckpoint returns the checkpoint of projection name as seen by
// instance owner. Nothing is read until Claim.
func NewSharedCheckpoint(log domain.EventLog, name, owner string) *SharedCheckpoint {
	return &SharedCheckpoint{log: log, name: name, owner: owner, stream: CheckpointStream(name)}
}

// Claim makes this instance the checkpoint's writer: it reads the stream's
// last event and appends a claim at the next revision (retrying when
// another claim got there first), and returns the position claimed. When
// the stream is absent, seed (may be nil) gives the starting position:
// the local read model's old checkpoint, so a first HA start does not
// republish everything.
func (c *SharedCheckpoint) Claim(ctx context.Context, seed func(ctx context.Context) (*domain.Position, error)) (*domain.Position, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claimed, c.fenced, c.term = false, nil, rand.Text()
	var err error
	for range conflictAttempts {
		var pos *domain.Position
		var expected domain.ExpectedRevision
		var next uint64
		if pos, expected, next, err = c.last(ctx, seed); err != nil {
			return nil, err
		}
		var res domain.AppendResult
		res, err = c.append(ctx, EventCheckpointClaimed, expected, next, pos)
		if err == nil && res.Duplicate {
			// Only a process with the same owner name writes this id.
			return nil, fmt.Errorf("claim %s checkpoint: revision %d already claimed by another instance named %q", c.name, next, c.owner)
		}
		if err == nil {
			c.claimed, c.rev, c.pos = true, res.NextRevision, pos
			return clonePos(pos), nil
		}
		if !errors.Is(err, domain.ErrWrongExpectedVersion) {
			return nil, fmt.Errorf("claim %s checkpoint: %w", c.name, err)
		}
	}
	return nil, fmt.Errorf("claim %s checkpoint: %d attempts lost to other claims: %w", c.name, conflictAttempts, err)
}

// last reads the stream's last event: the position it carries, the
// expected revision of an append after it, and that append's revision.
func (c *SharedCheckpoint) last(ctx context.Context, seed func(ctx context.Context) (*domain.Position, error)) (*domain.Position, domain.ExpectedRevision, uint64, error) {
	evs, err := c.log.ReadStream(ctx, c.stream, domain.EndOfStream, domain.Backwards, 1)
	if errors.Is(err, domain.ErrStreamNotFound) || (err == nil && len(evs) == 0) {
		var pos *domain.Position
		if seed != nil {
			if pos, err = seed(ctx); err != nil {
				return nil, domain.Any, 0, fmt.Errorf("seed %s checkpoint: %w", c.name, err)
			}
		}
		return clonePos(pos), domain.NoStream, 0, nil
	}
	if err != nil {
		return nil, domain.Any, 0, fmt.Errorf("read %s: %w", c.stream, err)
	}
	re := evs[0]
	var ev checkpointEvent
	if err := json.Unmarshal(re.Data, &ev); err != nil {
		return nil, domain.Any, 0, fmt.Errorf("decode %s@%d (%s): %w", re.Stream, re.Revision, re.Type, err)
	}
	return ev.Position, domain.Exact(re.Revision), re.Revision + 1, nil
}

// append writes one checkpoint event at revision next. The id is derived
// from the revision, the owner and the term: a retry of the same write is
// a duplicate, and no two writes share an id, even from two processes
// that were given the same instance name.
func (c *SharedCheckpoint) append(ctx context.Context, typ string, expected domain.ExpectedRevision, next uint64, pos *domain.Position) (domain.AppendResult, error) {
	data, err := json.Marshal(checkpointEvent{Owner: c.owner, Position: pos, At: time.Now().UTC()})
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	id := domain.NameUUID("checkpoint", c.stream, strconv.FormatUint(next, 10), c.owner, c.term)
	return c.log.Append(ctx, c.stream, expected, domain.EventData{ID: id, Type: typ, Data: data})
}

// Writer reads who wrote the checkpoint last, and when: the leader, or
// the last one while a failover is under way. Empty when never claimed.
func (c *SharedCheckpoint) Writer(ctx context.Context) (string, time.Time, error) {
	evs, err := c.log.ReadStream(ctx, c.stream, domain.EndOfStream, domain.Backwards, 1)
	if errors.Is(err, domain.ErrStreamNotFound) || (err == nil && len(evs) == 0) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read %s: %w", c.stream, err)
	}
	var ev checkpointEvent
	if err := json.Unmarshal(evs[0].Data, &ev); err != nil {
		return "", time.Time{}, fmt.Errorf("decode %s@%d: %w", evs[0].Stream, evs[0].Revision, err)
	}
	return ev.Owner, ev.At, nil
}

// Checkpoint returns the position claimed or last saved. It is an error
// before Claim, and for another projection's name.
func (c *SharedCheckpoint) Checkpoint(ctx context.Context, name string) (*domain.Position, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(name); err != nil {
		return nil, err
	}
	return clonePos(c.pos), nil
}

// SaveCheckpoint appends pos with the expected revision of the last event
// this instance read or wrote. When another instance wrote since, the
// error matches ErrFenced (and domain.ErrWrongExpectedVersion), and every
// later save fails the same way until Claim.
func (c *SharedCheckpoint) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(name); err != nil {
		return err
	}
	if c.fenced != nil {
		return c.fenced
	}
	res, err := c.append(ctx, EventCheckpointSaved, domain.Exact(c.rev), c.rev+1, &pos)
	if errors.Is(err, domain.ErrWrongExpectedVersion) {
		c.fenced = fmt.Errorf("save %s checkpoint %s as %s: %w: %w", c.name, pos, c.owner, ErrFenced, err)
		return c.fenced
	}
	if err != nil {
		return fmt.Errorf("save %s checkpoint %s: %w", c.name, pos, err)
	}
	c.rev, c.pos = res.NextRevision, &pos
	return nil
}

func (c *SharedCheckpoint) usable(name string) error {
	if name != c.name {
		return fmt.Errorf("shared checkpoint %s: asked for %q", c.name, name)
	}
	if !c.claimed {
		return fmt.Errorf("shared checkpoint %s: not claimed", c.name)
	}
	return nil
}

func clonePos(p *domain.Position) *domain.Position {
	if p == nil {
		return nil
	}
	q := *p
	return &q
}

type lanesParked struct {
	Lanes []Parked `json:"lanes"`
}

type laneUnparked struct {
	OrderID string              `json:"orderId"`
	Kind    domain.OutboundKind `json:"kind"`
}

// SharedParks is a ParkStore over stream ParkedStream of the shared event
// log, so a new leader holds the lanes the old one parked. It folds the
// stream, keeping what it read: each call reads only the events after.
// Safe for concurrent use.
type SharedParks struct {
	log domain.EventLog

	mu     sync.Mutex
	lanes  map[lane]Parked
	exists bool   // the stream has events
	last   uint64 // revision of the last event folded
}

var _ ParkStore = (*SharedParks)(nil)

// NewSharedParks returns the parked lanes kept in log.
func NewSharedParks(log domain.EventLog) *SharedParks {
	return &SharedParks{log: log, lanes: map[lane]Parked{}}
}

// Park implements ParkStore: one event for all lanes.
func (s *SharedParks) Park(ctx context.Context, lanes []Parked) error {
	if len(lanes) == 0 {
		return nil
	}
	data, err := json.Marshal(lanesParked{Lanes: lanes})
	if err != nil {
		return fmt.Errorf("encode %d parked lanes: %w", len(lanes), err)
	}
	if err := s.write(ctx, EventLanesParked, data); err != nil {
		return fmt.Errorf("park %d lanes (first %s of %s): %w", len(lanes), lanes[0].Kind, lanes[0].OrderID, err)
	}
	return nil
}

// Unpark implements ParkStore.
func (s *SharedParks) Unpark(ctx context.Context, orderID string, kind domain.OutboundKind) error {
	data, err := json.Marshal(laneUnparked{OrderID: orderID, Kind: kind})
	if err != nil {
		return fmt.Errorf("encode unpark: %w", err)
	}
	if err := s.write(ctx, EventLaneUnparked, data); err != nil {
		return fmt.Errorf("unpark %s lane of %s: %w", kind, orderID, err)
	}
	return nil
}

// ListParked implements ParkStore: by order id, then kind.
func (s *SharedParks) ListParked(ctx context.Context) ([]Parked, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	out := make([]Parked, 0, len(s.lanes))
	for _, p := range s.lanes {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Parked) int {
		return cmp.Or(cmp.Compare(a.OrderID, b.OrderID), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

// write appends one event after the last one folded, catching up and
// trying again when another writer got there first. The id is derived
// from the revision and the content: a retry of the same write is a
// duplicate, and a different write at that revision is not.
func (s *SharedParks) write(ctx context.Context, typ string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := sha256.Sum256(append([]byte(typ+"\x00"), data...))
	var err error
	for range conflictAttempts {
		expected, next := domain.NoStream, uint64(0)
		if s.exists {
			expected, next = domain.Exact(s.last), s.last+1
		}
		id := domain.NameUUID("parked", ParkedStream, strconv.FormatUint(next, 10), hex.EncodeToString(sum[:]))
		ev := domain.EventData{ID: id, Type: typ, Data: data}
		var res domain.AppendResult
		res, err = s.log.Append(ctx, ParkedStream, expected, ev)
		if err == nil {
			if res.NextRevision == next {
				s.exists, s.last = true, next
				return s.apply(domain.RecordedEvent{Stream: ParkedStream, Revision: next, Type: typ, Data: data})
			}
			return s.catchUp(ctx) // an earlier try landed elsewhere: read it back
		}
		if !errors.Is(err, domain.ErrWrongExpectedVersion) {
			return err
		}
		if err := s.catchUp(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("%d attempts lost to other writers: %w", conflictAttempts, err)
}

// catchUp folds the events after the last one folded.
func (s *SharedParks) catchUp(ctx context.Context) error {
	const page = 256
	for {
		from := uint64(0)
		if s.exists {
			from = s.last + 1
		}
		evs, err := s.log.ReadStream(ctx, ParkedStream, from, domain.Forwards, page)
		if errors.Is(err, domain.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s from %d: %w", ParkedStream, from, err)
		}
		for _, re := range evs {
			if err := s.apply(re); err != nil {
				return err
			}
			s.exists, s.last = true, re.Revision
		}
		if len(evs) < page {
			return nil
		}
	}
}

// apply folds one event of the parked stream.
func (s *SharedParks) apply(re domain.RecordedEvent) error {
	switch re.Type {
	case EventLanesParked:
		var ev lanesParked
		if err := json.Unmarshal(re.Data, &ev); err != nil {
			return fmt.Errorf("decode %s@%d (%s): %w", re.Stream, re.Revision, re.Type, err)
		}
		for _, p := range ev.Lanes {
			s.lanes[p.lane()] = p
		}
	case EventLaneUnparked:
		var ev laneUnparked
		if err := json.Unmarshal(re.Data, &ev); err != nil {
			return fmt.Errorf("decode %s@%d (%s): %w", re.Stream, re.Revision, re.Type, err)
		}
		delete(s.lanes, lane{ev.OrderID, ev.Kind})
	default:
		return fmt.Errorf("%s@%d: unknown event type %q", re.Stream, re.Revision, re.Type)
	}
	return nil
}
