package rabbitmq

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/url"
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
	var mt string
	if d.ContentType != "" {
		var err error
		if mt, err = mediaType(d.ContentType); err != nil {
			return m, err
		}
	}
	if !utf8.Valid(d.Body) {
		return m, fmt.Errorf("%w: body is not valid UTF-8", ErrMalformed)
	}
	var (
		fields []envField
		binary bool
	)
	switch {
	case mt == domain.ContentTypeMassTransit:
		m.Envelope, fields = domain.EnvelopeMassTransit, mtFields
	case mt == domain.ContentTypeCloudEvents:
		m.Envelope, fields = domain.EnvelopeCloudEvents, ceFields
	case mt == contentTypeCloudEventsBatch:
		return m, fmt.Errorf("%w: cloudevent batch (%s) not accepted: send one event per message, "+
			"as structured %s or in binary mode", ErrMalformed, mt, domain.ContentTypeCloudEvents)
	case strings.HasPrefix(mt, contentTypeCloudEventsPrefix):
		return m, fmt.Errorf("%w: cloudevent format %q not supported: only the JSON format (%s)",
			ErrMalformed, mt, domain.ContentTypeCloudEvents)
	case hasBinaryAttributes(d.Headers):
		// AMQP binding §3: any other content type with cloudEvents
		// application properties is binary mode; the body is the data.
		if mt != "" && !jsonMediaType(mt) {
			return m, fmt.Errorf("%w: binary-mode cloudevent: datacontenttype %q is not JSON, the only data the ledger reads",
				ErrMalformed, mt)
		}
		m.Envelope, binary = domain.EnvelopeCloudEvents, true
	case mt == domain.ContentTypeJSON:
		m.Envelope = domain.EnvelopeBare
	case mt == "":
		return m, fmt.Errorf("%w: no content type", ErrMalformed)
	default:
		return m, fmt.Errorf("%w: content type %q not supported", ErrMalformed, mt)
	}
	var (
		sc  scanned
		err error
	)
	switch {
	case binary:
		if err = checkJSON(d.Body, maxDepth); err == nil {
			err = decodeBinaryCloudEvent(d, mt, &m)
		} else {
			err = fmt.Errorf("%w: binary-mode cloudevent data: %w", ErrMalformed, err)
		}
	case m.Envelope == domain.EnvelopeCloudEvents:
		if err = scanCloudEvent(d.Body, maxDepth, fields, &sc); err == nil {
			err = decodeCloudEvent(&sc, maxDepth, &m)
		} else {
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	default:
		if err = scanJSON(d.Body, maxDepth, fields, &sc); err != nil {
			return m, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if m.Envelope == domain.EnvelopeMassTransit {
			err = decodeMassTransit(&sc, &m)
		} else {
			err = decodeBare(d, &m)
		}
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

// CloudEvents media types besides domain.ContentTypeCloudEvents.
const (
	contentTypeCloudEventsPrefix = "application/cloudevents"
	contentTypeCloudEventsBatch  = "application/cloudevents-batch+json"
)

// The CloudEvents members the decoder reads.
const (
	ceSpecVersion = iota
	ceID
	ceSource
	ceType
	ceTime
	ceSubject
	ceDataSchema
	ceDataContentType
	ceData
	ceDataBase64
	ceCorrelationID
	ceTraceID
	ceConversationID
	ceInitiatorID
)

// ceNames are the attribute names of those members (data and data_base64
// are no attributes and are not read from binary-mode properties).
var ceNames = [...]string{
	ceSpecVersion:     "specversion",
	ceID:              "id",
	ceSource:          "source",
	ceType:            "type",
	ceTime:            "time",
	ceSubject:         "subject",
	ceDataSchema:      "dataschema",
	ceDataContentType: "datacontenttype",
	ceData:            "data",
	ceDataBase64:      "data_base64",
	ceCorrelationID:   "correlationid",
	ceTraceID:         "traceid",
	ceConversationID:  "conversationid",
	ceInitiatorID:     "initiatorid",
}

var ceFields = func() []envField {
	f := make([]envField, len(ceNames))
	for i, n := range ceNames {
		f[i] = envField{[]byte(n), fieldString}
	}
	f[ceData].kind, f[ceDataBase64].kind = fieldRaw, fieldRaw
	return f
}()

// ceAttrs are the attributes the ledger reads, from either content mode.
type ceAttrs struct {
	str     [len(ceNames)]string
	set     [len(ceNames)]bool
	time    time.Time // binary mode, an AMQP timestamp
	hasTime bool
}

func (a *ceAttrs) put(i int, v string) { a.str[i], a.set[i] = v, true }

func decodeCloudEvent(sc *scanned, maxDepth int, m *Message) error {
	switch {
	case sc.badName != "":
		return fmt.Errorf("%w: cloudevent member %q: attribute names are lower-case letters and digits only (CloudEvents 1.0)",
			ErrMalformed, sc.badName)
	case sc.wrongType != "":
		return fmt.Errorf("%w: cloudevent attribute %s must be a JSON string", ErrMalformed, sc.wrongType)
	case sc.badValue != "":
		return fmt.Errorf("%w: cloudevent attribute %s holds an object or an array; attribute values are strings, numbers or booleans",
			ErrMalformed, sc.badValue)
	}
	var a ceAttrs
	for i := range ceNames {
		if i != ceData && i != ceDataBase64 && sc.val[i] != nil {
			a.put(i, sc.str(i))
		}
	}
	if err := checkCloudEvent(&a, m); err != nil {
		return err
	}
	data, b64 := sc.val[ceData], sc.val[ceDataBase64]
	if string(b64) == "null" {
		b64 = nil // JSON format §2.2: null is unset
	}
	switch {
	case data != nil && b64 != nil:
		return fmt.Errorf("%w: cloudevent with both data and data_base64", ErrMalformed)
	case b64 != nil:
		return setBase64Data(m, b64, maxDepth)
	}
	return setInner(m, data, "cloudevent data")
}

// setBase64Data decodes data_base64 (JSON format §3.1.2), which must hold
// a JSON object like data.
func setBase64Data(m *Message, quoted []byte, maxDepth int) error {
	if len(quoted) == 0 || quoted[0] != '"' {
		return fmt.Errorf("%w: cloudevent data_base64 must be a JSON string", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(string(unquoted(quoted)))
	if err != nil {
		return fmt.Errorf("%w: cloudevent data_base64 is not base64: %w", ErrMalformed, err)
	}
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: cloudevent data_base64 does not decode to UTF-8 JSON", ErrMalformed)
	}
	if err := checkJSON(raw, maxDepth); err != nil {
		return fmt.Errorf("%w: cloudevent data_base64: %w", ErrMalformed, err)
	}
	return setInner(m, raw, "cloudevent data_base64")
}

// Binary-mode application property prefixes: the AMQP binding's
// "cloudEvents:" and "cloudEvents_", which clients that allow no colon in
// a property name use (JMS, for one).
const (
	ceHeaderPrefix    = "cloudEvents:"
	ceHeaderPrefixAlt = "cloudEvents_"
)

func ceHeaderName(k string) (string, bool) {
	if n, ok := strings.CutPrefix(k, ceHeaderPrefix); ok {
		return n, true
	}
	return strings.CutPrefix(k, ceHeaderPrefixAlt)
}

func hasBinaryAttributes(h map[string]any) bool {
	for k := range h {
		if _, ok := ceHeaderName(k); ok {
			return true
		}
	}
	return false
}

// decodeBinaryCloudEvent reads the attributes from the application
// properties (AMQP binding §3.1.3) and takes the body, already checked, as
// the data; the content type is datacontenttype (§3.1.1).
func decodeBinaryCloudEvent(d Delivery, mt string, m *Message) error {
	var a ceAttrs
	seen := map[string]string{} // attribute -> the property it came from
	for k, v := range d.Headers {
		name, ok := ceHeaderName(k)
		if !ok {
			continue
		}
		if !attributeName([]byte(name)) || name == "data" {
			return fmt.Errorf("%w: binary-mode cloudevent property %q: attribute names are lower-case letters and digits only (CloudEvents 1.0)",
				ErrMalformed, k)
		}
		i := ceIndex(name)
		if v == nil || i < 0 {
			if err := checkExtensionValue(k, v); err != nil {
				return err
			}
			continue // null is unset; other extensions are not read
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		case time.Time:
			if i != ceTime {
				return fmt.Errorf("%w: binary-mode cloudevent property %s must be a string", ErrMalformed, k)
			}
			a.time, a.hasTime = x.UTC(), true
			s = a.time.Format(time.RFC3339Nano) // its canonical string, to compare with the other prefix's
		default:
			return fmt.Errorf("%w: binary-mode cloudevent property %s must be a string, not %T", ErrMalformed, k, v)
		}
		if prev, dup := seen[name]; dup && a.str[i] != s {
			return fmt.Errorf("%w: binary-mode cloudevent properties %s and %s differ", ErrMalformed, prev, k)
		}
		seen[name] = k
		a.put(i, s)
	}
	if a.set[ceDataContentType] {
		// §3.1.3: datacontenttype travels as the content-type property only.
		if dct, err := mediaType(a.str[ceDataContentType]); err != nil || (mt != "" && dct != mt) {
			return fmt.Errorf("%w: binary-mode cloudevent property %s %q disagrees with content type %q",
				ErrMalformed, seen["datacontenttype"], a.str[ceDataContentType], mt)
		}
	}
	if err := checkCloudEvent(&a, m); err != nil {
		return fmt.Errorf("%w (binary mode)", err)
	}
	return setInner(m, d.Body, "binary-mode cloudevent data (the body)")
}

func ceIndex(name string) int {
	for i, n := range ceNames {
		if n == name && i != ceData && i != ceDataBase64 {
			return i
		}
	}
	return -1
}

// checkExtensionValue: an attribute the ledger does not read must still
// have a CloudEvents type (AMQP binding §3.1.3.2): no table, no array.
func checkExtensionValue(k string, v any) error {
	switch v.(type) {
	case map[string]any, []any:
		return fmt.Errorf("%w: binary-mode cloudevent property %s holds a table or an array; attribute values are strings, numbers, booleans, binary or timestamps",
			ErrMalformed, k)
	}
	return nil
}

// checkCloudEvent validates the attributes as CloudEvents 1.0 requires
// (REQUIRED and OPTIONAL attributes, type system) and sets the message's
// identity, correlation, time and type from them.
func checkCloudEvent(a *ceAttrs, m *Message) error {
	for _, i := range []int{ceSpecVersion, ceID, ceSource, ceType} {
		if a.str[i] == "" {
			return fmt.Errorf("%w: cloudevent without required attribute %s", ErrMalformed, ceNames[i])
		}
	}
	if v := a.str[ceSpecVersion]; v != "1.0" {
		return fmt.Errorf("%w: cloudevent specversion %q, want 1.0", ErrMalformed, v)
	}
	for i, v := range a.str {
		if a.set[i] && !ceString(v) {
			return fmt.Errorf("%w: cloudevent attribute %s holds a control character", ErrMalformed, ceNames[i])
		}
	}
	for _, i := range []int{ceSubject, ceDataSchema} {
		if a.set[i] && a.str[i] == "" {
			return fmt.Errorf("%w: cloudevent attribute %s is empty; when present it must not be", ErrMalformed, ceNames[i])
		}
	}
	if !uriReference(a.str[ceSource]) {
		return fmt.Errorf("%w: cloudevent source %q is not a URI-reference", ErrMalformed, a.str[ceSource])
	}
	if a.set[ceDataSchema] {
		if u, err := url.Parse(a.str[ceDataSchema]); err != nil || !u.IsAbs() {
			return fmt.Errorf("%w: cloudevent dataschema %q is not an absolute URI", ErrMalformed, a.str[ceDataSchema])
		}
	}
	if dct := a.str[ceDataContentType]; dct != "" {
		ct, err := mediaType(dct)
		if err != nil || !jsonMediaType(ct) {
			return fmt.Errorf("%w: cloudevent datacontenttype %q is not JSON, the only data the ledger reads", ErrMalformed, dct)
		}
	}
	if a.hasTime {
		m.SentAt = a.time
	} else if v := a.str[ceTime]; v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("%w: cloudevent time %q is not an RFC 3339 timestamp", ErrMalformed, v)
		}
		m.SentAt = t.UTC()
	}
	corr := a.str[ceCorrelationID]
	if corr == "" {
		corr = a.str[ceTraceID]
	}
	setIDs(m, a.str[ceID], corr, a.str[ceConversationID], a.str[ceInitiatorID])
	ns, name, err := typeFromName(a.str[ceType])
	if err != nil {
		return err
	}
	m.Namespace, m.Type = ns, name
	return nil
}

// uriReference checks that s uses only the characters RFC 3986 allows in
// a URI-reference (unreserved, reserved, percent-encoded octets); the
// grammar beyond that is the producer's.
func uriReference(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0:
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// ceString: CloudEvents strings exclude the control characters U+0000-U+001F
// and U+007F-U+009F.
func ceString(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return false
		}
	}
	return true
}

// jsonMediaType: a media type declaring JSON, */json or */*+json (JSON
// format §3.1.1).
func jsonMediaType(mt string) bool {
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
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
