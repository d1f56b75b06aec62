// Package storespec is the contract suite for [domain.EventLog]. Every
// event log adapter runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		storespec.Run(t, func(t *testing.T) domain.EventLog { return mustOpen(t) })
//	}
//
// Each subtest opens its own log and uses stream names with a random
// per-run prefix, so the suite also works against a shared server. Declared
// capability differences go in [Features] and [RunWith].
package storespec
