package rabbitmq_test

import (
	"testing"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
)

// A MassTransit envelope as BookWorm's Basket service sends it (about
// 1 KB: ids, addresses, message types, headers and host).
var benchMassTransit = []byte(`{
  "messageId": "0198a7f4-0000-7000-8000-000000000001",
  "requestId": null,
  "correlationId": "0198a7f4-0000-7000-8000-0000000000cc",
  "conversationId": "0198a7f4-0000-7000-8000-0000000000dd",
  "initiatorId": null,
  "sourceAddress": "rabbitmq://eventbus/basket_BookWorm_Basket_bus_kyoyyyfcmaobpn8ebdq3ddzx8d?temporary=true",
  "destinationAddress": "rabbitmq://eventbus/BookWorm.Contracts:UserCheckedOutIntegrationEvent",
  "responseAddress": null,
  "faultAddress": null,
  "messageType": [
    "urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent",
    "urn:message:BookWorm.Chassis.EventBus:IntegrationEvent"
  ],
  "message": {
    "orderId": "0198a7f4-5b2e-7c3d-9e1f-2a3b4c5d6e7f",
    "basketId": "0198a7f4-0000-7000-8000-0000000000bb",
    "fullName": "John Doe",
    "email": "john.doe@example.com",
    "totalMoney": "99.99",
    "id": "0198a7f4-0000-7000-8000-0000000000ee",
    "creationDate": "2025-08-01T10:00:00.1234567Z"
  },
  "expirationTime": null,
  "sentTime": "2025-08-01T10:00:00.1234567Z",
  "headers": {
    "MT-Activity-Id": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "MT-Activity-Baggage": "tenant=bookworm"
  },
  "host": {
    "machineName": "basket-7d9f8b6c5-x2k4q",
    "processName": "BookWorm.Basket",
    "processId": 1,
    "assembly": "BookWorm.Basket",
    "assemblyVersion": "1.0.0.0",
    "frameworkVersion": "9.0.4",
    "massTransitVersion": "8.4.0.0",
    "operatingSystemVersion": "Unix 6.8.0.1021"
  }
}`)

// A CloudEvents structured event as BookWorm's Wolverine era sent it.
var benchCloudEvent = []byte(`{"topic":"BookWorm.Contracts.BasketDeletedCompleteIntegrationEvent","tenantid":null,` +
	`"traceid":"4bf92f3577b34da6a3ce929d0e0e4736","tracestate":null,` +
	`"data":{"orderId":"0198a7f4-5b2e-7c3d-9e1f-2a3b4c5d6e7f","basketId":"0198a7f4-0000-7000-8000-0000000000bb","totalMoney":99.99},` +
	`"id":"0198a7f4-0000-7000-8000-000000000002","specversion":"1.0","datacontenttype":"application/json; charset=utf-8",` +
	`"source":"book-worm.-ordering","type":"BookWorm.Contracts.BasketDeletedCompleteIntegrationEvent",` +
	`"time":"2026-05-07T10:00:00.0000000+00:00","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`)

func BenchmarkDecodeEnvelope(b *testing.B) {
	for _, c := range []struct {
		name string
		d    rabbitmq.Delivery
	}{
		{"masstransit", rabbitmq.Delivery{ContentType: "application/vnd.masstransit+json", MessageID: "m", Body: benchMassTransit}},
		{"cloudevents", rabbitmq.Delivery{ContentType: "application/cloudevents+json", Body: benchCloudEvent}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := rabbitmq.DecodeEnvelope(c.d); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(c.d.Body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rabbitmq.DecodeEnvelope(c.d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
