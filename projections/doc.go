// Package projections follows the event log and derives everything that is
// not a fact: the lifecycle publisher (outbound AccelByte events and
// BookWorm commands), the order read model, the placement time-out
// scheduler, replay and audit. It imports only the domain package and
// declares the small ports it needs (Publisher, ReadModel).
package projections
