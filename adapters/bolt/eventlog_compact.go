package bolt

import (
	"github.com/bookworm-ledger/ledger/domain/codec"
)

// Record format version 2 keeps the JSON of a fact and of its metadata in
// compact forms, read back as the very bytes appended (a 1M-fact log took
// 1,045 MB as JSON; replay decodes the compact fact directly):
//
//	[0:33]   as version 1 (version 2)
//	uvarint length + bytes of stream, type
//	form byte + uvarint length + bytes of data: formRaw, or formFact
//	  (codec.CompactFact, kept only when its JSON is the data byte for byte)
//	form byte + uvarint length + bytes of metadata: formRaw, or formPacked
//	  (packJSON)
const (
	recordVersion2 = 2
	formRaw        = 0
	formFact       = 1
	formPacked     = 2
)

// Tokens of packJSON. JSON text never holds these bytes raw (control
// characters in strings are escaped); input that does is kept raw.
const (
	tokUUID   = 0x01 // + 16 bytes: a quoted lower-case UUID
	tokRepeat = 0x02 // + 1 byte: the n-th UUID of this value again
	tokWord   = 0x03 // + 1 byte: packWords[n]
)

// packWords are the stored metadata's keys and usual values, longest
// first where one starts another.
var packWords = [...]string{
	`{"$correlationId":`, `,"correlationId":`, `,"$causationId":`, `,"messageId":`, `,"conversationId":`,
	`,"envelope":"masstransit"`, `,"envelope":"cloudevents"`, `,"envelope":"bare"`, `,"envelope":"ledger"`, `,"envelope":`,
	`,"exchange":"BookWorm.Contracts:`, `,"exchange":"OrderLedger.Contracts:`, `,"exchange":`,
	`,"receivedAt":"`, `,"redelivered":true`, `,"origin":"ledger"`, `,"origin":`,
	`IntegrationEvent"`,
}

// packJSON appends a packed form of src to dst: quoted UUIDs as 16 bytes
// (2 when repeated) and packWords as 2. False when src holds a token byte.
func packJSON(dst, src []byte) ([]byte, bool) {
	var seen [][16]byte
	for i := 0; i < len(src); {
		c := src[i]
		if c <= tokWord {
			return dst, false
		}
		if c == '"' && i+38 <= len(src) && src[i+37] == '"' {
			if id, ok := parseUUID(string(src[i+1 : i+37])); ok {
				dst = packUUID(dst, &seen, id)
				i += 38
				continue
			}
		}
		if c == '{' || c == ',' || c == 'I' {
			if w := matchWord(src[i:]); w >= 0 {
				dst = append(dst, tokWord, byte(w))
				i += len(packWords[w])
				continue
			}
		}
		dst = append(dst, c)
		i++
	}
	return dst, true
}

func packUUID(dst []byte, seen *[][16]byte, id [16]byte) []byte {
	for k, s := range *seen {
		if s == id {
			return append(dst, tokRepeat, byte(k))
		}
	}
	if len(*seen) < 255 { // past 255 a repeat cannot name it; unpackJSON agrees
		*seen = append(*seen, id)
	}
	dst = append(dst, tokUUID)
	return append(dst, id[:]...)
}

func matchWord(b []byte) int {
	for w, s := range packWords {
		if len(b) >= len(s) && string(b[:len(s)]) == s {
			return w
		}
	}
	return -1
}

// unpackJSON appends what packJSON was given to dst.
func unpackJSON(dst, src []byte) ([]byte, error) {
	var seen [][16]byte
	for i := 0; i < len(src); {
		c := src[i]
		switch c {
		case tokUUID:
			if i+17 > len(src) {
				return dst, errCorrupt
			}
			id := [16]byte(src[i+1 : i+17])
			if len(seen) < 255 {
				seen = append(seen, id)
			}
			dst = appendQuotedUUID(dst, id)
			i += 17
		case tokRepeat:
			if i+2 > len(src) || int(src[i+1]) >= len(seen) {
				return dst, errCorrupt
			}
			dst = appendQuotedUUID(dst, seen[src[i+1]])
			i += 2
		case tokWord:
			if i+2 > len(src) || int(src[i+1]) >= len(packWords) {
				return dst, errCorrupt
			}
			dst = append(dst, packWords[src[i+1]]...)
			i += 2
		default:
			j := i + 1
			for j < len(src) && src[j] > tokWord {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
		}
	}
	return dst, nil
}

func appendQuotedUUID(dst []byte, id [16]byte) []byte {
	var buf [36]byte
	formatUUID(&buf, id)
	dst = append(dst, '"')
	dst = append(dst, buf[:]...)
	return append(dst, '"')
}

// compactData returns the stored form of an event's data.
func compactData(typ string, data []byte) (byte, []byte) {
	if c, ok := codec.CompactFact(typ, data); ok {
		return formFact, c
	}
	return formRaw, data
}

// compactMeta returns the stored form of an event's metadata.
func compactMeta(meta []byte) (byte, []byte) {
	if len(meta) == 0 {
		return formRaw, meta
	}
	if p, ok := packJSON(make([]byte, 0, len(meta)/2), meta); ok && len(p) < len(meta) {
		return formPacked, p
	}
	return formRaw, meta
}

// formField reads a form byte and the field after it.
func formField(b []byte, off int) (byte, []byte, int, error) {
	if off >= len(b) {
		return 0, nil, 0, errCorrupt
	}
	f, next, err := field(b, off+1)
	return b[off], f, next, err
}
