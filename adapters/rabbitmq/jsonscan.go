package rabbitmq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// One pass over an inbound body: jsontext checks the syntax; the scanner
// adds the nesting limit and refuses duplicate names compared
// case-insensitively at every level (MassTransit and encoding/json read
// names case-insensitively, so two spellings of one field would be
// ambiguous), and keeps the envelope members the decoder needs as the
// bytes they occupy in the body.

// fieldKind says what an envelope member holds.
type fieldKind uint8

const (
	fieldString  fieldKind = iota // a JSON string; null leaves the member as it was
	fieldStrings                  // an array of strings
	fieldRaw                      // any value, kept as it is
)

// envField is an envelope member the decoder reads. Names match the way
// encoding/json matches struct fields: case-insensitively (Unicode simple
// folding), a later spelling overriding an earlier one.
type envField struct {
	name []byte
	kind fieldKind
}

// maxFields bounds the members an envelope reads.
const maxFields = 14

// scanned is what the pass kept: per field, the value's bytes in the body
// (a quoted string for fieldString, any value for fieldRaw; nil when
// absent), the quoted elements of the fieldStrings member, and the first
// member whose value had the wrong JSON type. With attribute names
// (CloudEvents), badName is the first top-level name that is not one and
// badValue the first other member holding an object or an array.
type scanned struct {
	val       [maxFields][]byte
	list      [][]byte
	wrongType string
	badName   string
	badValue  string
	listBuf   [4][]byte
}

// str is field i as a Go string ("" when absent).
func (s *scanned) str(i int) string { return string(unquoted(s.val[i])) }

// unquoted returns the content of a quoted JSON string that jsontext has
// validated: the bytes themselves when nothing is escaped, else a copy
// unescaped as encoding/json does (a lone surrogate becomes U+FFFD).
func unquoted(q []byte) []byte {
	if len(q) < 2 {
		return nil
	}
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1]
	}
	b, _ := jsontext.AppendUnquote(nil, q) // only a lone surrogate errs here, and it is replaced
	return b
}

type jsonScanner struct {
	dec      jsontext.Decoder
	in       bytes.Buffer
	body     []byte
	fields   []envField
	attrs    bool    // top-level names are CloudEvents attribute names
	out      scanned // copied to the caller's at the end (its pointer would escape through the recursion)
	maxDepth int
	names    []byte // lower-cased names of the open objects, back to back
	ends     []int  // where each of those names ends in names
	tmp      []byte // unescaping scratch
}

var (
	scanners = sync.Pool{New: func() any { return new(jsonScanner) }}
	noInput  bytes.Buffer
)

// scanJSON checks that body is exactly one JSON object, nested at most
// maxDepth deep, without duplicate names at any level; with fields, it
// fills out with the top-level members named there. body must be valid
// UTF-8.
func scanJSON(body []byte, maxDepth int, fields []envField, out *scanned) error {
	return scanJSONMode(body, maxDepth, fields, false, out)
}

// scanCloudEvent is scanJSON for a structured CloudEvent: fields are
// matched exactly, and top-level names and values are checked as
// attributes (see scanned).
func scanCloudEvent(body []byte, maxDepth int, fields []envField, out *scanned) error {
	return scanJSONMode(body, maxDepth, fields, true, out)
}

func scanJSONMode(body []byte, maxDepth int, fields []envField, attrs bool, out *scanned) error {
	s := scanners.Get().(*jsonScanner)
	defer func() {
		s.dec.Reset(&noInput) // the pool must not keep the body alive
		s.in, s.body, s.fields, s.attrs, s.out = bytes.Buffer{}, nil, nil, false, scanned{}
		s.names, s.ends = s.names[:0], s.ends[:0]
		scanners.Put(s)
	}()
	// A lone surrogate escape ("\ud800") is valid JSON to encoding/json,
	// which reads it as U+FFFD; raw invalid UTF-8 was refused before.
	s.in = *bytes.NewBuffer(body)
	s.dec.Reset(&s.in, jsontext.AllowInvalidUTF8(true))
	s.body, s.maxDepth, s.fields, s.attrs = body, maxDepth, fields, attrs
	tok, err := s.dec.ReadToken()
	if err != nil {
		return invalid(err)
	}
	if tok.Kind() != '{' {
		return errors.New("body is not a JSON object")
	}
	if err := s.opened(); err != nil {
		return err
	}
	if err := s.object(true); err != nil {
		return err
	}
	if _, err := s.dec.ReadToken(); err != io.EOF {
		if err == nil {
			return errors.New("data after the JSON object")
		}
		return invalid(err)
	}
	if out != nil {
		list := s.out.list
		*out = s.out
		out.list = append(out.listBuf[:0], list...) // the pooled scanner's array is not the caller's
	}
	return nil
}

