package esdbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const maxAppendSize = 1 << 20 // MaxAppendSize default

type streamsServer struct {
	api.UnimplementedStreamsServer
	s *Server
}

// Append reads the whole request stream before answering: replying early
// would make the client's Send fail with io.EOF and hide the status.
func (h *streamsServer) Append(st api.Streams_AppendServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "first append message must carry options")
	}
	var events []proposed
	var size int
	var bad error
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		msg := req.GetProposedMessage()
		if msg == nil {
			bad = status.Error(codes.InvalidArgument, "expected a proposed message")
			continue
		}
		ev, err := toProposed(msg)
		if err != nil && bad == nil {
			bad = err
		}
		size += len(msg.Data) + len(msg.CustomMetadata)
		events = append(events, ev)
	}
	if f, ok := h.s.takeFault("Append"); ok {
		return f.err(st)
	}
	if bad != nil {
		if status.Code(bad) == codes.InvalidArgument {
			st.SetTrailer(metadata.Pairs("exception", "missing-required-metadata-property"))
		}
		return bad
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	switch {
	case stream == "":
		return status.Error(codes.InvalidArgument, "Empty stream name")
	case stream == "$all":
		return accessDenied(st) // writes to $all are always denied
	case size > maxAppendSize:
		st.SetTrailer(metadata.Pairs("exception", "maximum-append-size-exceeded", "maximum-append-size", strconv.Itoa(maxAppendSize)))
		return status.Error(codes.InvalidArgument, fmt.Sprintf("Maximum Append Size of %d Exceeded.", maxAppendSize))
	}

	var exp expectation
	switch r := opts.ExpectedStreamRevision.(type) {
	case *api.AppendReq_Options_Revision:
		exp = expectation{kind: expectRevision, rev: r.Revision}
	case *api.AppendReq_Options_NoStream:
		exp = expectation{kind: expectNoStream}
	case *api.AppendReq_Options_StreamExists:
		exp = expectation{kind: expectStreamExists}
	case *api.AppendReq_Options_Any:
		exp = expectation{kind: expectAny}
	default:
		return status.Error(codes.InvalidArgument, "expected stream revision missing")
	}

	out := h.s.store.append(stream, exp, events)
	if out.wrong {
		return st.SendAndClose(wrongExpectedVersion(exp, out))
	}
	ok := &api.AppendResp_Success{}
	if out.exists {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: out.current}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	}
	if out.hasPos {
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: out.pos, PreparePosition: out.pos}}
	} else {
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	}
	return st.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}})
}

// wrongExpectedVersion is an OK reply, with the legacy 20.6 fields filled
// as a real server does.
func wrongExpectedVersion(exp expectation, out appendOutcome) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if out.exists {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: out.current}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: out.current}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	}
	switch exp.kind {
	case expectRevision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.rev}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: exp.rev}
	case expectNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: math.MaxUint64}
	case expectStreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// toProposed validates one proposed message as a real server does:
// missing type or content-type metadata is InvalidArgument; an empty type
// or a zero id makes the server's event constructor throw, which reaches
// the client as Unknown.
func toProposed(m *api.AppendReq_ProposedMessage) (proposed, error) {
	typ, okType := m.Metadata["type"]
	ct, okCT := m.Metadata["content-type"]
	if !okType || !okCT {
		return proposed{}, status.Error(codes.InvalidArgument, "Required metadata property is missing")
	}
	id, err := fromUUID(m.GetId())
	if err != nil || id == ([16]byte{}) || typ == "" {
		return proposed{}, status.Error(codes.Unknown, "Exception was thrown by handler: invalid event id or type")
	}
	return proposed{
		id:     id,
		typ:    typ,
		isJSON: ct == "application/json",
		data:   append([]byte(nil), m.Data...),
		meta:   append([]byte(nil), m.CustomMetadata...),
	}, nil
}

func fromUUID(u *shared.UUID) ([16]byte, error) {
	var id [16]byte
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return id, nil
	case *shared.UUID_String_:
		parsed, err := uuid.Parse(v.String_)
		return parsed, err
	}
	return id, errors.New("missing uuid")
}

