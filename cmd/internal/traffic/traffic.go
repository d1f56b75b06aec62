// Package traffic makes realistic BookWorm and payment traffic for the
// ledger: `ledger simulate`, the end-to-end tests, the benchmark and the
// chaos run all publish what it plans, wrapped in the three envelopes the
// ledger accepts.
package traffic

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// Scenario names an order's story.
type Scenario string

// The stories the generator tells, each ending in a known status.
const (
	Fulfilled        Scenario = "fulfilled"         // checkout, basket deleted, completed
	CancelledEarly   Scenario = "cancelled-early"   // checkout, cancelled before the charge
	BasketFailed     Scenario = "basket-failed"     // checkout, basket deletion failed
	Refunded         Scenario = "refunded"          // fulfilled, then a refund requested
	CancelledCharged Scenario = "cancelled-charged" // charged, then cancelled: refunded
	Chargeback       Scenario = "chargeback"        // fulfilled, then charged back
	ChargebackWon    Scenario = "chargeback-won"    // fulfilled, charged back, reversed
	FulfillFailed    Scenario = "fulfill-failed"    // charged, fulfilment failed, completed later
	Expired          Scenario = "expired"           // checkout only: placement times out
)

// Scenarios lists every scenario.
var Scenarios = []Scenario{Fulfilled, CancelledEarly, BasketFailed, Refunded, CancelledCharged, Chargeback, ChargebackWon, FulfillFailed, Expired}

// FinalStatus is the status each scenario ends in with immediate refund
// settlement.
var FinalStatus = map[Scenario]string{
	Fulfilled: "FULFILLED", CancelledEarly: "CLOSED", BasketFailed: "CLOSED", Refunded: "REFUNDED",
	CancelledCharged: "REFUNDED", Chargeback: "CHARGEBACK", ChargebackWon: "CHARGEBACK_REVERSED",
	FulfillFailed: "FULFILLED", Expired: "CLOSED",
}

// Order is one planned order.
type Order struct {
	ID       string
	BasketID string
	Scenario Scenario
	FullName string
	Email    string
	Minor    int64 // total in cents
	Steps    []Step
}

// Step is one inbound message of an order.
type Step struct {
	Namespace string // BookWorm.Contracts or OrderLedger.Contracts
	Type      string // e.g. UserCheckedOutIntegrationEvent
	Fields    map[string]any
}

// Plan makes n orders from seed. When scenarios is empty the mix covers
// every scenario but Expired (which needs a short placement time-out).
func Plan(seed uint64, n int, scenarios []Scenario) []Order {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if len(scenarios) == 0 {
		scenarios = []Scenario{Fulfilled, Fulfilled, Fulfilled, CancelledEarly, BasketFailed, Refunded, CancelledCharged, Chargeback, ChargebackWon, FulfillFailed}
	}
	names := []string{"Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson"}
	orders := make([]Order, n)
	for i := range orders {
		o := Order{
			ID:       newUUID(r),
			BasketID: newUUID(r),
			Scenario: scenarios[r.IntN(len(scenarios))],
			FullName: names[r.IntN(len(names))],
			Minor:    int64(100 + r.IntN(50_000)),
		}
		o.Email = fmt.Sprintf("customer%d@example.com", r.IntN(1_000_000))
		o.Steps = steps(o)
		orders[i] = o
	}
	return orders
}

// PoisonMinor is the total of a poison order: 30,000,000.00 USD, a real
// and valid amount, but above the AccelByte contract's int32 price
// (2,147,483,647 minor units), so its AccelByte events can never be built.
const PoisonMinor int64 = 3_000_000_000

// Poison makes every n-th order (the n-th, the 2n-th, …) a poison order
// and returns their ids: the facts are valid and must be stored, their
// BookWorm commands go out, and only their AccelByte events are parked.
func Poison(orders []Order, every int) map[string]bool {
	ids := map[string]bool{}
	if every < 1 {
		return ids
	}
	for i := every - 1; i < len(orders); i += every {
		o := &orders[i]
		o.Minor = PoisonMinor + o.Minor
		o.Steps = steps(*o)
		ids[o.ID] = true
	}
	return ids
}

func newUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b).String()
}

