package domain

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// OutboundKind says which contract an outbound message belongs to.
type OutboundKind string

// Outbound kinds.
const (
	KindAccelByte OutboundKind = "accelbyte"
	KindBookWorm  OutboundKind = "bookworm"
)

// OutboundConfig is what the outbound messages need from configuration.
type OutboundConfig struct {
	Namespace, ParentNamespace string // AccelByte namespaces
	ClientID, UserID           string // AccelByte envelope clientId and userId (the operator)
	Currency                   Currency
	CurrencySymbol             string // "$"
	CurrencyType               string // REAL or VIRTUAL
	DecimalsAsStrings          bool   // BookWorm totalMoney as "99.99" (MassTransit) or 99.99
}

// DefaultOutboundConfig: namespace "bookworm", USD "$" REAL, decimals as
// strings (MassTransit).
func DefaultOutboundConfig() OutboundConfig {
	return OutboundConfig{Namespace: "bookworm", Currency: DefaultCurrency(), CurrencySymbol: "$", CurrencyType: "REAL", DecimalsAsStrings: true}
}

// Validate reports every bad setting at once.
func (c OutboundConfig) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace is required"))
	}
	if err := c.Currency.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.CurrencyType != "REAL" && c.CurrencyType != "VIRTUAL" {
		errs = append(errs, fmt.Errorf("currency type %q: want REAL or VIRTUAL", c.CurrencyType))
	}
	return errors.Join(errs...)
}

// Outbound is one message a transition asks to publish.
type Outbound struct {
	Kind          OutboundKind
	Name          string // "orderCreated" / "PlaceOrderCommand"
	MessageID     string // deterministic: MessageID(stream, revision, Kind+":"+Name)
	Exchange      string // AccelByteExchange | CommandExchange(Name)
	RoutingKey    string // AccelByte: the event name; BookWorm: ""
	OrderID       string
	CorrelationID string    // the causing event's correlation id, else the order id (BookWorm's saga correlation)
	CausationID   string    // the causing fact's event id
	Time          time.Time // the causing fact's time
	Body          []byte    // AccelByte: the full envelope; BookWorm: the command message object (no transport envelope)
}

// MessageID is the deterministic id of the message of the given kind caused
// by the event at revision of stream: a re-publish carries the same id.
func MessageID(stream string, revision uint64, kind string) string {
	return NameUUID("outbound", stream, strconv.FormatUint(revision, 10), kind)
}

// ErrNoOrder is returned by Intents for a state without an order.
var ErrNoOrder = errors.New("no order in state")

// Intents returns the messages transition t of the order in state s (the
// state after the event) asks to publish: the AccelByte event first, then
// the BookWorm command. The error is permanent (e.g. a total outside int32).
func Intents(cfg OutboundConfig, stream string, s State, t Transition) ([]Outbound, error) {
	if t.AccelByte == "" && t.Command == "" {
		return nil, nil
	}
	if s.OrderID == "" {
		return nil, fmt.Errorf("intents for %s: %w", stream, ErrNoOrder)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("intents for %s: %w", stream, err)
	}
	at := t.Cause.Fact.At.UTC()
	corr := s.OrderID // BookWorm's saga correlation
	if c, ok := canonicalUUID(t.Cause.CorrelationID); ok {
		corr = c
	}
	base := Outbound{OrderID: s.OrderID, CorrelationID: corr, CausationID: t.Cause.ID, Time: at}
	var out []Outbound
	if t.AccelByte != "" {
		if s.Total < 0 || s.Total > math.MaxInt32 {
			return nil, fmt.Errorf("intents for %s: %w: total %d minor units outside the int32 AccelByte price range", stream, ErrAmountOverflow, s.Total)
		}
		o := base
		o.Kind, o.Name = KindAccelByte, t.AccelByte
		o.MessageID = MessageID(stream, t.Cause.Revision, string(KindAccelByte)+":"+t.AccelByte)
		o.Exchange, o.RoutingKey = AccelByteExchange, t.AccelByte
		o.Body = accelByteBody(cfg, s, t, o.MessageID, corr, at)
		out = append(out, o)
	}
	if t.Command != "" {
		body, err := commandBody(cfg, s, t.Command, MessageID(stream, t.Cause.Revision, string(KindBookWorm)+":"+t.Command), at)
		if err != nil {
			return nil, fmt.Errorf("intents for %s: %w", stream, err)
		}
		o := base
		o.Kind, o.Name = KindBookWorm, t.Command
		o.MessageID = MessageID(stream, t.Cause.Revision, string(KindBookWorm)+":"+t.Command)
		o.Exchange = CommandExchange(t.Command)
		o.Body = body
		out = append(out, o)
	}
	return out, nil
}