func toUUID(id [16]byte, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: uuid.UUID(id).String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

// readEvent is the only reply shape (besides stream_not_found) the client
// accepts on reads: stream identifier, created and positions always set.
func readEvent(r *record, uuidString bool) *api.ReadResp {
	ct := "application/octet-stream"
	if r.isJSON {
		ct = "application/json"
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               toUUID(r.id, uuidString),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata:         map[string]string{"type": r.typ, "content-type": ct, "created": strconv.FormatInt(r.created, 10)},
			CustomMetadata:   r.meta,
			Data:             r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

// Read serves stream reads, $all reads and subscriptions.
func (h *streamsServer) Read(req *api.ReadReq, st api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil || o.GetUuidOption() == nil {
		return status.Error(codes.InvalidArgument, "uuid_option is required")
	}
	if f, ok := h.s.takeFault("Read"); ok {
		return f.err(st)
	}
	uuidString := o.GetUuidOption().GetString_() != nil
	if all := o.GetAll(); all != nil && isAnonymous(st.Context()) {
		return accessDenied(st) // $all needs admin rights on a secure node
	}
	if sub := o.GetSubscription(); sub != nil {
		h.s.addSub(1)
		defer h.s.addSub(-1)
		if o.GetAll() != nil {
			return h.subscribeAll(o, st, uuidString)
		}
		return h.subscribeStream(o, st, uuidString)
	}
	count := o.GetCount()
	if o.GetCountOption() == nil || count == 0 {
		return status.Error(codes.Unknown, "Unexpected ReadStreamResult: Error") // Ensure.Positive(maxCount)
	}
	if stream := o.GetStream(); stream != nil {
		return h.readStream(stream, o.GetReadDirection(), count, st, uuidString)
	}
	if all := o.GetAll(); all != nil {
		return h.readAll(all, o.GetReadDirection(), count, st, uuidString)
	}
	return status.Error(codes.InvalidArgument, "stream option missing")
}

func (h *streamsServer) readStream(so *api.ReadReq_Options_StreamOptions, dir api.ReadReq_Options_ReadDirection, count uint64, st api.Streams_ReadServer, uuidString bool) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	recs := h.s.store.streamRecords(name)
	if len(recs) == 0 {
		return st.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	last := uint64(len(recs) - 1)
	var from uint64
	switch r := so.RevisionOption.(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		from = 0
	case *api.ReadReq_Options_StreamOptions_End:
		if dir == api.ReadReq_Options_Forwards {
			// StreamRevision.End becomes -1 and fails Ensure.Nonnegative.
			return status.Error(codes.Unknown, "Unexpected ReadStreamResult: Error")
		}
		from = last
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = r.Revision
	default:
		return status.Error(codes.InvalidArgument, "revision option missing")
	}
	var sent uint64
	if dir == api.ReadReq_Options_Forwards {
		for rev := from; rev <= last && sent < count; rev++ {
			if err := st.Send(readEvent(recs[rev], uuidString)); err != nil {
				return err
			}
			sent++
		}
		return nil
	}
	if from > last {
		from = last
	}
	for rev := int64(from); rev >= 0 && sent < count; rev-- {
		if err := st.Send(readEvent(recs[rev], uuidString)); err != nil {
			return err
		}
		sent++
	}
	return nil
}

// readAll: forwards from P is inclusive, backwards from P exclusive.
func (h *streamsServer) readAll(ao *api.ReadReq_Options_AllOptions, dir api.ReadReq_Options_ReadDirection, count uint64, st api.Streams_ReadServer, uuidString bool) error {
	log, _ := h.s.store.snapshot()
	var sent uint64
	if dir == api.ReadReq_Options_Forwards {
		start := 0
		switch p := ao.AllOption.(type) {
		case *api.ReadReq_Options_AllOptions_End:
			start = len(log)
		case *api.ReadReq_Options_AllOptions_Position:
			if err := validPosition(p.Position); err != nil {
				return err
			}
			start = firstAtOrAfter(log, p.Position.CommitPosition)
		}
		for i := start; i < len(log) && sent < count; i++ {
			if err := st.Send(readEvent(log[i], uuidString)); err != nil {
				return err
			}
			sent++
		}
		return nil
	}
	end := len(log) // exclusive
	switch p := ao.AllOption.(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		end = 0
	case *api.ReadReq_Options_AllOptions_Position:
		if err := validPosition(p.Position); err != nil {
			return err
		}
		end = firstAtOrAfter(log, p.Position.CommitPosition)
	}
	for i := end - 1; i >= 0 && sent < count; i-- {
		if err := st.Send(readEvent(log[i], uuidString)); err != nil {
			return err
		}
		sent++
	}
	return nil
}

func validPosition(p *api.ReadReq_Options_Position) error {
	if p.CommitPosition < p.PreparePosition || p.CommitPosition >= 1<<63 {
		return status.Error(codes.Unknown, "Invalid position")
	}
	return nil
}

// firstAtOrAfter is the index of the first record with position >= pos.
func firstAtOrAfter(log []*record, pos uint64) int {
	lo, hi := 0, len(log)
	for lo < hi {
		m := (lo + hi) / 2
		if log[m].pos < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// filter is a server-side subscription filter: stream names or event
// types matched by prefixes or a regular expression.
type filter struct {
	onStream bool
	prefixes []string
	re       *regexp.Regexp
	interval int // checkpoint every interval considered events
}

func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	// DefaultAllFilter: never the epoch or persistent-subscription streams.
	if r.stream == "$epoch-information" || strings.HasPrefix(r.stream, "$persistentsubscription-") {
		return false
	}
	subject := r.typ
	if f.onStream {
		subject = r.stream
	}
	if f.re != nil {
		return f.re.MatchString(subject)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

func toFilter(o *api.ReadReq_Options) (*filter, error) {
	fo := o.GetFilter()
	if fo == nil {
		return nil, nil
	}
	if fo.CheckpointIntervalMultiplier == 0 {
		return nil, status.Error(codes.InvalidArgument, "checkpointIntervalMultiplier must be positive")
	}
	window := uint32(32)
	if m, ok := fo.Window.(*api.ReadReq_Options_FilterOptions_Max); ok {
		if m.Max == 0 {
			return nil, status.Error(codes.InvalidArgument, "max search window must be positive")
		}
		window = m.Max
	}
	f := &filter{interval: int(window * fo.CheckpointIntervalMultiplier)}
	var ex *api.ReadReq_Options_FilterOptions_Expression
	switch v := fo.Filter.(type) {
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		f.onStream, ex = true, v.StreamIdentifier
	case *api.ReadReq_Options_FilterOptions_EventType:
		ex = v.EventType
	default:
		return nil, status.Error(codes.InvalidArgument, "filter expression missing")
	}
	if ex.GetRegex() != "" {
		re, err := regexp.Compile(ex.GetRegex())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid filter regex")
		}
		f.re = re
	} else {
		f.prefixes = ex.GetPrefix()
	}
	return f, nil
}

func confirmation() *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()}}}
}

func checkpoint(pos uint64) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{CommitPosition: pos, PreparePosition: pos}}}
}

