package specs_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
	"github.com/bookworm-ledger/ledger/specs"
)

// The contract between the schemas and the domain: what the schemas accept
// the domain decodes, and what the domain sends the schemas accept.

const exampleOrder = "0198c0de-5a1e-7c3b-9f4e-2d6a8b1c3e5f" // every ledger example is about this order

var receivedAt = time.Date(2025, 8, 1, 9, 59, 59, 0, time.UTC)

// envelopeTime is the time an envelope carries (MassTransit sentTime,
// CloudEvents time); zero for a bare body.
func envelopeTime(t *testing.T, ex specs.Example) time.Time {
	t.Helper()
	var env struct {
		SentTime *time.Time `json:"sentTime"`
		Time     *time.Time `json:"time"`
	}
	if ex.Envelope == specs.EnvelopeBare {
		return time.Time{}
	}
	require.NoError(t, json.Unmarshal(ex.Raw, &env), ex.Path)
	switch {
	case env.SentTime != nil:
		return *env.SentTime
	case env.Time != nil:
		return *env.Time
	}
	return time.Time{}
}

// minorUnits converts a money token to cents independently of the domain
// (math/big), for cross-checking.
func minorUnits(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	s := strings.Trim(string(raw), `"`)
	r, ok := new(big.Rat).SetString(s)
	require.True(t, ok, "money %s", raw)
	r.Mul(r, big.NewRat(100, 1))
	require.True(t, r.IsInt(), "money %s has sub-cent digits", raw)
	return r.Num().Int64()
}

func isInbound(name string) (domain.FactType, bool) {
	ft, ok := domain.LookupFactType(name)
	if !ok {
		return "", false
	}
	for _, in := range domain.InboundTypes() {
		if in == ft {
			return ft, true
		}
	}
	return "", false
}

func TestInboundExamplesDecode(t *testing.T) {
	examples, err := specs.Examples()
	require.NoError(t, err)
	cur := domain.DefaultCurrency()
	decoded := 0
	for _, ex := range examples {
		ft, ok := isInbound(ex.Schema)
		if !ok {
			continue
		}
		decoded++
		t.Run(strings.TrimPrefix(ex.Path, specs.ExamplesDir+"/"), func(t *testing.T) {
			assert.Equal(t, ex.Schema, string(ft))
			var body map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(ex.Body, &body))
			at := envelopeTime(t, ex)
			if _, ok := body["creationDate"]; !ok && at.IsZero() {
				at = receivedAt // bare body without a time: the consumer uses the receipt time
			}
			f, err := codec.DecodeMessage(ft, ex.Body, cur, at)
			require.NoError(t, err)

			var orderID, basketID string
			require.NoError(t, json.Unmarshal(body["orderId"], &orderID))
			assert.Equal(t, strings.ToLower(orderID), f.OrderID)
			assert.Equal(t, domain.StreamName(orderID), "order-"+f.OrderID)
			if raw, ok := body["basketId"]; ok {
				require.NoError(t, json.Unmarshal(raw, &basketID))
				assert.Equal(t, strings.ToLower(basketID), f.BasketID)
			}
			money, hasMoney := body["totalMoney"]
			if !hasMoney {
				money, hasMoney = body["amount"]
			}
			assert.Equal(t, hasMoney, f.HasAmount)
			if hasMoney {
				assert.Equal(t, minorUnits(t, money), f.Amount)
			}
			if raw, ok := body["fullName"]; ok && string(raw) != "null" {
				require.NotNil(t, f.FullName)
			} else {
				assert.Nil(t, f.FullName)
			}
			if raw, ok := body["providerReference"]; ok {
				var ref string
				require.NoError(t, json.Unmarshal(raw, &ref))
				assert.Equal(t, ref, f.ProviderRef)
			}
			assert.False(t, f.At.IsZero())
			if !at.IsZero() {
				assert.True(t, at.Equal(f.At), "the envelope time is the fact time")
			}
			require.NoError(t, f.Validate())

			// The envelope names the type in a form the domain resolves.
			var env struct {
				MessageType []string `json:"messageType"`
				Type        string   `json:"type"`
			}
			require.NoError(t, json.Unmarshal(ex.Raw, &env))
			switch ex.Envelope {
			case specs.EnvelopeMassTransit:
				got, ok := domain.LookupFactType(env.MessageType[0])
				assert.True(t, ok)
				assert.Equal(t, ft, got)
			case specs.EnvelopeCloudEvents:
				got, ok := domain.LookupFactType(env.Type)
				assert.True(t, ok)
				assert.Equal(t, ft, got)
			}
		})
	}
	assert.GreaterOrEqual(t, decoded, 3*len(domain.InboundTypes()), "each inbound type has bare, MassTransit and CloudEvents examples")
}

