// Package specs holds the ledger's wire contracts: the AsyncAPI document
// (asyncapi.yaml), one JSON Schema (draft 2020-12) per message body and
// envelope (schemas/), and valid examples of each (examples/), all embedded
// so that other packages' tests can validate what they send and receive.
//
// Schema names are the schema file names without ".json": the contract type
// names ("UserCheckedOutIntegrationEvent", "PlaceOrderCommand"), the
// AccelByte event names ("orderCreated" ...) and "AccelByteEvent",
// "AccelByteOrder", "MassTransitEnvelope", "CloudEventsEnvelope".
// README.md describes the layout and the example naming convention.
package specs

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// FS holds asyncapi.yaml, README.md, schemas/*.json and examples/**.json.
//
//go:embed asyncapi.yaml README.md schemas/*.json examples
var FS embed.FS

// Paths inside FS.
const (
	AsyncAPIPath = "asyncapi.yaml"
	SchemasDir   = "schemas"
	ExamplesDir  = "examples"
)

// Envelope kinds as used in Example.Envelope and under examples/envelopes/.
const (
	EnvelopeBare        = ""
	EnvelopeMassTransit = "masstransit"
	EnvelopeCloudEvents = "cloudevents"
)

// ErrUnknownSchema is returned for a schema name that has no file in schemas/.
var ErrUnknownSchema = errors.New("unknown schema")

// schemaBase is the base URI the schema files are compiled under, so that
// relative references ("common.json#/$defs/money") resolve among them. It is
// never fetched: every file is added to the compiler up front.
const schemaBase = "https://bookworm-ledger.invalid/specs/schemas/"

var compiled = sync.OnceValues(compileAll)

// compileAll compiles every schema once; the compiler is not safe for
// concurrent use, the compiled schemas are.
func compileAll() (map[string]*jsonschema.Schema, error) {
	entries, err := fs.ReadDir(FS, SchemasDir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", SchemasDir, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		raw, err := FS.ReadFile(path.Join(SchemasDir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", e.Name(), err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", e.Name(), err)
		}
		if err := c.AddResource(schemaBase+e.Name(), doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", e.Name(), err)
		}
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	out := make(map[string]*jsonschema.Schema, len(names))
	for _, n := range names {
		s, err := c.Compile(schemaBase + n + ".json")
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", n, err)
		}
		out[n] = s
	}
	return out, nil
}

// SchemaNames lists every schema name, sorted.
func SchemaNames() ([]string, error) {
	all, err := compiled()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Schema returns the compiled schema called name (format assertions on).
// The result is shared and safe for concurrent use.
func Schema(name string) (*jsonschema.Schema, error) {
	all, err := compiled()
	if err != nil {
		return nil, err
	}
	s, ok := all[name]
	if !ok {
		return nil, fmt.Errorf("schema %q: %w", name, ErrUnknownSchema)
	}
	return s, nil
}

// Validate checks the JSON document doc against the schema called name. A
// violation is a *jsonschema.ValidationError (wrapped); malformed JSON and an
// unknown name are errors too.
func Validate(name string, doc []byte) error {
	s, err := Schema(name)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("validate %s: parse json: %w", name, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("validate %s: %w", name, err)
	}
	return nil
}

// Example is one example file.
//
// For a bare example (examples/<Schema>/<case>.json) Body and Raw are the
// file. For an enveloped one (examples/envelopes/<envelope>/<Schema>.json or
// <Schema>.<case>.json) Raw is the whole envelope and Body the message object
// inside it (MassTransit "message", CloudEvents "data"), byte for byte, or
// decoded from CloudEvents "data_base64".
type Example struct {
	Path     string // inside FS, e.g. "examples/envelopes/masstransit/PlaceOrderCommand.json"
	Schema   string // schema name of the message body
	Envelope string // EnvelopeBare, EnvelopeMassTransit or EnvelopeCloudEvents
	Body     []byte
	Raw      []byte
}

// EnvelopeSchema is the schema name of the example's envelope ("" when bare).
func (e Example) EnvelopeSchema() string { return EnvelopeSchema(e.Envelope) }

// EnvelopeSchema maps an envelope kind to its schema name ("" for bare or unknown).
func EnvelopeSchema(envelope string) string {
	switch envelope {
	case EnvelopeMassTransit:
		return "MassTransitEnvelope"
	case EnvelopeCloudEvents:
		return "CloudEventsEnvelope"
	}
	return ""
}

// envelopeBodyKey is the envelope member that carries the message object.
var envelopeBodyKey = map[string]string{EnvelopeMassTransit: "message", EnvelopeCloudEvents: "data"}

// Examples returns every example file, sorted by path.
func Examples() ([]Example, error) {
	var out []Example
	err := fs.WalkDir(FS, ExamplesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		ex, err := readExample(p)
		if err != nil {
			return err
		}
		out = append(out, ex)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read examples: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func readExample(p string) (Example, error) {
	raw, err := FS.ReadFile(p)
	if err != nil {
		return Example{}, fmt.Errorf("read %s: %w", p, err)
	}
	parts := strings.Split(strings.TrimPrefix(p, ExamplesDir+"/"), "/")
	switch {
	case len(parts) == 2 && parts[0] != "envelopes":
		return Example{Path: p, Schema: parts[0], Body: raw, Raw: raw}, nil
	case len(parts) == 3 && parts[0] == "envelopes":
		env := parts[1]
		key, ok := envelopeBodyKey[env]
		if !ok {
			return Example{}, fmt.Errorf("example %s: unknown envelope %q", p, env)
		}
		// <Schema>.json or <Schema>.<case>.json
		schema, _, _ := strings.Cut(strings.TrimSuffix(parts[2], ".json"), ".")
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return Example{}, fmt.Errorf("example %s: %w", p, err)
		}
		body, ok := members[key]
		if b64, isB64 := members["data_base64"]; !ok && isB64 && env == EnvelopeCloudEvents {
			// CloudEvents JSON format §3.1: the data base64-encoded instead.
			var enc string
			if err := json.Unmarshal(b64, &enc); err != nil {
				return Example{}, fmt.Errorf("example %s: data_base64: %w", p, err)
			}
			dec, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				return Example{}, fmt.Errorf("example %s: data_base64: %w", p, err)
			}
			body, ok = dec, true
		}
		if !ok {
			return Example{}, fmt.Errorf("example %s: envelope has no %q member", p, key)
		}
		return Example{Path: p, Schema: schema, Envelope: env, Body: []byte(body), Raw: raw}, nil
	}
	return Example{}, fmt.Errorf("example %s: path does not follow examples/<Schema>/<case>.json or examples/envelopes/<envelope>/<Schema>[.<case>].json", p)
}
