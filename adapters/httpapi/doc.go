// Package httpapi is the service's HTTP surface: liveness and readiness
// probes, Prometheus metrics, a read-only JSON API over the event log, the
// order read model (listed by status, sorted by activity or amount,
// searched by id prefix, with an overview and money by day when the read
// model's index is wired) and the audit, a live tail of new facts
// (Server-Sent Events), the parked lanes of the lifecycle publisher and
// the dead-letter queues (read only), the token-protected replay and
// parked-retry endpoints, and the stream browser web page (embedded; it
// needs nothing from the internet).
//
// It imports domain and projections only; cmd/ledger wires it to a store.
package httpapi
