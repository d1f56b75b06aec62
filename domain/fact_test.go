package domain_test

import (
	"strings"
	"testing"

	"github.com/bookworm-ledger/ledger/domain"
)

var usd = domain.DefaultCurrency()

func TestLookupFactType(t *testing.T) {
	for _, typ := range domain.FactTypes() {
		if got, ok := domain.LookupFactType(string(typ)); !ok || got != typ {
			t.Errorf("%s: %v %v", typ, got, ok)
		}
	}
	for _, typ := range domain.InboundTypes() {
		ns := typ.Namespace()
		for _, name := range []string{ns + "." + string(typ), ns + ":" + string(typ), "urn:message:" + ns + ":" + string(typ)} {
			if got, ok := domain.LookupFactType(name); !ok || got != typ {
				t.Errorf("%s: %v %v", name, got, ok)
			}
		}
	}
	for _, name := range []string{"", "Nope", "BookWorm.Contracts.PaymentRefundedIntegrationEvent", "OrderLedger.Contracts.UserCheckedOutIntegrationEvent",
		"urn:message:BookWorm.Contracts.UserCheckedOutIntegrationEvent", "BookWorm.Contracts.PlacementTimedOut", "BookWorm.Contracts."} {
		if got, ok := domain.LookupFactType(name); ok {
			t.Errorf("%q resolved to %s", name, got)
		}
	}
	if len(domain.InboundTypes()) != 11 || domain.FactPlacementTimedOut.Namespace() != "" || domain.FactUserCheckedOut.Namespace() != "BookWorm.Contracts" ||
		domain.FactPaymentRefunded.Namespace() != "OrderLedger.Contracts" {
		t.Error("namespaces")
	}
}

func TestIDs(t *testing.T) {
	if domain.StreamName(strings.ToUpper(orderA)) != "order-"+orderA {
		t.Error("stream name")
	}
	if id, ok := domain.OrderIDFromStream("order-" + orderA); !ok || id != orderA {
		t.Error("order id from stream")
	}
	for _, s := range []string{"order-", "order-x", "$ce-order", "orders-" + orderA, "order-" + strings.ToUpper(orderA)} {
		if _, ok := domain.OrderIDFromStream(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
	a := domain.NameUUID("ab", "c")
	if a == domain.NameUUID("a", "bc") || a != domain.NameUUID("ab", "c") || len(a) != 36 || a[14] != '5' {
		t.Errorf("NameUUID %s", a)
	}
	ids := map[string]bool{
		domain.FactEventID("m1"): true, domain.FactEventID("m2"): true, domain.TimeoutEventID(orderA, 1): true,
		domain.TimeoutEventID(orderA, 2): true, domain.RestatementEventID(orderA, "f"): true,
		domain.MessageID("order-"+orderA, 1, "accelbyte:orderCreated"): true, domain.MessageID("order-"+orderA, 1, "bookworm:PlaceOrderCommand"): true,
	}
	if len(ids) != 7 {
		t.Error("ids collide")
	}
	if domain.TimeoutEventID(strings.ToUpper(orderA), 1) != domain.TimeoutEventID(orderA, 1) {
		t.Error("timeout id depends on letter case")
	}
}