func invalid(err error) error {
	if err == nil {
		return nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// opened checks the depth after a '{' or '[' was read.
func (s *jsonScanner) opened() error {
	if s.dec.StackDepth() > s.maxDepth {
		return fmt.Errorf("nested deeper than %d", s.maxDepth)
	}
	return nil
}

// next peeks at the kind of the next token, or returns the syntax error
// that stops it.
func (s *jsonScanner) next() (jsontext.Kind, error) {
	if k := s.dec.PeekKind(); k != 0 {
		return k, nil
	}
	_, err := s.dec.ReadToken()
	if err == nil {
		err = errors.New("unexpected token")
	}
	return 0, invalid(err)
}

// open reads the '{' or '[' that next reported and checks the depth.
func (s *jsonScanner) open() error {
	if _, err := s.dec.ReadToken(); err != nil {
		return invalid(err)
	}
	return s.opened()
}

// close reads the '}' or ']' that next reported.
func (s *jsonScanner) close() error {
	_, err := s.dec.ReadToken()
	return invalid(err)
}

// object reads the members of an object whose '{' was read, through its
// '}', keeping the envelope's fields when top.
func (s *jsonScanner) object(top bool) error {
	f := frame{base: len(s.ends), start: len(s.names)}
	defer func() { s.names, s.ends = s.names[:f.start], s.ends[:f.base] }()
	for {
		k, err := s.next()
		if err != nil {
			return err
		}
		if k == '}' {
			return s.close()
		}
		raw, err := s.dec.ReadValue() // the name
		if err != nil {
			return invalid(err)
		}
		name := raw[1 : len(raw)-1]
		if bytes.IndexByte(raw, '\\') >= 0 {
			s.tmp, _ = jsontext.AppendUnquote(s.tmp[:0], raw) // only a lone surrogate errs, replaced
			name = s.tmp
		}
		if err := s.addName(&f, name); err != nil {
			return err
		}
		i := -1
		if top {
			if s.attrs && s.out.badName == "" && !attributeName(name) && string(name) != "data_base64" {
				s.out.badName = string(name)
			}
			i = matchField(s.fields, name)
		}
		switch {
		case i >= 0:
			err = s.field(&s.fields[i], i)
		case top && s.attrs:
			err = s.attribute(name)
		default:
			err = s.value()
		}
		if err != nil {
			return err
		}
	}
}

// attributeName: CloudEvents attribute names are lower-case ASCII letters
// and digits (CloudEvents 1.0, "Attribute Naming Convention").
func attributeName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// attribute reads the value of a CloudEvents attribute the decoder does
// not keep: the JSON format maps every attribute type onto a string, a
// number, a boolean or null, never an object or an array.
func (s *jsonScanner) attribute(name []byte) error {
	k, err := s.next()
	if err != nil {
		return err
	}
	if (k == '{' || k == '[') && s.out.badValue == "" {
		s.out.badValue = string(name)
	}
	return s.value()
}

func matchField(fields []envField, name []byte) int {
	for i := range fields {
		if bytes.EqualFold(name, fields[i].name) {
			return i
		}
	}
	return -1
}

// frame is an open object's names: ends[base:] in names[start:], or the
// map once there are many.
type frame struct {
	base, start int
	big         map[string]struct{}
}

// addName records a member name of f, refusing one equal to an earlier
// name under strings.ToLower.
func (s *jsonScanner) addName(f *frame, name []byte) error {
	from := len(s.names)
	if isASCII(name) {
		for _, c := range name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			s.names = append(s.names, c)
		}
	} else {
		s.names = append(s.names, strings.ToLower(string(name))...)
	}
	key := s.names[from:]
	if f.big != nil {
		if _, dup := f.big[string(key)]; dup {
			return fmt.Errorf("duplicate key %q", name)
		}
		f.big[string(key)] = struct{}{}
		s.names = s.names[:from] // the map holds it
		return nil
	}
	prev := f.start
	for _, end := range s.ends[f.base:] {
		if bytes.Equal(s.names[prev:end], key) {
			return fmt.Errorf("duplicate key %q", name)
		}
		prev = end
	}
	s.ends = append(s.ends, len(s.names))
	if n := len(s.ends) - f.base; n > 16 {
		// A huge object must not make the check quadratic.
		f.big = make(map[string]struct{}, 4*n)
		prev := f.start
		for _, end := range s.ends[f.base:] {
			f.big[string(s.names[prev:end])] = struct{}{}
			prev = end
		}
	}
	return nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// value reads one value, checking what it contains.
func (s *jsonScanner) value() error {
	k, err := s.next()
	if err != nil {
		return err
	}
	switch k {
	case '{':
		if err := s.open(); err != nil {
			return err
		}
		return s.object(false)
	case '[':
		if err := s.open(); err != nil {
			return err
		}
		return s.array(nil)
	}
	return invalid(s.dec.SkipValue())
}

// array reads the elements of an array whose '[' was read, through its
// ']'. For the fieldStrings member f, string elements go to s.out.list the
// way encoding/json decodes into an existing slice: a null element keeps
// what was there, the length is the array's.
func (s *jsonScanner) array(f *envField) error {
	out := &s.out
	for n := 0; ; n++ {
		k, err := s.next()
		if err != nil {
			return err
		}
		if k == ']' {
			if f != nil && n < len(out.list) {
				out.list = out.list[:n]
			}
			return s.close()
		}
		if f == nil {
			if err := s.value(); err != nil {
				return err
			}
			continue
		}
		if n == len(out.list) {
			out.list = append(out.list, nil)
		}
		switch k {
		case '"':
			if out.list[n], err = s.scalar(); err != nil {
				return err
			}
		case 'n':
			if err := s.dec.SkipValue(); err != nil {
				return invalid(err)
			}
		default:
			out.wrong(f)
			if err := s.value(); err != nil {
				return err
			}
		}
	}
}

func (s *scanned) wrong(f *envField) {
	if s.wrongType == "" {
		s.wrongType = string(f.name)
	}
}

// scalar reads a scalar and returns its bytes in the body.
func (s *jsonScanner) scalar() ([]byte, error) {
	raw, err := s.dec.ReadValue()
	if err != nil {
		return nil, invalid(err)
	}
	end := int(s.dec.InputOffset())
	return s.body[end-len(raw) : end], nil
}

// field reads the value of top-level member i as encoding/json would
// decode it into a string, a []string or a json.RawMessage.
func (s *jsonScanner) field(f *envField, i int) error {
	out := &s.out
	k, err := s.next()
	if err != nil {
		return err
	}
	switch f.kind {
	case fieldString:
		switch k {
		case '"':
			out.val[i], err = s.scalar()
			return err
		case 'n':
			return invalid(s.dec.SkipValue())
		}
	case fieldStrings:
		switch k {
		case '[':
			if err := s.open(); err != nil {
				return err
			}
			if out.list == nil {
				out.list = out.listBuf[:0]
			}
			return s.array(f)
		case 'n':
			out.list = nil
			return invalid(s.dec.SkipValue())
		}
	case fieldRaw:
		if k != '{' && k != '[' {
			out.val[i], err = s.scalar()
			return err
		}
		start := int(s.dec.InputOffset())
		if err := s.value(); err != nil {
			return err
		}
		out.val[i] = bytes.TrimLeft(s.body[start:s.dec.InputOffset()], " \t\r\n:") // from after the name
		return nil
	}
	out.wrong(f)
	return s.value()
}