// accelByteBody is the AccelByte envelope (AsyncAPI "order service"):
// payload.order plus the event fields.
func accelByteBody(cfg OutboundConfig, s State, t Transition, id, corr string, at time.Time) []byte {
	ts := at.Truncate(time.Second).Format(time.RFC3339) // AccelByte's eventstream SDK: second precision
	b := make([]byte, 0, 768)
	b = append(b, `{"payload":{"order":{"orderNo":`...)
	b = appendString(b, s.OrderID)
	b = append(b, `,"namespace":`...)
	b = appendString(b, cfg.Namespace)
	if s.BasketID != "" { // BookWorm's basket id is the buyer id: the order owner
		b = append(b, `,"userId":`...)
		b = appendString(b, s.BasketID)
	}
	b = append(b, `,"sandbox":false,"quantity":1,"price":`...)
	b = strconv.AppendInt(b, s.Total, 10)
	b = append(b, `,"discountedPrice":`...)
	b = strconv.AppendInt(b, s.Total, 10)
	b = append(b, `,"currency":{"currencyCode":`...)
	b = appendString(b, cfg.Currency.Code)
	b = append(b, `,"currencySymbol":`...)
	b = appendString(b, cfg.CurrencySymbol)
	b = append(b, `,"currencyType":`...)
	b = appendString(b, cfg.CurrencyType)
	b = append(b, `,"namespace":`...)
	b = appendString(b, cfg.Namespace)
	b = append(b, `,"decimals":`...)
	b = strconv.AppendInt(b, int64(cfg.Currency.Decimals), 10)
	b = append(b, `},"status":`...)
	b = appendString(b, string(t.To))
	b = append(b, `,"statusReason":`...)
	b = appendString(b, t.Reason)
	b = append(b, `,"actualPaid":`...)
	b = strconv.AppendInt(b, s.Total, 10)
	if t.From != "" {
		b = append(b, `,"previousStatus":`...)
		b = appendString(b, string(t.From))
	}
	b = append(b, `},"timestamp":`...)
	b = appendString(b, ts)
	b = append(b, `},"id":`...)
	b = appendString(b, hyphenless(id))
	b = append(b, `,"version":1,"name":`...)
	b = appendString(b, t.AccelByte)
	b = append(b, `,"namespace":`...)
	b = appendString(b, cfg.Namespace)
	b = append(b, `,"parentNamespace":`...)
	b = appendString(b, cfg.ParentNamespace)
	b = append(b, `,"timestamp":`...)
	b = appendString(b, ts)
	b = append(b, `,"clientId":`...)
	b = appendString(b, cfg.ClientID)
	b = append(b, `,"userId":`...)
	b = appendString(b, cfg.UserID)
	b = append(b, `,"traceId":`...)
	b = appendString(b, hyphenless(corr))
	b = append(b, `,"sessionId":""}`...)
	return b
}

// commandBody is the BookWorm command message object: the C# record's
// fields in camelCase and positional order, then IntegrationEvent's id and
// creationDate.
func commandBody(cfg OutboundConfig, s State, command, id string, at time.Time) ([]byte, error) {
	b := make([]byte, 0, 320)
	b = append(b, '{')
	switch command {
	case CommandPlaceOrder: // BasketId, FullName, Email, OrderId, TotalMoney
		b = appendKeyString(b, "basketId", s.BasketID, false)
		b = appendKeyNullable(b, "fullName", s.FullName)
		b = appendKeyNullable(b, "email", s.Email)
		b = appendKeyString(b, "orderId", s.OrderID, true)
	case CommandDeleteBasketComplete: // OrderId, TotalMoney
		b = appendKeyString(b, "orderId", s.OrderID, false)
	case CommandDeleteBasketFailed: // BasketId, Email, OrderId, TotalMoney
		b = appendKeyString(b, "basketId", s.BasketID, false)
		b = appendKeyNullable(b, "email", s.Email)
		b = appendKeyString(b, "orderId", s.OrderID, true)
	case CommandCompleteOrder, CommandCancelOrder: // OrderId, FullName, Email, TotalMoney
		b = appendKeyString(b, "orderId", s.OrderID, false)
		b = appendKeyNullable(b, "fullName", s.FullName)
		b = appendKeyNullable(b, "email", s.Email)
	default:
		return nil, fmt.Errorf("unknown command %q", command)
	}
	b = append(b, `,"totalMoney":`...)
	if cfg.DecimalsAsStrings {
		b = append(b, '"')
		b = appendMinor(b, s.Total, cfg.Currency.Decimals)
		b = append(b, '"')
	} else {
		b = appendMinor(b, s.Total, cfg.Currency.Decimals) // exact decimal text is a valid JSON number
	}
	b = appendKeyString(b, "id", id, true)
	b = append(b, `,"creationDate":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"', '}'), nil
}

func appendKeyString(b []byte, key, v string, comma bool) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendKeyNullable(b []byte, key string, v *string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if v == nil {
		return append(b, "null"...)
	}
	return appendString(b, *v)
}
