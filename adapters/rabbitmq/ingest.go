package rabbitmq

import (
	"context"

	"github.com/bookworm-ledger/ledger/ingest"
)

// IngestHandler hands decoded deliveries to the ledger's ingester and maps
// each outcome class onto what the broker does with the delivery: stored
// and duplicate facts are acked; invalid ones, and those the store refuses
// for their order for good, dead-lettered; transient failures (the store
// unavailable) Wait: held and tried again until stored, never counted
// towards the delivery limit.
func IngestHandler(in *ingest.Ingester) BatchHandler {
	return func(ctx context.Context, msgs []Message) []Verdict {
		batch := make([]ingest.Message, len(msgs))
		for i, m := range msgs {
			batch[i] = ingest.Message{
				MessageID: m.MessageID, CorrelationID: m.CorrelationID, ConversationID: m.ConversationID,
				InitiatorID: m.InitiatorID, Type: m.Type, Envelope: string(m.Envelope), Exchange: m.Exchange,
				Body: m.Body, SentAt: m.SentAt, Redelivered: m.Redelivered,
			}
		}
		outcomes := in.Handle(ctx, batch)
		verdicts := make([]Verdict, len(outcomes))
		for i, o := range outcomes {
			verdicts[i] = Verdict{Action: actionOf(o.Class), Reason: o.Reason, Err: o.Err}
		}
		return verdicts
	}
}

func actionOf(c ingest.Class) Action {
	switch c {
	case ingest.Stored, ingest.Duplicate:
		return Ack
	case ingest.Invalid, ingest.Refused:
		return DeadLetter
	case ingest.Transient:
		return Wait
	default:
		return Retry // a class this adapter does not know: bounded by the delivery limit
	}
}
