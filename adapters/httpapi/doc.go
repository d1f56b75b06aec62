// Package httpapi is the service's HTTP surface: liveness and readiness
// probes, Prometheus metrics, a read-only JSON API over the event log, the
// order read model and the audit, a live tail of new facts (Server-Sent
// Events), the token-protected replay endpoint, and the stream browser web
// page (embedded; it needs nothing from the internet).
//
// It imports domain and projections only; cmd/ledger wires it to a store.
package httpapi
