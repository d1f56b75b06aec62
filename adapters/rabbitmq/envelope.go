package rabbitmq

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bookworm-ledger/ledger/domain"
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

// knownByName maps each inbound type name to its namespace.
var knownByName = func() map[string]string {
	m := map[string]string{}
	for _, t := range domain.InboundTypes() {
		m[string(t)] = t.Namespace()
	}
	return m
}()

// KnownTypes lists the inbound message types the adapter accepts, as
// "<Namespace>:<Type>" (their exchange names).
func KnownTypes() []string {
	var out []string
	for _, t := range domain.InboundTypes() {
		out = append(out, domain.InboundExchange(t))
	}
	return out
}

func knownNamespace(ns string) bool {
	return ns == domain.NamespaceBookWorm || ns == domain.NamespaceLedger
}

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
	Namespace      string // domain.NamespaceBookWorm or domain.NamespaceLedger
	Envelope       string // domain.EnvelopeMassTransit, EnvelopeCloudEvents or EnvelopeBare
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
// type and the inner message, reading the body once. Errors match
// ErrMalformed or ErrUnknownType.
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
	mt, err := mediaType(d.ContentType)
	if err != nil {
		return m, err
	}
	if !utf8.Valid(d.Body) {
		return m, fmt.Errorf("%w: body is not valid UTF-8", ErrMalformed)
	}
	var fields []envField
	switch mt {
	case domain.ContentTypeMassTransit:
		m.Envelope, fields = domain.EnvelopeMassTransit, mtFields
	case domain.ContentTypeCloudEvents:
		m.Envelope, fields = domain.EnvelopeCloudEvents, ceFields
	case domain.ContentTypeJSON:
		m.Envelope = domain.EnvelopeBare
	default:
		return m, fmt.Errorf("%w: content type %q not supported", ErrMalformed, mt)
	}
	var sc scanned
	if err := scanJSON(d.Body, maxDepth, fields, &sc); err != nil {
		return m, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch m.Envelope {
	case domain.EnvelopeMassTransit:
		err = decodeMassTransit(&sc, &m)
	case domain.EnvelopeCloudEvents:
		err = decodeCloudEvent(&sc, &m)
	default:
		err = decodeBare(d, &m)
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

// mediaType is the content type without parameters; a charset other than
// UTF-8 is refused.
func mediaType(ct string) (string, error) {
	switch ct {
	case domain.ContentTypeMassTransit, domain.ContentTypeCloudEvents, domain.ContentTypeJSON:
		return ct, nil // what mime.ParseMediaType returns for them, without its allocations
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("%w: content type %q", ErrMalformed, ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return "", fmt.Errorf("%w: charset %q", ErrMalformed, cs)
	}
	return mt, nil
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

// The MassTransit envelope members the decoder reads.
const (
	mtMessageID = iota
	mtCorrelationID
	mtConversationID
	mtInitiatorID
	mtMessageType
	mtMessage
	mtSentTime
)

var mtFields = []envField{
	mtMessageID:      {[]byte("messageId"), fieldString},
	mtCorrelationID:  {[]byte("correlationId"), fieldString},
	mtConversationID: {[]byte("conversationId"), fieldString},
	mtInitiatorID:    {[]byte("initiatorId"), fieldString},
	mtMessageType:    {[]byte("messageType"), fieldStrings},
	mtMessage:        {[]byte("message"), fieldRaw},
	mtSentTime:       {[]byte("sentTime"), fieldString},
}

func decodeMassTransit(sc *scanned, m *Message) error {
	if sc.wrongType != "" {
		return fmt.Errorf("%w: masstransit envelope: %s has the wrong JSON type", ErrMalformed, sc.wrongType)
	}
	if len(sc.list) == 0 {
		return fmt.Errorf("%w: masstransit envelope without messageType", ErrMalformed)
	}
	if err := setInner(m, sc.val[mtMessage], "message"); err != nil {
		return err
	}
	setIDs(m, sc.str(mtMessageID), sc.str(mtCorrelationID), sc.str(mtConversationID), sc.str(mtInitiatorID))
	if err := setTime(m, sc.val[mtSentTime], "sentTime"); err != nil {
		return err
	}
	var one [1]string
	ns, name, err := typeFromURNs(urnsToResolve(one[:0], sc.list))
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

// urnsToResolve appends the quoted URNs to dst for typeFromURNs: only the
// one it would take when there is one, so the usual case makes one string.
func urnsToResolve(dst []string, list [][]byte) []string {
	for _, q := range list {
		if u := unquoted(q); knownURN(u) {
			return append(dst, string(u))
		}
	}
	for _, q := range list {
		dst = append(dst, string(unquoted(q)))
	}
	return dst
}

var (
	urnPrefix       = []byte("urn:message:")
	knownNamespaces = [][]byte{[]byte(domain.NamespaceBookWorm), []byte(domain.NamespaceLedger)}
)

// knownURN is parseURN's and knownNamespace's verdict on u, on bytes.
func knownURN(u []byte) bool {
	rest, ok := bytes.CutPrefix(u, urnPrefix)
	i := bytes.LastIndexByte(rest, ':')
	if !ok || i <= 0 || i == len(rest)-1 {
		return false
	}
	for _, ns := range knownNamespaces {
		if bytes.Equal(rest[:i], ns) {
			return true
		}
	}
	return false
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

// The CloudEvents members the decoder reads.
const (
	ceSpecVersion = iota
	ceID
	ceType
	ceTime
	ceDataContentType
	ceData
	ceDataBase64
	ceCorrelationID
	ceTraceID
	ceConversationID
	ceInitiatorID
)

var ceFields = []envField{
	ceSpecVersion:     {[]byte("specversion"), fieldString},
	ceID:              {[]byte("id"), fieldString},
	ceType:            {[]byte("type"), fieldString},
	ceTime:            {[]byte("time"), fieldString},
	ceDataContentType: {[]byte("datacontenttype"), fieldString},
	ceData:            {[]byte("data"), fieldRaw},
	ceDataBase64:      {[]byte("data_base64"), fieldRaw},
	ceCorrelationID:   {[]byte("correlationid"), fieldString},
	ceTraceID:         {[]byte("traceid"), fieldString},
	ceConversationID:  {[]byte("conversationid"), fieldString},
	ceInitiatorID:     {[]byte("initiatorid"), fieldString},
}

func decodeCloudEvent(sc *scanned, m *Message) error {
	if sc.wrongType != "" {
		return fmt.Errorf("%w: cloudevent: %s has the wrong JSON type", ErrMalformed, sc.wrongType)
	}
	if v := unquoted(sc.val[ceSpecVersion]); string(v) != "1.0" {
		return fmt.Errorf("%w: cloudevent specversion %q, want 1.0", ErrMalformed, v)
	}
	if len(sc.val[ceDataBase64]) > 0 {
		return fmt.Errorf("%w: cloudevent data_base64 is not supported", ErrMalformed)
	}
	if dct := sc.str(ceDataContentType); dct != "" {
		ct, _, err := mime.ParseMediaType(dct)
		if err != nil || (ct != domain.ContentTypeJSON && !strings.HasSuffix(ct, "+json")) {
			return fmt.Errorf("%w: cloudevent datacontenttype %q", ErrMalformed, dct)
		}
	}
	if err := setInner(m, sc.val[ceData], "data"); err != nil {
		return err
	}
	corr := sc.str(ceCorrelationID)
	if corr == "" {
		corr = sc.str(ceTraceID)
	}
	setIDs(m, sc.str(ceID), corr, sc.str(ceConversationID), sc.str(ceInitiatorID))
	if err := setTime(m, sc.val[ceTime], "time"); err != nil {
		return err
	}
	typ := sc.str(ceType)
	if typ == "" {
		return fmt.Errorf("%w: cloudevent without type", ErrMalformed)
	}
	ns, name, err := typeFromName(typ)
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
		ns, name, err = typeFromExchange(d.Exchange)
	default:
		return fmt.Errorf("%w: no type property and no exchange", ErrUnknownType)
	}
	if err != nil {
		return err
	}
	m.Namespace, m.Type = ns, name
	return nil
}

// typeFromExchange reads "<Namespace>:<Type>"; a deployment may prefix its
// exchange names ("eu.<Namespace>:<Type>").
func typeFromExchange(ex string) (string, string, error) {
	i := strings.LastIndexByte(ex, ':')
	if i < 0 {
		return "", "", fmt.Errorf("%w: no type property and exchange %q names no type", ErrUnknownType, ex)
	}
	ns := ex[:i]
	for _, known := range []string{domain.NamespaceBookWorm, domain.NamespaceLedger} {
		if strings.HasSuffix(ns, "."+known) {
			ns = known
		}
	}
	return resolveType(ns, ex[i+1:])
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

func setInner(m *Message, raw []byte, field string) error {
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

// setTime reads a quoted time member; absent or "" leaves SentAt as it is.
func setTime(m *Message, quoted []byte, field string) error {
	s := unquoted(quoted)
	if len(s) == 0 {
		return nil
	}
	t, err := domain.ParseTime(s)
	if err != nil {
		return fmt.Errorf("%w: %s %q", ErrMalformed, field, s)
	}
	m.SentAt = t
	return nil
}

// checkJSON accepts exactly one JSON object, nested at most maxDepth deep,
// without duplicate keys at any level (compared case-insensitively). b
// must be valid UTF-8.
func checkJSON(b []byte, maxDepth int) error { return scanJSON(b, maxDepth, nil, nil) }
