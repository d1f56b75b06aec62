package rabbitmq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Content types recognised on the wire.
const (
	ContentTypeMassTransit = "application/vnd.masstransit+json"
	ContentTypeCloudEvents = "application/cloudevents+json"
	ContentTypeJSON        = "application/json"
)

// Contract namespaces.
const (
	NamespaceBookWorm = "BookWorm.Contracts"
	NamespaceLedger   = "OrderLedger.Contracts"
)

// EnvelopeKind says how an inbound message was wrapped.
type EnvelopeKind string

// Envelope kinds.
const (
	EnvelopeMassTransit EnvelopeKind = "masstransit"
	EnvelopeCloudEvents EnvelopeKind = "cloudevents"
	EnvelopeBare        EnvelopeKind = "bare"
)

// Decoding errors. ErrMalformed sends the message to `<queue>_error`,
// ErrUnknownType to `<queue>_skipped`; the handler sees neither.
var (
	ErrMalformed   = errors.New("malformed message")
	ErrUnknownType = errors.New("unknown message type")
	// ErrNoIdentity: no envelope id and no AMQP message_id, so the message
	// cannot be de-duplicated. It matches ErrMalformed too.
	ErrNoIdentity = fmt.Errorf("%w: no message identity", ErrMalformed)
)

type knownType struct{ namespace, name string }

// knownTypes: the BookWorm events and the ledger's payment facts (DESIGN §2).
var knownTypes = []knownType{
	{NamespaceBookWorm, "UserCheckedOutIntegrationEvent"},
	{NamespaceBookWorm, "BasketDeletedCompleteIntegrationEvent"},
	{NamespaceBookWorm, "BasketDeletedFailedIntegrationEvent"},
	{NamespaceBookWorm, "OrderStatusChangedToCompleteIntegrationEvent"},
	{NamespaceBookWorm, "OrderStatusChangedToCancelIntegrationEvent"},
	{NamespaceLedger, "PaymentRefundedIntegrationEvent"},
	{NamespaceLedger, "PaymentRefundFailedIntegrationEvent"},
	{NamespaceLedger, "PaymentChargebackIntegrationEvent"},
	{NamespaceLedger, "PaymentChargebackReversedIntegrationEvent"},
	{NamespaceLedger, "OrderFulfillFailedIntegrationEvent"},
	{NamespaceLedger, "OrderRefundRequestedIntegrationEvent"},
}

var knownByName = func() map[string]string {
	m := make(map[string]string, len(knownTypes))
	for _, t := range knownTypes {
		m[t.name] = t.namespace
	}
	return m
}()

// KnownTypes lists the inbound message types the adapter accepts, as
// "<Namespace>:<Type>".
func KnownTypes() []string {
	out := make([]string, len(knownTypes))
	for i, t := range knownTypes {
		out[i] = t.namespace + ":" + t.name
	}
	return out
}

func knownNamespace(ns string) bool { return ns == NamespaceBookWorm || ns == NamespaceLedger }

// resolveType accepts a type name under either known namespace (a sender
// may file a payment fact under BookWorm's namespace); anything else is
// ErrUnknownType.
func resolveType(ns, name string) (string, string, error) {
	if _, ok := knownByName[name]; !ok || !knownNamespace(ns) {
		return "", "", fmt.Errorf("%w: %q", ErrUnknownType, joinType(ns, name))
	}
	return ns, name, nil
}

func joinType(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + ":" + name
}

// Delivery is what DecodeEnvelope needs from an AMQP delivery.
type Delivery struct {
	ContentType   string
	Type          string // AMQP type property
	MessageID     string // AMQP message_id
	CorrelationID string // AMQP correlation_id
	Exchange      string
	RoutingKey    string
	Headers       map[string]any
	Timestamp     time.Time
	Redelivered   bool
	Body          []byte
}

