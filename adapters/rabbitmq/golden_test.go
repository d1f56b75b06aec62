package rabbitmq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/ingest"
	"github.com/bookworm-ledger/ledger/projections"
)

var update = flag.Bool("update", false, "rewrite the golden files in specs/golden")

// Fixed ids and times of the golden checkout: the files must not change
// from run to run.
const (
	goldenOrder        = "0198a7f4-0000-7000-8000-00000000a001"
	goldenBasket       = "0198a7f4-0000-7000-8000-00000000b001"
	goldenMessage      = "0198a7f4-0000-7000-8000-00000000c001"
	goldenCorrelation  = "0198a7f4-0000-7000-8000-00000000d001"
	goldenConversation = "0198a7f4-0000-7000-8000-00000000e001"
)

var goldenSent = time.Date(2025, 8, 1, 10, 0, 0, 123000000, time.UTC)

const goldenBody = `{"basketId":"` + goldenBasket + `","fullName":"John Doe","email":"john@example.com","orderId":"` + goldenOrder +
	`","totalMoney":"99.99","id":"0198a7f4-0000-7000-8000-00000000f001","creationDate":"2025-08-01T10:00:00.123Z"}`

// goldenInbound is the checkout as each envelope kind delivers it: the
// MassTransit and CloudEvents ones with correlation and conversation, the
// bare one with only the AMQP message id (nothing to carry on).
func goldenInbound(kind string) rabbitmq.Delivery {
	ex := "BookWorm.Contracts:UserCheckedOutIntegrationEvent"
	switch kind {
	case domain.EnvelopeMassTransit:
		return rabbitmq.Delivery{ContentType: domain.ContentTypeMassTransit, Exchange: ex, Body: []byte(`{"messageId":"` + goldenMessage +
			`","correlationId":"` + goldenCorrelation + `","conversationId":"` + goldenConversation +
			`","initiatorId":null,"sourceAddress":"rabbitmq://basket/basket-checkout","destinationAddress":"rabbitmq://basket/` + ex +
			`","messageType":["urn:message:BookWorm.Contracts:UserCheckedOutIntegrationEvent","urn:message:BookWorm.Chassis.EventBus:IntegrationEvent"],` +
			`"message":` + goldenBody + `,"sentTime":"2025-08-01T10:00:00.123Z","headers":{}}`)}
	case domain.EnvelopeCloudEvents:
		return rabbitmq.Delivery{ContentType: domain.ContentTypeCloudEvents, Exchange: ex, Body: []byte(`{"specversion":"1.0","id":"` + goldenMessage +
			`","source":"basket","type":"BookWorm.Contracts.UserCheckedOutIntegrationEvent","time":"2025-08-01T10:00:00.123Z",` +
			`"datacontenttype":"application/json","correlationid":"` + goldenCorrelation + `","conversationid":"` + goldenConversation +
			`","data":` + goldenBody + `}`)}
	}
	return rabbitmq.Delivery{ContentType: domain.ContentTypeJSON, Type: "UserCheckedOutIntegrationEvent", MessageID: goldenMessage,
		Exchange: ex, Timestamp: goldenSent.Truncate(time.Second), Body: []byte(goldenBody)}
}

