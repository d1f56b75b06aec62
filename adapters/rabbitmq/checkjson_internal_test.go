package rabbitmq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkJSON accepts exactly one JSON object, nested at most maxDepth deep,
// without duplicate keys (compared case-insensitively, since MassTransit
// and encoding/json read names case-insensitively: two spellings of one
// field would be ambiguous).
func checkJSONReference(b []byte, maxDepth int) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		keys   map[string]struct{}
		object bool
		expKey bool
	}
	var stack []frame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if first {
				return errors.New("empty body")
			}
			if len(stack) != 0 {
				return errors.New("unexpected end of JSON")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errors.New("body is not a JSON object")
			}
		} else if len(stack) == 0 {
			return errors.New("data after the JSON object")
		}
		first = false
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.object && top.expKey {
				if k, ok := tok.(string); ok {
					lk := strings.ToLower(k)
					if _, dup := top.keys[lk]; dup {
						return fmt.Errorf("duplicate key %q", k)
					}
					top.keys[lk] = struct{}{}
					top.expKey = false
					continue
				}
			} else if top.object {
				top.expKey = true // this token is the value (or opens it)
			}
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= maxDepth {
					return fmt.Errorf("nested deeper than %d", maxDepth)
				}
				f := frame{object: d == '{', expKey: d == '{'}
				if f.object {
					f.keys = map[string]struct{}{}
				}
				stack = append(stack, f)
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		}
	}
}

// FuzzCheckJSON compares the fast structural check with a slow reference
// built on encoding/json's tokenizer.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"A":2}`, `{"a":{"a":1},"b":[{"a":1,"a":2}]}`, `{"a\u0062":1,"ab":2}`, `{"x":"\"}{"}`,
		`[1]`, `{} {}`, `{"a":[[[[[[]]]]]]}`, ` {"k":"v\\"} `, `{"a":1,}`,
	} {
		f.Add([]byte(s), 4)
	}
	f.Fuzz(func(t *testing.T, b []byte, depth int) {
		if depth < 1 || depth > 50 || !utf8.Valid(b) {
			return
		}
		got, want := checkJSON(b, depth), checkJSONReference(b, depth)
		if (got == nil) != (want == nil) {
			t.Fatalf("checkJSON(%q, %d) = %v, reference says %v", b, depth, got, want)
		}
	})
}
