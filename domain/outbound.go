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

// Outbound is one message a transition asks to publish. Intents fills
// everything but Body, which the codec package renders from the fields
// (codec.RenderBodies) before the message reaches a publisher.
type Outbound struct {
	Kind       OutboundKind
	Name       string // "orderCreated" / "PlaceOrderCommand"
	MessageID  string // deterministic: MessageID(stream, revision, Kind+":"+Name)
	Exchange   string // AccelByteExchange | CommandExchange(Name)
	RoutingKey string // AccelByte: the event name; BookWorm: ""
	OrderID    string
	// The MassTransit ids a consumer of the causing message would send
	// with (SendContextExtensions.TransferConsumeContextHeaders):
	// CorrelationID is the causing message's correlation id, else the
	// order id (BookWorm's saga correlation), and also the AccelByte
	// traceId; ConversationID is the causing message's conversation (for
	// a placement time-out, the checkout's); InitiatorID is the causing
	// message's correlation id, else its message id.
	CorrelationID  string
	ConversationID string
	InitiatorID    string
	CausationID    string    // the causing fact's event id
	Time           time.Time // the causing fact's time, UTC

	// What the body says besides the fields above.
	Order        OrderSnapshot // the order after the transition
	From, To     Status        // AccelByte: previous status ("" for a new order) and status
	StatusReason string        // AccelByte statusReason

	Body []byte // AccelByte: the full envelope; BookWorm: the command message object (no transport envelope)
}

// OrderSnapshot is what an outbound message tells of its order.
type OrderSnapshot struct {
	BasketID        string // the buyer: BookWorm's basket id is its user id
	FullName, Email *string
	Total           int64 // minor units
}

// MessageID is the deterministic id of the message of the given kind caused
// by the event at revision of stream: a re-publish carries the same id.
func MessageID(stream string, revision uint64, kind string) string {
	return NameUUID("outbound", stream, strconv.FormatUint(revision, 10), kind)
}

// ErrNoOrder is returned by Intents for a state without an order.
var ErrNoOrder = errors.New("no order in state")

// UnbuildableError says one message of a transition can never be built
// (e.g. a total outside the AccelByte int32 price): the transition's other
// message is still built. It matches its cause (errors.Is(err,
// ErrAmountOverflow)). A publisher parks the message's lane of the order.
type UnbuildableError struct {
	OrderID   string
	Kind      OutboundKind
	Name      string // "orderCreated"
	MessageID string // the id it would have carried
	Err       error
}

func (e *UnbuildableError) Error() string {
	return fmt.Sprintf("%s %s %s cannot be built: %v", e.Kind, e.Name, e.MessageID, e.Err)
}

// Unwrap returns the cause.
func (e *UnbuildableError) Unwrap() error { return e.Err }

// Intents returns the messages transition t of the order in state s (the
// state after the event) asks to publish: the AccelByte event first, then
// the BookWorm command. Their Body is not rendered yet. cfg is checked here,
// so a bad setting fails before anything is sent. Errors are permanent. A
// message that cannot be built (a total outside int32 for AccelByte, an
// unknown command) comes back as an *UnbuildableError (two of them joined
// with errors.Join) beside the messages that could be built; any other
// error (no order, a bad cfg) fails the whole transition and returns none.
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
	corr, conv, initiator := propagated(s, t.Cause)
	base := Outbound{OrderID: s.OrderID, CorrelationID: corr, ConversationID: conv, InitiatorID: initiator,
		CausationID: t.Cause.ID, Time: t.Cause.Fact.At.UTC(),
		Order: OrderSnapshot{BasketID: s.BasketID, FullName: s.FullName, Email: s.Email, Total: s.Total},
		From:  t.From, To: t.To, StatusReason: t.Reason}
	out := make([]Outbound, 0, 2)
	var errs []error
	if t.AccelByte != "" {
		o := base
		o.Kind, o.Name = KindAccelByte, t.AccelByte
		o.MessageID = MessageID(stream, t.Cause.Revision, string(KindAccelByte)+":"+t.AccelByte)
		o.Exchange, o.RoutingKey = AccelByteExchange, t.AccelByte
		if s.Total < 0 || s.Total > math.MaxInt32 {
			errs = append(errs, &UnbuildableError{OrderID: o.OrderID, Kind: o.Kind, Name: o.Name, MessageID: o.MessageID,
				Err: fmt.Errorf("intents for %s: %w: total %d minor units outside the int32 AccelByte price range", stream, ErrAmountOverflow, s.Total)})
		} else {
			out = append(out, o)
		}
	}
	if t.Command != "" {
		o := base
		o.Kind, o.Name = KindBookWorm, t.Command
		o.MessageID = MessageID(stream, t.Cause.Revision, string(KindBookWorm)+":"+t.Command)
		o.Exchange = CommandExchange(t.Command)
		if !isCommand(t.Command) {
			errs = append(errs, &UnbuildableError{OrderID: o.OrderID, Kind: o.Kind, Name: o.Name, MessageID: o.MessageID,
				Err: fmt.Errorf("intents for %s: unknown command %q", stream, t.Command)})
		} else {
			out = append(out, o)
		}
	}
	switch len(errs) {
	case 0:
		return out, nil
	case 1:
		return out, errs[0]
	}
	return out, errors.Join(errs...)
}

// propagated returns the correlation, conversation and initiator ids of
// the messages cause leads to in state s. MassTransit's consumer rule:
// the conversation carries on, the initiator is the consumed message's
// correlation id if it has one, else none (MassTransit falls back to the
// request id, which BookWorm's events never carry; it never names the
// message id). Ids that are not UUIDs are dropped: MassTransit reads them
// as Guid.
func propagated(s State, cause Event) (corr, conv, initiator string) {
	own, hasOwn := CanonicalUUID(cause.CorrelationID)
	corr = s.OrderID // BookWorm's saga correlation
	if hasOwn {
		corr = own
	}
	conv = cause.Conversation()
	if cause.Fact.Type == FactPlacementTimedOut && s.ConversationID != "" {
		conv = s.ConversationID // a time-out continues the checkout's conversation
	}
	if hasOwn {
		initiator = own
	}
	return corr, conv, initiator
}

func isCommand(name string) bool {
	switch name {
	case CommandPlaceOrder, CommandDeleteBasketComplete, CommandDeleteBasketFailed, CommandCompleteOrder, CommandCancelOrder:
		return true
	}
	return false
}

// Refusal is one message a publisher could not get accepted. Permanent
// means retrying it the same way cannot succeed (returned as unroutable,
// the exchange is missing); otherwise (nacked) a later attempt may.
type Refusal struct {
	MessageID string
	Permanent bool
	Err       error
}

// RefusedError is a publisher's answer when the broker refused some of a
// call's messages: every message not listed was confirmed.
type RefusedError struct {
	Refusals []Refusal
}

func (e *RefusedError) Error() string {
	if len(e.Refusals) == 1 {
		return fmt.Sprintf("message %s refused: %v", e.Refusals[0].MessageID, e.Refusals[0].Err)
	}
	return fmt.Sprintf("%d messages refused, first %s: %v", len(e.Refusals), e.Refusals[0].MessageID, e.Refusals[0].Err)
}

// Unwrap lets errors.Is match the refusals' causes.
func (e *RefusedError) Unwrap() []error {
	errs := make([]error, 0, len(e.Refusals))
	for _, r := range e.Refusals {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errs
}
