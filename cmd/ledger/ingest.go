package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// ingester turns broker deliveries into stored facts. A message is acked
// only after its fact is durably appended; a message that is not a valid
// fact is dead-lettered with the reason and never appended.
type ingester struct {
	log      domain.EventLog
	cur      domain.Currency
	now      func() time.Time
	parallel int // streams appended at once
	metrics  *metrics
}

type prepared struct {
	idx    int
	stream string
	ev     domain.EventData
}

// handle is the broker's batch handler: it validates every message, then
// appends facts stream by stream (in delivery order within a stream, many
// streams at once, so the store can commit them together).
func (in *ingester) handle(ctx context.Context, msgs []rabbitmq.Message) []rabbitmq.Verdict {
	verdicts := make([]rabbitmq.Verdict, len(msgs))
	byStream := map[string][]prepared{}
	var streams []string
	for i, m := range msgs {
		p, err := in.prepare(m)
		if err != nil {
			verdicts[i] = rabbitmq.Verdict{Action: rabbitmq.DeadLetter, Reason: "invalid message", Err: err}
			continue
		}
		p.idx = i
		if _, ok := byStream[p.stream]; !ok {
			streams = append(streams, p.stream)
		}
		byStream[p.stream] = append(byStream[p.stream], p)
	}

	sem := make(chan struct{}, max(in.parallel, 1))
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Add(1)
		sem <- struct{}{}
		go func(ps []prepared) {
			defer wg.Done()
			defer func() { <-sem }()
			for _, p := range ps {
				verdicts[p.idx] = in.append(ctx, p)
			}
		}(byStream[st])
	}
	wg.Wait()
	return verdicts
}

func (in *ingester) prepare(m rabbitmq.Message) (prepared, error) {
	ft, ok := domain.LookupFactType(m.Type)
	if !ok {
		return prepared{}, fmt.Errorf("message type %q is not a ledger fact", m.Type)
	}
	received := in.now().UTC()
	// Time precedence: the envelope's, else the body's creationDate, else
	// the moment it arrived.
	f, err := domain.DecodeMessageAt(ft, m.Body, in.cur, m.SentAt, received)
	if err != nil {
		return prepared{}, fmt.Errorf("%s %s: %w", m.Type, m.MessageID, err)
	}
	data, err := domain.EncodeFact(f, in.cur)
	if err != nil {
		return prepared{}, fmt.Errorf("encode %s %s: %w", m.Type, m.MessageID, err)
	}
	corr := m.CorrelationID
	if corr == "" {
		corr = f.OrderID
	}
	meta, err := domain.EncodeMetadata(domain.Metadata{
		CorrelationID: corr, CausationID: m.MessageID, MessageID: m.MessageID,
		ConversationID: m.ConversationID, Envelope: string(m.Envelope), Exchange: m.Exchange,
		ReceivedAt: received, Redelivered: m.Redelivered,
	})
	if err != nil {
		return prepared{}, fmt.Errorf("encode metadata: %w", err)
	}
	return prepared{
		stream: domain.StreamName(f.OrderID),
		ev:     domain.EventData{ID: domain.FactEventID(m.MessageID), Type: string(ft), Data: data, Metadata: meta},
	}, nil
}

// append stores one fact and classifies the outcome, once, for the broker.
func (in *ingester) append(ctx context.Context, p prepared) rabbitmq.Verdict {
	res, err := in.log.Append(ctx, p.stream, domain.Any, p.ev)
	switch {
	case err == nil:
		if in.metrics != nil {
			if res.Duplicate {
				in.metrics.duplicates.Inc()
			} else {
				in.metrics.appended.Inc()
			}
		}
		return rabbitmq.Verdict{Action: rabbitmq.Ack}
	case errors.Is(err, domain.ErrInvalidEvent):
		return rabbitmq.Verdict{Action: rabbitmq.DeadLetter, Reason: "invalid event", Err: err}
	default:
		// The store is unavailable or closing: the broker redelivers later,
		// and the deterministic event id makes the retry harmless.
		return rabbitmq.Verdict{Action: rabbitmq.Retry, Reason: "store unavailable", Err: err}
	}
}