// Message is a decoded inbound message, handed to the BatchHandler.
type Message struct {
	MessageID      string // identity for de-duplication
	CorrelationID  string
	ConversationID string
	InitiatorID    string
	Type           string // bare type name, e.g. "UserCheckedOutIntegrationEvent"
	Namespace      string // e.g. "BookWorm.Contracts"
	Envelope       EnvelopeKind
	Exchange       string
	RoutingKey     string
	ContentType    string
	Body           []byte    // the inner message JSON object
	SentAt         time.Time // zero if unknown
	Redelivered    bool
	DeliveryCount  int // 1 on first delivery; from x-delivery-count on quorum queues
	Headers        map[string]any
}

// Decoder decodes envelopes with explicit limits.
type Decoder struct {
	MaxBodyBytes int // default DefaultMaxBodyBytes
	MaxDepth     int // default DefaultMaxDepth
}

// DecodeEnvelope decodes d with the default limits.
func DecodeEnvelope(d Delivery) (Message, error) {
	return Decoder{}.Decode(d)
}

// Decode recognises the envelope by content type and extracts identity,
// type and the inner message. Errors match ErrMalformed or ErrUnknownType.
func (dec Decoder) Decode(d Delivery) (Message, error) {
	maxBody, maxDepth := dec.MaxBodyBytes, dec.MaxDepth
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	m := Message{
		CorrelationID: d.CorrelationID,
		Exchange:      d.Exchange,
		RoutingKey:    d.RoutingKey,
		ContentType:   d.ContentType,
		Redelivered:   d.Redelivered,
		DeliveryCount: deliveryCount(d),
		Headers:       d.Headers,
	}
	if !d.Timestamp.IsZero() {
		m.SentAt = d.Timestamp.UTC()
	}
	if len(d.Body) > maxBody {
		return m, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMalformed, len(d.Body), maxBody)
	}
	mt, params, err := mime.ParseMediaType(d.ContentType)
	if err != nil {
		return m, fmt.Errorf("%w: content type %q", ErrMalformed, d.ContentType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return m, fmt.Errorf("%w: charset %q", ErrMalformed, cs)
	}
	if !utf8.Valid(d.Body) {
		return m, fmt.Errorf("%w: body is not valid UTF-8", ErrMalformed)
	}
	if err := checkJSON(d.Body, maxDepth); err != nil {
		return m, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch mt {
	case ContentTypeMassTransit:
		m.Envelope = EnvelopeMassTransit
		err = decodeMassTransit(d, &m)
	case ContentTypeCloudEvents:
		m.Envelope = EnvelopeCloudEvents
		err = decodeCloudEvent(d, &m)
	case ContentTypeJSON:
		m.Envelope = EnvelopeBare
		err = decodeBare(d, &m)
	default:
		return m, fmt.Errorf("%w: content type %q not supported", ErrMalformed, mt)
	}
	if err != nil {
		return m, err
	}
	if m.MessageID == "" {
		m.MessageID = d.MessageID
	}
	if m.MessageID == "" {
		return m, ErrNoIdentity
	}
	return m, nil
}

// deliveryCount: quorum queues stamp x-delivery-count (previous failed
// deliveries); classic queues only say "redelivered".
func deliveryCount(d Delivery) int {
	if v, ok := d.Headers["x-delivery-count"]; ok {
		if n, ok := asInt(v); ok && n >= 0 && n < 1<<30 {
			return int(n) + 1
		}
	}
	if d.Redelivered {
		return 2
	}
	return 1
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

type mtEnvelope struct {
	MessageID      string          `json:"messageId"`
	CorrelationID  string          `json:"correlationId"`
	ConversationID string          `json:"conversationId"`
	InitiatorID    string          `json:"initiatorId"`
	MessageType    []string        `json:"messageType"`
	Message        json.RawMessage `json:"message"`
	SentTime       string          `json:"sentTime"`
}

func decodeMassTransit(d Delivery, m *Message) error {
	var env mtEnvelope
	if err := json.Unmarshal(d.Body, &env); err != nil {
		return fmt.Errorf("%w: masstransit envelope: %w", ErrMalformed, err)
	}
	if len(env.MessageType) == 0 {
		return fmt.Errorf("%w: masstransit envelope without messageType", ErrMalformed)
	}
	if err := setInner(m, env.Message, "message"); err != nil {
		return err
	}
	setIDs(m, env.MessageID, env.CorrelationID, env.ConversationID, env.InitiatorID)
	if err := setTime(m, env.SentTime, "sentTime"); err != nil {
		return err
	}
	ns, name, err := typeFromURNs(env.MessageType)
	if err != nil {
		return err
	}
	m.Namespace, m.Type = ns, name
	return nil
}

// typeFromURNs takes the first URN naming a known namespace.
func typeFromURNs(urns []string) (string, string, error) {
	for _, u := range urns {
		ns, name, ok := parseURN(u)
		if ok && knownNamespace(ns) {
			return resolveType(ns, name)
		}
	}
	return "", "", fmt.Errorf("%w: %q", ErrUnknownType, strings.Join(urns, ";"))
}

// parseURN splits "urn:message:Namespace:Type".
func parseURN(u string) (string, string, bool) {
	rest, ok := strings.CutPrefix(u, "urn:message:")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

type ceEnvelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      json.RawMessage `json:"data_base64"`
	CorrelationID   string          `json:"correlationid"`
	TraceID         string          `json:"traceid"`
	ConversationID  string          `json:"conversationid"`
	InitiatorID     string          `json:"initiatorid"`
}

func decodeCloudEvent(d Delivery, m *Message) error {
	var env ceEnvelope
	if err := json.Unmarshal(d.Body, &env); err != nil {
		return fmt.Errorf("%w: cloudevent: %w", ErrMalformed, err)
	}
	if env.SpecVersion != "1.0" {
		return fmt.Errorf("%w: cloudevent specversion %q, want 1.0", ErrMalformed, env.SpecVersion)
	}
	if len(env.DataBase64) > 0 {
		return fmt.Errorf("%w: cloudevent data_base64 is not supported", ErrMalformed)
	}
	if env.DataContentType != "" {
		ct, _, err := mime.ParseMediaType(env.DataContentType)
		if err != nil || (ct != ContentTypeJSON && !strings.HasSuffix(ct, "+json")) {
			return fmt.Errorf("%w: cloudevent datacontenttype %q", ErrMalformed, env.DataContentType)
		}
	}
	if err := setInner(m, env.Data, "data"); err != nil {
		return err
	}
	corr := env.CorrelationID
	if corr == "" {
		corr = env.TraceID
	}
	setIDs(m, env.ID, corr, env.ConversationID, env.InitiatorID)
	if err := setTime(m, env.Time, "time"); err != nil {
		return err
	}
	if env.Type == "" {
		return fmt.Errorf("%w: cloudevent without type", ErrMalformed)
	}
	ns, name, err := typeFromName(env.Type)
	if err != nil {
		return err
	}
	m.Namespace, m.Type = ns, name
	return nil
}

// typeFromName accepts "Type", "Namespace.Type", "Namespace:Type" and
// "urn:message:Namespace:Type".
func typeFromName(s string) (string, string, error) {
	if ns, name, ok := parseURN(s); ok {
		return resolveType(ns, name)
	}
	if i := strings.LastIndexAny(s, ".:"); i >= 0 {
		return resolveType(s[:i], s[i+1:])
	}
	ns, ok := knownByName[s]
	if !ok {
		return "", "", fmt.Errorf("%w: %q", ErrUnknownType, s)
	}
	return ns, s, nil
}

func decodeBare(d Delivery, m *Message) error {
	if err := setInner(m, d.Body, "body"); err != nil {
		return err
	}
	var (
		ns, name string
		err      error
	)
	switch {
	case d.Type != "":
		ns, name, err = typeFromName(d.Type)
	case headerString(d.Headers, "MT-MessageType") != "":
		// MassTransit's raw JSON serializer puts the URNs in a header.
		ns, name, err = typeFromURNs(strings.Split(headerString(d.Headers, "MT-MessageType"), ";"))
	case d.Exchange != "":
		i := strings.LastIndexByte(d.Exchange, ':')
		if i < 0 {
			return fmt.Errorf("%w: no type property and exchange %q names no type", ErrUnknownType, d.Exchange)
		}
		ns = d.Exchange[:i]
		for _, known := range []string{NamespaceBookWorm, NamespaceLedger} {
			// A deployment may prefix its exchange names ("eu.BookWorm.Contracts:T").
			if strings.HasSuffix(ns, "."+known) {
				ns = known
			}
		}
		ns, name, err = resolveType(ns, d.Exchange[i+1:])
	default:
		return fmt.Errorf("%w: no type property and no exchange", ErrUnknownType)
	}
	if err != nil {
		return err
	}
	m.Namespace, m.Type = ns, name
	return nil
}

func headerString(h map[string]any, k string) string {
	switch v := h[k].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func setInner(m *Message, raw json.RawMessage, field string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("%w: %s is missing or not a JSON object", ErrMalformed, field)
	}
	m.Body = append([]byte(nil), raw...)
	return nil
}

func setIDs(m *Message, id, corr, conv, init string) {
	m.MessageID = id
	if corr != "" {
		m.CorrelationID = corr
	}
	m.ConversationID = conv
	m.InitiatorID = init
}

func setTime(m *Message, s, field string) error {
	if s == "" {
		return nil
	}
	t, err := parseTime(s)
	if err != nil {
		return fmt.Errorf("%w: %s %q", ErrMalformed, field, s)
	}
	m.SentAt = t
	return nil
}

// parseTime reads RFC 3339 with any fraction; .NET writes unzoned UTC
// times for some DateTime kinds, read as UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t.UTC(), nil
	}
	t, err2 := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
	if err2 == nil {
		return t, nil
	}
	return time.Time{}, err
}

