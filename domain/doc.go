// Package domain holds the ledger's pure core: the order facts and their
// wire and stored forms, exact money, the lifecycle fold (statuses, money
// totals, placement clock, held and ignored facts) and the outbound
// intents (AccelByte order events and BookWorm commands) each lifecycle
// transition produces, plus the event-log port the stores implement.
//
// Nothing here does I/O, logs, reads a clock or draws random numbers:
// time comes from the facts and every identifier is derived
// deterministically, so a replay of the same facts gives the same state
// and the same outbound messages. It imports only the standard library.
package domain
