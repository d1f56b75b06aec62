// Package codec holds the ledger's wire and stored forms: the strict JSON
// scanner, the decoding of inbound message bodies into facts, the stored
// form of facts and their metadata, and the bodies of the outbound
// AccelByte events and BookWorm commands.
//
// The rules those forms carry (which facts exist, what each requires, what
// a transition sends) live in the domain package; codec only turns them
// into bytes and back. Like domain it does no I/O and imports only the
// standard library and domain.
package codec
