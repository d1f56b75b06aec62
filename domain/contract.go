package domain

// The contract's names: everything another system sees of the ledger on
// the broker and in the store. They are declared here only; the adapters,
// the projections and the binary import them.

// Contract namespaces: MassTransit exchange and URN prefixes, CloudEvents
// type prefixes.
const (
	NamespaceBookWorm = "BookWorm.Contracts"
	NamespaceLedger   = "OrderLedger.Contracts"
)

// StreamPrefix is the prefix of every order stream ("order-"); EventStoreDB
// derives the category "$ce-order" from it.
const StreamPrefix = "order-"

// Content types of the three inbound envelopes.
const (
	ContentTypeMassTransit = "application/vnd.masstransit+json"
	ContentTypeCloudEvents = "application/cloudevents+json"
	ContentTypeJSON        = "application/json"
)

// Envelope kinds, as stored in a fact's metadata.
const (
	EnvelopeMassTransit = "masstransit"
	EnvelopeCloudEvents = "cloudevents"
	EnvelopeBare        = "bare"
	EnvelopeLedger      = "ledger" // facts the ledger makes itself
)

// Queues.
const (
	// DefaultQueue is the ledger's own receive endpoint.
	DefaultQueue = "finance-order-state-machine"
	// UnroutableQueue keeps outbound messages no queue was bound for.
	UnroutableQueue = "ledger.unroutable"
)

// ErrorQueue is where MassTransit's convention parks messages that cannot
// be processed.
func ErrorQueue(queue string) string { return queue + "_error" }

// SkippedQueue is where messages of unknown types go.
func SkippedQueue(queue string) string { return queue + "_skipped" }

// AccelByteExchange is the durable topic exchange of the AccelByte order
// events; the routing key is the event name.
const AccelByteExchange = "orderProcessing"

// CommandExchange is the MassTransit fanout exchange of a BookWorm command.
func CommandExchange(command string) string { return NamespaceBookWorm + ":" + command }

// InboundExchange is the MassTransit fanout exchange an inbound fact type
// arrives through ("BookWorm.Contracts:UserCheckedOutIntegrationEvent"),
// and "" for the ledger's own facts.
func InboundExchange(t FactType) string {
	ns := t.Namespace()
	if ns == "" {
		return ""
	}
	return ns + ":" + string(t)
}

// ConsumerQueue is one of BookWorm's receive endpoints for a command.
type ConsumerQueue struct {
	Queue   string
	Command string
}

// ConsumerQueues are BookWorm's receive endpoints for the commands the
// ledger sends (the Basket and Notification services' queues).
func ConsumerQueues() []ConsumerQueue {
	return []ConsumerQueue{
		{"basket-place-order", CommandPlaceOrder},
		{"notification-place-order", CommandPlaceOrder},
		{"basket-checkout-complete", CommandDeleteBasketComplete},
		{"basket-checkout-failed", CommandDeleteBasketFailed},
		{"notification-complete-order", CommandCompleteOrder},
		{"notification-cancel-order", CommandCancelOrder},
	}
}
