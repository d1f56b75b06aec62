// Package rabbitmq is the ledger's RabbitMQ edge (amqp091-go): it declares
// the topology, consumes BookWorm integration events and payment facts in
// batches with manual acks, dead-letters what cannot be used the way
// MassTransit does (`<queue>_error`, `<queue>_skipped`), and publishes
// outbound messages persistent, mandatory and with pipelined publisher
// confirms. It reconnects by itself after a broker restart or a dropped
// connection; nothing unacked or unconfirmed is lost across a reconnect.
//
// The contract's names (types, exchanges, queues, namespaces, content
// types) come from the domain package. Publisher implements the
// projections' publisher port: it sends domain.Outbound messages in the
// configured envelope.
//
// Envelope decoding (MassTransit, CloudEvents 1.0 structured JSON or
// binary mode, bare JSON; one pass over the body) and encoding are pure functions so they can be
// fuzzed without a broker.
package rabbitmq
