package domain

import (
	"crypto/sha1"
	"strconv"
	"strings"
)

// namespaceLedger is the fixed name-space UUID of every identifier the
// ledger derives (UUID version 5 style). Never change it: stored event ids
// and published message ids depend on it.
var namespaceLedger = [16]byte{0x5b, 0x0d, 0x7e, 0x3a, 0x9c, 0x41, 0x4f, 0x1e, 0x8a, 0x27, 0x63, 0xd2, 0x1f, 0x90, 0xb4, 0x6c}

// NameUUID derives a deterministic UUID (version 5: SHA-1 over a fixed
// name space and the parts) in lower-case canonical form. Parts are
// length-prefixed, so ("ab","c") and ("a","bc") differ.
func NameUUID(parts ...string) string {
	h := sha1.New()
	h.Write(namespaceLedger[:])
	var num [20]byte
	for _, p := range parts {
		h.Write(strconv.AppendInt(num[:0], int64(len(p)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	sum[6] = sum[6]&0x0f | 0x50 // version 5
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	return formatUUID(sum[:16])
}

func formatUUID(b []byte) string {
	const hexd = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexd[b[i]>>4]
		out[j+1] = hexd[b[i]&0xf]
		j += 2
	}
	return string(out[:])
}

// CanonicalUUID returns b as a lower-case 8-4-4-4-12 UUID, and false when b
// is not a UUID in that form (either letter case).
func CanonicalUUID[T string | []byte](b T) (string, bool) {
	if len(b) != 36 {
		return "", false
	}
	upper := false
	for i := 0; i < 36; i++ {
		c := b[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
			continue
		}
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return "", false
		}
	}
	if !upper {
		return string(b), true
	}
	return strings.ToLower(string(b)), true
}

// isCanonicalUUID reports whether s is already a lower-case canonical UUID.
func isCanonicalUUID(s string) bool {
	c, ok := CanonicalUUID(s)
	return ok && c == s
}

const nilUUID = "00000000-0000-0000-0000-000000000000"

// StreamName is the order's stream: "order-<lower-case uuid>".
func StreamName(orderID string) string { return StreamPrefix + strings.ToLower(orderID) }

// OrderIDFromStream returns the order id of an order stream, and false for
// any other stream name.
func OrderIDFromStream(stream string) (string, bool) {
	id, ok := strings.CutPrefix(stream, StreamPrefix)
	if !ok || !isCanonicalUUID(id) {
		return "", false
	}
	return id, true
}

// FactEventID is the stored event id of an inbound message: derived from
// the message identity, so a redelivery maps to the same event id.
func FactEventID(messageID string) string { return NameUUID("fact", messageID) }

// TimeoutEventID is the event id of the attempt-th placement time-out of an
// order, so two instances that both notice the deadline append it once.
func TimeoutEventID(orderID string, attempt int) string {
	return NameUUID("placement-timeout", strings.ToLower(orderID), strconv.Itoa(attempt))
}

// RestatementEventID is the event id of a restatement; fingerprint
// identifies what was restated (e.g. a hash of the old and new state).
func RestatementEventID(orderID, fingerprint string) string {
	return NameUUID("restatement", strings.ToLower(orderID), fingerprint)
}