// checkJSON accepts exactly one JSON object, nested at most maxDepth deep,
// without duplicate keys at any level (compared case-insensitively, since
// MassTransit and encoding/json read names case-insensitively: two
// spellings of one field would be ambiguous). b must be valid UTF-8.
func checkJSON(b []byte, maxDepth int) error {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v) // for the position of the error
		return fmt.Errorf("invalid JSON: %w", err)
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("body is not a JSON object")
	}
	return checkStructure(trimmed, maxDepth)
}

// keySet holds an object's keys; a slice while small, a map when large
// (so a huge object cannot make the check quadratic).
type keySet struct {
	small []string
	big   map[string]struct{}
}

func (k *keySet) add(key string) bool {
	if k.big != nil {
		if _, ok := k.big[key]; ok {
			return false
		}
		k.big[key] = struct{}{}
		return true
	}
	for _, s := range k.small {
		if s == key {
			return false
		}
	}
	k.small = append(k.small, key)
	if len(k.small) > 16 {
		k.big = make(map[string]struct{}, 2*len(k.small))
		for _, s := range k.small {
			k.big[s] = struct{}{}
		}
		k.small = nil
	}
	return true
}

// checkStructure walks syntactically valid JSON (json.Valid passed) for
// depth and duplicate keys.
func checkStructure(b []byte, maxDepth int) error {
	type frame struct {
		object bool
		expKey bool
		keys   keySet
	}
	stack := make([]frame, 0, 8)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			j, esc := i+1, false
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
					esc = true
				}
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expKey {
				var key string
				if esc {
					if err := json.Unmarshal(b[i:j+1], &key); err != nil {
						return fmt.Errorf("invalid key: %w", err)
					}
				} else {
					key = string(b[i+1 : j])
				}
				if !stack[n-1].keys.add(strings.ToLower(key)) {
					return fmt.Errorf("duplicate key %q", key)
				}
				stack[n-1].expKey = false
			}
			i = j
		case '{', '[':
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			stack = append(stack, frame{object: c == '{', expKey: c == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expKey = true
			}
		}
	}
	return nil
}