// The exchange names in asyncapi.yaml resolve to the domain's fact types
// and namespaces.
func TestAsyncAPIInboundNamesResolve(t *testing.T) {
	doc := loadAsyncAPI(t)
	channels := doc["channels"].(map[string]any)
	for _, ft := range domain.InboundTypes() {
		exchange := ft.Namespace() + ":" + string(ft)
		assert.Contains(t, channels, exchange)
		for _, name := range []string{exchange, ft.Namespace() + "." + string(ft), "urn:message:" + exchange, string(ft)} {
			got, ok := domain.LookupFactType(name)
			assert.True(t, ok, name)
			assert.Equal(t, ft, got, name)
		}
	}
	for _, c := range domain.Commands() {
		assert.Contains(t, channels, domain.CommandExchange(c))
	}
	for _, e := range domain.AccelByteEvents() {
		assert.Contains(t, channels, e)
	}
	assert.ElementsMatch(t, accelByteEvents, domain.AccelByteEvents())
	assert.ElementsMatch(t, commands, domain.Commands())
}

// What the schemas reject for these reasons, the domain rejects too.
func TestSchemaRejectionsMatchDomain(t *testing.T) {
	cur := domain.DefaultCurrency()
	cases := []struct {
		name, file string
		change     func(map[string]any)
	}{
		{"missing orderId", "UserCheckedOutIntegrationEvent/number-money.json", del("orderId")},
		{"float-like money", "UserCheckedOutIntegrationEvent/string-money.json", set("totalMoney", "1e3")},
		{"negative money", "BasketDeletedFailedIntegrationEvent/string-money.json", set("totalMoney", "-1.00")},
		{"money as boolean", "UserCheckedOutIntegrationEvent/number-money.json", set("totalMoney", true)},
		{"orderId not a UUID", "UserCheckedOutIntegrationEvent/number-money.json", set("orderId", "order-42")},
		{"orderId wrong type", "OrderStatusChangedToCompleteIntegrationEvent/string-money.json", set("orderId", json.Number("42"))},
		{"orderId nil UUID", "UserCheckedOutIntegrationEvent/number-money.json", set("orderId", "00000000-0000-0000-0000-000000000000")},
		{"missing basketId", "BasketDeletedCompleteIntegrationEvent/string-money.json", del("basketId")},
		{"refund without amount", "PaymentRefundedIntegrationEvent/number-amount.json", del("amount")},
		{"refund without providerReference", "PaymentRefundedIntegrationEvent/number-amount.json", del("providerReference")},
		{"chargeback zero amount", "PaymentChargebackReversedIntegrationEvent/string-amount.json", set("amount", "0.00")},
		{"fullName wrong type", "UserCheckedOutIntegrationEvent/number-money.json", set("fullName", json.Number("7"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			schema := path.Dir(tc.file)
			body := mutate(t, tc.file, tc.change)
			require.Error(t, specs.Validate(schema, body), "schema")
			_, err := codec.DecodeMessage(domain.FactType(schema), body, cur, receivedAt)
			require.ErrorIs(t, err, domain.ErrInvalidFact, "domain")
		})
	}
}

// step is one fact of a scenario: an example file (decoded at the given
// time) or a fact the ledger makes itself.
type step struct {
	file      string // examples/<file>
	at        time.Duration
	fact      *domain.Fact
	anonymous bool // fullName and email set to null
}

func ex(file string, at time.Duration) step { return step{file: file, at: at} }

// anon is ex with fullName and email null: BookWorm's guard withholds the notification.
func anon(file string, at time.Duration) step { return step{file: file, at: at, anonymous: true} }

var t0 = time.Date(2025, 8, 1, 10, 0, 0, 0, time.UTC)

func timeout(attempt int, at time.Duration) step {
	return step{at: at, fact: &domain.Fact{Type: domain.FactPlacementTimedOut, OrderID: exampleOrder, Attempt: attempt}}
}

func restated(status, previous domain.Status, at time.Duration) step {
	return step{at: at, fact: &domain.Fact{Type: domain.FactOrderRestated, OrderID: exampleOrder,
		Restated: &domain.Restatement{Status: status, PreviousStatus: previous, ReplayID: "replay-1", Reason: "restated after replay"}}}
}

const (
	checkout       = "UserCheckedOutIntegrationEvent/string-money.json"
	checkoutAnon   = "UserCheckedOutIntegrationEvent/anonymous.json"
	basketDeleted  = "BasketDeletedCompleteIntegrationEvent/number-money.json"
	basketFailed   = "BasketDeletedFailedIntegrationEvent/string-money.json"
	completed      = "OrderStatusChangedToCompleteIntegrationEvent/number-money.json"
	cancelled      = "OrderStatusChangedToCancelIntegrationEvent/string-money.json"
	fulfilFailed   = "OrderFulfillFailedIntegrationEvent/with-reason.json"
	refundWhole    = "OrderRefundRequestedIntegrationEvent/whole-order.json"
	refundPartial  = "OrderRefundRequestedIntegrationEvent/with-provider-reference.json"
	refunded       = "PaymentRefundedIntegrationEvent/number-amount.json"
	refundFailed   = "PaymentRefundFailedIntegrationEvent/string-amount.json"
	chargeback     = "PaymentChargebackIntegrationEvent/number-amount.json"
	chargebackBack = "PaymentChargebackReversedIntegrationEvent/string-amount.json"
)

func TestOutboundBodiesValidate(t *testing.T) {
	provider := domain.DefaultRules()
	provider.RefundSettlement = domain.SettleProvider
	immediate := domain.DefaultRules()
	h := time.Hour

	scenarios := []struct {
		name  string
		rules domain.Rules
		steps []step
		want  domain.Status
		quiet bool // null fullName/email: BookWorm's guard withholds Complete/Cancel notifications
	}{
		{"fulfil then provider refund", provider, []step{ex(checkout, 0), ex(basketDeleted, 1), ex(completed, 2*h), ex(refundWhole, 24*h), ex(refunded, 48*h)}, domain.StatusRefunded, false},
		{"partial refund fails then cancel", provider, []step{ex(checkout, 0), ex(basketDeleted, 1), ex(refundPartial, h), ex(refundFailed, 2*h), ex(cancelled, 3*h)}, domain.StatusRefunding, false},
		{"fulfil failed then complete", immediate, []step{ex(checkout, 0), ex(basketDeleted, 1), ex(fulfilFailed, h), ex(completed, 2*h)}, domain.StatusFulfilled, false},
		{"chargeback reversed then cancel", immediate, []step{ex(checkout, 0), ex(basketDeleted, 1), ex(chargeback, 24*h), ex(chargebackBack, 48*h), ex(cancelled, 72*h)}, domain.StatusRefunded, false},
		{"basket deletion failed", immediate, []step{ex(checkout, 0), ex(basketFailed, 1)}, domain.StatusClosed, false},
		{"cancelled before charge", immediate, []step{ex(checkout, 0), ex(cancelled, h)}, domain.StatusClosed, false},
		{"placement expires", immediate, []step{ex(checkout, 0), timeout(1, 30*time.Minute), timeout(2, 60*time.Minute), timeout(3, 90*time.Minute)}, domain.StatusClosed, false},
		{"anonymous buyer", immediate, []step{ex(checkoutAnon, 0), ex(basketDeleted, 1), anon(completed, h), anon(cancelled, 2*h)}, domain.StatusRefunded, true},
		{"complete held until charged", immediate, []step{ex(checkout, 0), ex(completed, 1), ex(basketDeleted, 2)}, domain.StatusFulfilled, false},
		{"restated", immediate, []step{ex(checkout, 0), ex(basketDeleted, 1), restated(domain.StatusCharged, domain.StatusInit, h)}, domain.StatusCharged, false},
	}

	cur := domain.DefaultCurrency()
	channels := loadAsyncAPI(t)["channels"].(map[string]any)
	sentAB, sentCmd := map[string]bool{}, map[string]bool{}
	for _, asStrings := range []bool{true, false} {
		cfg := domain.DefaultOutboundConfig()
		cfg.DecimalsAsStrings = asStrings
		for _, sc := range scenarios {
			t.Run(fmt.Sprintf("%s/strings=%v", sc.name, asStrings), func(t *testing.T) {
				stream := domain.StreamName(exampleOrder)
				var (
					s        domain.State
					events   []domain.Event
					withheld []string
				)
				for i, st := range sc.steps {
					at := t0.Add(st.at)
					var f domain.Fact
					var id string
					if st.fact != nil {
						f = *st.fact
						f.At = at
						require.NoError(t, f.Validate())
						if f.Type == domain.FactPlacementTimedOut {
							id = domain.TimeoutEventID(f.OrderID, f.Attempt)
						} else {
							id = domain.RestatementEventID(f.OrderID, fmt.Sprint(i))
						}
					} else {
						body, err := specs.FS.ReadFile(path.Join(specs.ExamplesDir, st.file))
						require.NoError(t, err)
						if st.anonymous {
							body = mutate(t, st.file, func(m map[string]any) { m["fullName"], m["email"] = nil, nil })
							require.NoError(t, specs.Validate(path.Dir(st.file), body))
						}
						f, err = codec.DecodeMessage(domain.FactType(path.Dir(st.file)), body, cur, at)
						require.NoError(t, err, st.file)
						id = domain.FactEventID(fmt.Sprintf("%s/%d", sc.name, i))
					}
					e := domain.Event{ID: id, Revision: uint64(i), Fact: f}
					events = append(events, e)
					var out domain.Outcome
					s, out = domain.Evolve(sc.rules, s, e)
					for _, tr := range out.Transitions {
						if tr.Suppressed != "" {
							withheld = append(withheld, tr.Suppressed)
						}
						intents, err := domain.Intents(cfg, stream, s, tr)
						require.NoError(t, err)
						require.NoError(t, codec.RenderBodies(cfg, intents))
						for _, o := range intents {
							checkOutbound(t, channels, o)
							if sc.quiet {
								assert.NotContains(t, []string{domain.CommandCompleteOrder, domain.CommandCancelOrder}, o.Name, "guard")
							}
							if o.Kind == domain.KindAccelByte {
								sentAB[o.Name] = true
							} else {
								sentCmd[o.Name] = true
							}
						}
					}
				}
				if sc.quiet {
					assert.ElementsMatch(t, []string{domain.CommandCompleteOrder, domain.CommandCancelOrder}, withheld)
				}
				folded := domain.Fold(sc.rules, events)
				assert.Equal(t, sc.want, folded.Status)
				assert.Equal(t, s.Status, folded.Status, "Fold and Evolve agree")
				assert.Equal(t, s.Money, folded.Money)
			})
		}
	}
	for _, e := range accelByteEvents {
		assert.True(t, sentAB[e], "no scenario sent %s", e)
	}
	for _, c := range commands {
		assert.True(t, sentCmd[c], "no scenario sent %s", c)
	}
}

func checkOutbound(t *testing.T, channels map[string]any, o domain.Outbound) {
	t.Helper()
	require.NoError(t, specs.Validate(o.Name, o.Body), "%s %s body:\n%s", o.Kind, o.Name, o.Body)
	switch o.Kind {
	case domain.KindAccelByte:
		assert.Equal(t, "orderProcessing", o.Exchange)
		assert.Equal(t, o.Name, o.RoutingKey)
		require.Contains(t, channels, o.RoutingKey, "routing key is an asyncapi.yaml channel")
		b := amqpBinding(t, channels[o.RoutingKey])
		assert.Equal(t, o.Exchange, b["exchange"].(map[string]any)["name"])
		var env struct {
			Payload struct {
				Order struct {
					OrderNo string `json:"orderNo"`
				} `json:"order"`
			} `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(o.Body, &env))
		assert.Equal(t, o.OrderID, env.Payload.Order.OrderNo)
	case domain.KindBookWorm:
		assert.Equal(t, "BookWorm.Contracts:"+o.Name, o.Exchange)
		assert.Empty(t, o.RoutingKey)
		assert.Contains(t, channels, o.Exchange, "exchange is an asyncapi.yaml channel")
		var body struct {
			OrderID string `json:"orderId"`
			ID      string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(o.Body, &body))
		assert.Equal(t, o.OrderID, body.OrderID)
	default:
		t.Errorf("unknown kind %q", o.Kind)
	}
	assert.NotEmpty(t, o.MessageID)
}