func steps(o Order) []Step {
	bw := func(t string, extra map[string]any) Step {
		f := map[string]any{"orderId": o.ID, "basketId": o.BasketID, "totalMoney": o.Minor}
		for k, v := range extra {
			f[k] = v
		}
		return Step{Namespace: domain.NamespaceBookWorm, Type: t, Fields: f}
	}
	who := map[string]any{"fullName": o.FullName, "email": o.Email}
	pay := func(t string, f map[string]any) Step {
		f["orderId"] = o.ID
		return Step{Namespace: domain.NamespaceLedger, Type: t, Fields: f}
	}
	ref := "psp_" + o.ID[:8]
	checkout := bw("UserCheckedOutIntegrationEvent", who)
	charged := bw("BasketDeletedCompleteIntegrationEvent", nil)
	complete := bw("OrderStatusChangedToCompleteIntegrationEvent", who)
	switch o.Scenario {
	case CancelledEarly:
		return []Step{checkout, bw("OrderStatusChangedToCancelIntegrationEvent", who)}
	case BasketFailed:
		return []Step{checkout, bw("BasketDeletedFailedIntegrationEvent", map[string]any{"email": o.Email})}
	case Refunded:
		return []Step{checkout, charged, complete, pay("OrderRefundRequestedIntegrationEvent", map[string]any{"reason": "customer asked"})}
	case CancelledCharged:
		return []Step{checkout, charged, bw("OrderStatusChangedToCancelIntegrationEvent", who)}
	case Chargeback:
		return []Step{checkout, charged, complete, pay("PaymentChargebackIntegrationEvent", map[string]any{"amount": o.Minor, "providerReference": ref, "reason": "fraudulent"})}
	case ChargebackWon:
		return []Step{checkout, charged, complete,
			pay("PaymentChargebackIntegrationEvent", map[string]any{"amount": o.Minor, "providerReference": ref, "reason": "not received"}),
			pay("PaymentChargebackReversedIntegrationEvent", map[string]any{"amount": o.Minor, "providerReference": ref, "reason": "dispute won"})}
	case FulfillFailed:
		return []Step{checkout, charged, pay("OrderFulfillFailedIntegrationEvent", map[string]any{"reason": "out of stock"}), complete}
	case Expired:
		return []Step{checkout}
	default:
		return []Step{checkout, charged, complete}
	}
}

// Envelope picks how a message is wrapped.
type Envelope string

// Envelopes the ledger accepts.
const (
	MassTransit Envelope = "masstransit"
	CloudEvents Envelope = "cloudevents"
	Bare        Envelope = "bare"
)

// Wire is one message ready for the broker.
type Wire struct {
	Exchange    string
	ContentType string
	Type        string // AMQP type property (bare messages)
	MessageID   string
	Body        []byte
}

// Publication turns w into the broker adapter's publication.
func (w Wire) Publication() rabbitmq.Publication {
	return rabbitmq.Publication{Exchange: w.Exchange, MessageID: w.MessageID, Type: w.Type, ContentType: w.ContentType, Body: w.Body}
}

// Encode wraps step s in envelope env; money goes as a decimal string in
// MassTransit (as MassTransit writes it) and as a JSON number otherwise.
// messageID is the envelope identity; the same id is a redelivery.
func Encode(s Step, env Envelope, messageID string, sent time.Time) (Wire, error) {
	asString := env == MassTransit
	body := make(map[string]any, len(s.Fields)+2)
	for k, v := range s.Fields {
		if minor, ok := v.(int64); ok && (k == "totalMoney" || k == "amount") {
			txt := fmt.Sprintf("%d.%02d", minor/100, minor%100)
			if asString {
				v = txt
			} else {
				v = json.Number(txt)
			}
		}
		body[k] = v
	}
	body["id"] = messageID // BookWorm regenerates this; the ledger ignores it
	body["creationDate"] = sent.UTC().Format(time.RFC3339Nano)
	msg, err := json.Marshal(body)
	if err != nil {
		return Wire{}, err
	}
	w := Wire{Exchange: s.Namespace + ":" + s.Type, MessageID: messageID}
	oe := rabbitmq.OutboundEnvelope{MessageID: messageID, Namespace: s.Namespace, Type: s.Type, BaseTypes: []string{},
		Message: msg, SentTime: sent, SourceAddress: "rabbitmq://simulator/" + s.Type, CorrelationID: fmt.Sprint(s.Fields["orderId"])}
	switch env {
	case CloudEvents:
		w.ContentType = domain.ContentTypeCloudEvents
		w.Body, err = rabbitmq.EncodeCloudEvent(oe)
	case Bare:
		w.ContentType, w.Type, w.Body = domain.ContentTypeJSON, s.Namespace+"."+s.Type, msg
	default:
		w.ContentType = domain.ContentTypeMassTransit
		w.Body, err = rabbitmq.EncodeMassTransit(oe)
	}
	return w, err
}

// MessageID derives a stable envelope id for step i of an order, so a
// re-run of the same plan is a redelivery, not new traffic.
func MessageID(orderID string, i int) string {
	return uuid.NewSHA1(uuid.MustParse(orderID), []byte(fmt.Sprintf("step-%d", i))).String()
}