// TestGoldenOutbound: for each inbound envelope kind and each outbound
// envelope, the checkout goes the whole way (decode, ingest, stored
// metadata, fold, intents, bodies, the Publisher, the real broker) and the
// delivered messages (properties, headers, body) must equal the files in
// specs/golden/outbound. go test -run TestGoldenOutbound -update rewrites
// them.
func TestGoldenOutbound(t *testing.T) {
	kinds := []string{domain.EnvelopeMassTransit, domain.EnvelopeCloudEvents, domain.EnvelopeBare}
	for _, in := range kinds {
		for _, out := range kinds {
			t.Run(in+"-to-"+out, func(t *testing.T) {
				t.Parallel() // a vhost each
				e := newEnv(t, nil)
				pub := rabbitmq.NewPublisher(e.broker(nil), rabbitmq.PublisherConfig{Envelope: out})
				msgs := goldenIntents(t, goldenInbound(in))
				for i := range msgs { // this test's exchanges
					msgs[i].Exchange = e.name(msgs[i].Exchange)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				require.NoError(t, pub.Publish(ctx, msgs))
				got := []amqp.Delivery{e.drain(e.cfg.UnroutableQueue, 1)[0], e.drain(e.name("basket-place-order"), 1)[0]}
				compareGolden(t, filepath.Join("..", "..", "specs", "golden", "outbound", in+"-to-"+out+".json"), e.prefix, got)
			})
		}
	}
}

// goldenIntents turns an inbound delivery into the outbound messages of its
// checkout, as the ledger's ingest and lifecycle do.
func goldenIntents(t *testing.T, d rabbitmq.Delivery) []domain.Outbound {
	t.Helper()
	m, err := rabbitmq.DecodeEnvelope(d)
	require.NoError(t, err)
	cur := domain.DefaultCurrency()
	p, err := ingest.Prepare(ingest.Message{MessageID: m.MessageID, CorrelationID: m.CorrelationID, ConversationID: m.ConversationID,
		InitiatorID: m.InitiatorID, Type: m.Type, Envelope: string(m.Envelope), Exchange: m.Exchange, Body: m.Body, SentAt: m.SentAt},
		cur, goldenSent.Add(time.Second))
	require.NoError(t, err)
	ev, err := projections.EventOf(domain.RecordedEvent{Stream: p.Stream, ID: p.Event.ID, Type: p.Event.Type,
		Data: p.Event.Data, Metadata: p.Event.Metadata})
	require.NoError(t, err)
	f := domain.NewFolder(domain.DefaultRules(), domain.State{})
	outcome := f.Apply(ev)
	require.Len(t, outcome.Transitions, 1)
	cfg := domain.DefaultOutboundConfig()
	cfg.ClientID, cfg.UserID = "ledger-client", "ledger-operator"
	msgs, err := domain.Intents(cfg, p.Stream, f.State(), outcome.Transitions[0])
	require.NoError(t, err)
	require.NoError(t, codec.RenderBodies(cfg, msgs))
	return msgs
}

type goldenDelivery struct {
	Exchange     string          `json:"exchange"`
	RoutingKey   string          `json:"routingKey"`
	Properties   map[string]any  `json:"properties"`
	Headers      map[string]any  `json:"headers"`
	Body         json.RawMessage `json:"body"`
	HostReplaced bool            `json:"hostReplaced,omitempty"`
}

var goldenAddress = regexp.MustCompile(`rabbitmqs?://[^/"]+/[^/"]+/`)

// compareGolden renders the deliveries with what varies between runs
// replaced (the test's name prefix; the MassTransit host block, which
// names this machine and process) and compares them with the file.
func compareGolden(t *testing.T, path, prefix string, ds []amqp.Delivery) {
	t.Helper()
	// MassTransit addresses name the broker and the test's vhost.
	norm := func(s string) string {
		return goldenAddress.ReplaceAllString(strings.ReplaceAll(s, prefix+".", ""), "rabbitmq://broker/vhost/")
	}
	var msgs []goldenDelivery
	for _, d := range ds {
		g := goldenDelivery{Exchange: norm(d.Exchange), RoutingKey: d.RoutingKey, Headers: map[string]any{},
			Properties: map[string]any{"contentType": d.ContentType, "messageId": d.MessageId, "correlationId": d.CorrelationId,
				"type": d.Type, "deliveryMode": d.DeliveryMode, "timestamp": d.Timestamp.UTC().Format(time.RFC3339)}}
		for k, v := range d.Headers {
			if k != "x-delivery-count" { // the broker's (a quorum queue), not the ledger's
				g.Headers[k] = v
			}
		}
		var body map[string]any
		require.NoError(t, json.Unmarshal([]byte(norm(string(d.Body))), &body))
		if _, ok := body["host"]; ok {
			body["host"], g.HostReplaced = "(this host)", true
		}
		b, err := json.Marshal(body)
		require.NoError(t, err)
		g.Body = b
		msgs = append(msgs, g)
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].Exchange < msgs[j].Exchange })
	got, err := json.MarshalIndent(msgs, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: run go test -run TestGoldenOutbound -update ./adapters/rabbitmq/")
	if !bytes.Equal(want, got) {
		require.JSONEq(t, string(want), string(got), "%s differs (rewrite with -update if the change is meant)", path)
		require.Equal(t, string(want), string(got), path)
	}
}
