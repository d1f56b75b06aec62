// Package domain holds the ledger's lifecycle rules: the order facts (their
// types and what each must carry), exact money, the statuses, the fold
// (one method per kind of fact: statuses, money totals, placement clock,
// held and ignored facts), the outbound intents each transition produces
// (which AccelByte event and BookWorm command to send, with what data),
// the derived identifiers, the contract's names, and the event-log port
// the stores implement.
//
// The bytes are elsewhere: the subpackage codec reads inbound message
// bodies, writes and reads the stored form of facts and metadata, and
// renders the outbound bodies.
//
// Nothing here does I/O, logs, reads a clock or draws random numbers:
// time comes from the facts and every identifier is derived
// deterministically, so a replay of the same facts gives the same state
// and the same outbound messages. It imports only the standard library.
package domain
