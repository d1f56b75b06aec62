package codec

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A small strict JSON scanner. Messages and stored facts are flat objects
// with a handful of known keys, so scanning bytes directly is several times
// faster than encoding/json's reflection or token API and allocates only the
// strings it returns. It accepts exactly RFC 8259 JSON (the fuzz tests
// compare it with encoding/json.Valid); invalid UTF-8 inside strings is
// replaced by U+FFFD, as encoding/json does.

var errSyntax = errors.New("malformed json")

const maxDepth = 512

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, s.pos)
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (s *scanner) peek() byte {
	s.skipWS()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) consume(c byte) bool {
	if s.peek() == c {
		s.pos++
		return true
	}
	return false
}

// end checks that only whitespace follows.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos < len(s.data) {
		return s.fail("data after the top-level value")
	}
	return nil
}

// member advances to the next object member and returns its key (unescaped;
// it may alias the input). ok is false after the closing '}'.
func (s *scanner) member(first bool) (key []byte, ok bool, err error) {
	c := s.peek()
	if c == '}' {
		s.pos++
		return nil, false, nil
	}
	if !first {
		if c != ',' {
			return nil, false, s.fail("expected ',' or '}'")
		}
		s.pos++
		c = s.peek()
	}
	if c != '"' {
		return nil, false, s.fail("expected a string key")
	}
	key, err = s.str()
	if err != nil {
		return nil, false, err
	}
	if !s.consume(':') {
		return nil, false, s.fail("expected ':'")
	}
	return key, true, nil
}

// str reads a string at s.pos (which is '"') and returns its unescaped
// bytes. Without escapes or invalid UTF-8 the result aliases the input.
func (s *scanner) str() ([]byte, error) {
	start := s.pos + 1
	i := start
	ascii := true
	for i < len(s.data) {
		c := s.data[i]
		if plain[c] {
			i++
			continue
		}
		if c == '"' {
			if ascii || utf8.Valid(s.data[start:i]) {
				s.pos = i + 1
				return s.data[start:i], nil
			}
			break
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			s.pos = i
			return nil, s.fail("control character in string")
		}
		ascii = false // c >= 0x80
		i++
	}
	if i >= len(s.data) {
		s.pos = i
		return nil, s.fail("unterminated string")
	}
	return s.strSlow(start)
}

// plain marks the bytes a string may hold without a closer look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *scanner) strSlow(start int) ([]byte, error) {
	out := make([]byte, 0, 32)
	i := start
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return out, nil
		case c < 0x20:
			s.pos = i
			return nil, s.fail("control character in string")
		case c == '\\':
			if i+1 >= len(s.data) {
				s.pos = i
				return nil, s.fail("unterminated escape")
			}
			e := s.data[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(s.data, i)
				if !ok {
					s.pos = i
					return nil, s.fail("bad \\u escape")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
						if x, ok := hex4(s.data, i+2); ok {
							r2 = x
						}
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						i += 6
						r = d
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				s.pos = i - 1
				return nil, s.fail("bad escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(s.data[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s.data[i:i+size]...)
			}
			i += size
		}
	}
	s.pos = i
	return nil, s.fail("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number reads a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	i := s.pos
	d := s.data
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.fail("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.fail("bad number fraction")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.fail("bad number exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], nil
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail("bad literal")
	}
	s.pos += len(word)
	return nil
}

// value skips any JSON value and returns its raw bytes.
func (s *scanner) value(depth int) ([]byte, error) {
	c := s.peek()
	start := s.pos
	var err error
	switch {
	case c == '"':
		_, err = s.str()
	case c == '-' || c >= '0' && c <= '9':
		_, err = s.number()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	case c == '{':
		if depth >= maxDepth {
			return nil, s.fail("nested too deeply")
		}
		s.pos++
		for first := true; ; first = false {
			_, ok, e := s.member(first)
			if e != nil {
				return nil, e
			}
			if !ok {
				break
			}
			if _, e := s.value(depth + 1); e != nil {
				return nil, e
			}
		}
	case c == '[':
		if depth >= maxDepth {
			return nil, s.fail("nested too deeply")
		}
		s.pos++
		if s.consume(']') {
			break
		}
		for {
			if _, e := s.value(depth + 1); e != nil {
				return nil, e
			}
			if s.consume(',') {
				continue
			}
			if s.consume(']') {
				break
			}
			return nil, s.fail("expected ',' or ']'")
		}
	default:
		return nil, s.fail("expected a value")
	}
	if err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

// validJSON reports whether data is one valid JSON value.
func validJSON(data []byte) bool {
	s := scanner{data: data}
	if _, err := s.value(0); err != nil {
		return false
	}
	return s.end() == nil
}

// equalFoldASCII compares a key with a lower-case ASCII name, ignoring case
// the way MassTransit (System.Text.Json, case-insensitive) matches them.
func equalFoldASCII(key []byte, lower string) bool {
	if len(key) != len(lower) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped so the output is also valid JavaScript.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				const hexd = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', byte('8'+r-'\u2028'))
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// int64 reads an integer JSON number (no fraction or exponent).
func (s *scanner) int64() (int64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, s.fail("expected an integer")
	}
	raw, err := s.number()
	if err != nil {
		return 0, err
	}
	neg := raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	var v uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, s.fail("expected an integer")
		}
		if v > (1<<63-uint64(c-'0'))/10 {
			return 0, s.fail("integer out of range")
		}
		v = v*10 + uint64(c-'0')
	}
	if neg {
		return -int64(v), nil // v <= 1<<63; -int64(1<<63) wraps to MinInt64, which is right
	}
	if v > 1<<63-1 {
		return 0, s.fail("integer out of range")
	}
	return int64(v), nil
}

// stringOrNull reads a string (returned) or null (isNull). For any other
// value it returns nil, false after skipping it.
func (s *scanner) stringOrNull() (v []byte, isNull bool, err error) {
	switch s.peek() {
	case '"':
		v, err = s.str()
		if v == nil && err == nil {
			v = []byte{}
		}
		return v, false, err
	case 'n':
		return nil, true, s.literal("null")
	}
	_, err = s.value(0)
	return nil, false, err
}