func caughtUp() *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}
}

// subscribeAll: confirmation, catch-up (start exclusive), checkpoints
// (filtered only), caught_up, then live until the call is cancelled.
func (h *streamsServer) subscribeAll(o *api.ReadReq_Options, st api.Streams_ReadServer, uuidString bool) error {
	f, err := toFilter(o)
	if err != nil {
		return err
	}
	log, notify := h.s.store.snapshot()
	next := 0 // index of the first record to consider
	atHead := false
	switch p := o.GetAll().AllOption.(type) {
	case *api.ReadReq_Options_AllOptions_End:
		next, atHead = len(log), true
	case *api.ReadReq_Options_AllOptions_Position:
		if err := validPosition(p.Position); err != nil {
			return status.Error(codes.InvalidArgument, "Invalid position")
		}
		next = firstAtOrAfter(log, p.Position.CommitPosition+1)
		atHead = len(log) == 0 || p.Position.CommitPosition >= log[len(log)-1].pos
	default:
		atHead = len(log) == 0
	}
	if err := st.Send(confirmation()); err != nil {
		return err
	}
	considered := 0
	send := func(r *record) error {
		if f.match(r) {
			if err := st.Send(readEvent(r, uuidString)); err != nil {
				return err
			}
		}
		considered++
		if f != nil && considered%f.interval == 0 {
			return st.Send(checkpoint(r.pos))
		}
		return nil
	}
	for ; next < len(log); next++ {
		if err := send(log[next]); err != nil {
			return err
		}
	}
	if f != nil && !atHead {
		if err := st.Send(checkpoint(log[len(log)-1].pos)); err != nil {
			return err
		}
	}
	if err := st.Send(caughtUp()); err != nil {
		return err
	}
	// Live: every committed event counts towards the checkpoint interval.
	for {
		select {
		case <-st.Context().Done():
			return st.Context().Err()
		case <-notify:
		}
		log, notify = h.s.store.snapshot()
		for ; next < len(log); next++ {
			if err := send(log[next]); err != nil {
				return err
			}
		}
	}
}

// subscribeStream: revision starts are exclusive; no checkpoints.
func (h *streamsServer) subscribeStream(o *api.ReadReq_Options, st api.Streams_ReadServer, uuidString bool) error {
	so := o.GetStream()
	name := string(so.GetStreamIdentifier().GetStreamName())
	// The notify channel first: a commit in between only wakes us early.
	_, notify := h.s.store.snapshot()
	recs := h.s.store.streamRecords(name)
	next := uint64(0)
	switch r := so.RevisionOption.(type) {
	case *api.ReadReq_Options_StreamOptions_End:
		next = uint64(len(recs))
	case *api.ReadReq_Options_StreamOptions_Revision:
		next = r.Revision + 1
	}
	if err := st.Send(confirmation()); err != nil {
		return err
	}
	sendNew := func() error {
		for ; next < uint64(len(recs)); next++ {
			if err := st.Send(readEvent(recs[next], uuidString)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := sendNew(); err != nil {
		return err
	}
	if err := st.Send(caughtUp()); err != nil {
		return err
	}
	for {
		select {
		case <-st.Context().Done():
			return st.Context().Err()
		case <-notify:
		}
		_, notify = h.s.store.snapshot()
		recs = h.s.store.streamRecords(name)
		if err := sendNew(); err != nil {
			return err
		}
	}
}
