package codec

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// The outbound bodies are written by hand: encoding/json would escape
// '\b' and '\f' differently and '<', '>' and '&' unless told not to, so
// the bytes would change, and it costs more (BenchmarkBodies).

// RenderBodies sets the Body of each message from its fields. cfg is the
// configuration Intents checked.
func RenderBodies(cfg domain.OutboundConfig, msgs []domain.Outbound) error {
	for i := range msgs {
		b, err := Body(cfg, msgs[i])
		if err != nil {
			return err
		}
		msgs[i].Body = b
	}
	return nil
}

// Body renders o's body: the AccelByte envelope or the BookWorm command
// message object.
func Body(cfg domain.OutboundConfig, o domain.Outbound) ([]byte, error) {
	switch o.Kind {
	case domain.KindAccelByte:
		return accelByteBody(cfg, &o), nil
	case domain.KindBookWorm:
		return commandBody(cfg, &o)
	}
	return nil, fmt.Errorf("render %s: unknown outbound kind %q", o.Name, o.Kind)
}

// accelByteBody is the AccelByte envelope (AsyncAPI "order service"):
// payload.order plus the event fields.
func accelByteBody(cfg domain.OutboundConfig, o *domain.Outbound) []byte {
	ts := o.Time.Truncate(time.Second).Format(time.RFC3339) // AccelByte's eventstream SDK: second precision
	b := make([]byte, 0, 768)
	b = append(b, `{"payload":{"order":`...)
	b = appendAccelByteOrder(b, cfg, o)
	b = append(b, `,"timestamp":`...)
	b = appendString(b, ts)
	b = append(b, `},"id":`...)
	b = appendString(b, hyphenless(o.MessageID))
	b = append(b, `,"version":1,"name":`...)
	b = appendString(b, o.Name)
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
	b = appendString(b, hyphenless(o.CorrelationID))
	return append(b, `,"sessionId":""}`...)
}

// appendAccelByteOrder writes payload.order.
func appendAccelByteOrder(b []byte, cfg domain.OutboundConfig, o *domain.Outbound) []byte {
	b = append(b, `{"orderNo":`...)
	b = appendString(b, o.OrderID)
	b = append(b, `,"namespace":`...)
	b = appendString(b, cfg.Namespace)
	if o.Order.BasketID != "" { // BookWorm's basket id is the buyer id: the order owner
		b = append(b, `,"userId":`...)
		b = appendString(b, o.Order.BasketID)
	}
	b = append(b, `,"sandbox":false,"quantity":1,"price":`...)
	b = strconv.AppendInt(b, o.Order.Total, 10)
	b = append(b, `,"discountedPrice":`...)
	b = strconv.AppendInt(b, o.Order.Total, 10)
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
	b = appendString(b, string(o.To))
	b = append(b, `,"statusReason":`...)
	b = appendString(b, o.StatusReason)
	b = append(b, `,"actualPaid":`...)
	b = strconv.AppendInt(b, o.Order.Total, 10)
	if o.From != "" {
		b = append(b, `,"previousStatus":`...)
		b = appendString(b, string(o.From))
	}
	return append(b, '}')
}

// commandBody is the BookWorm command message object: the C# record's
// fields in camelCase and positional order, then IntegrationEvent's id and
// creationDate.
func commandBody(cfg domain.OutboundConfig, o *domain.Outbound) ([]byte, error) {
	ord := &o.Order
	b := make([]byte, 0, 320)
	b = append(b, '{')
	switch o.Name {
	case domain.CommandPlaceOrder: // BasketId, FullName, Email, OrderId, TotalMoney
		b = appendKeyString(b, "basketId", ord.BasketID, false)
		b = appendKeyNullable(b, "fullName", ord.FullName)
		b = appendKeyNullable(b, "email", ord.Email)
		b = appendKeyString(b, "orderId", o.OrderID, true)
	case domain.CommandDeleteBasketComplete: // OrderId, TotalMoney
		b = appendKeyString(b, "orderId", o.OrderID, false)
	case domain.CommandDeleteBasketFailed: // BasketId, Email, OrderId, TotalMoney
		b = appendKeyString(b, "basketId", ord.BasketID, false)
		b = appendKeyNullable(b, "email", ord.Email)
		b = appendKeyString(b, "orderId", o.OrderID, true)
	case domain.CommandCompleteOrder, domain.CommandCancelOrder: // OrderId, FullName, Email, TotalMoney
		b = appendKeyString(b, "orderId", o.OrderID, false)
		b = appendKeyNullable(b, "fullName", ord.FullName)
		b = appendKeyNullable(b, "email", ord.Email)
	default:
		return nil, fmt.Errorf("render: unknown command %q", o.Name)
	}
	b = append(b, `,"totalMoney":`...)
	if cfg.DecimalsAsStrings {
		b = append(b, '"')
		b = domain.AppendMinor(b, ord.Total, cfg.Currency.Decimals)
		b = append(b, '"')
	} else {
		b = domain.AppendMinor(b, ord.Total, cfg.Currency.Decimals) // exact decimal text is a valid JSON number
	}
	b = appendKeyString(b, "id", o.MessageID, true)
	b = append(b, `,"creationDate":"`...)
	b = o.Time.AppendFormat(b, time.RFC3339Nano)
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

// hyphenless drops the hyphens of a UUID: AccelByte writes ids as 32 hex.
func hyphenless(id string) string { return strings.ReplaceAll(id, "-", "") }
