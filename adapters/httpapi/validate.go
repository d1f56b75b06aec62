package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// maxStreamName bounds stream names and prefixes taken from requests.
const maxStreamName = 200

// parseOrderID accepts a UUID in canonical 8-4-4-4-12 form, any case, and
// returns it lower-case, as stream names carry it.
func parseOrderID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	return parseOrderIDPrefix(s)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validStreamName allows what the ledger and EventStoreDB's system streams
// use: letters, digits and - _ . : @ $, at most maxStreamName bytes. An
// empty name is valid only as a prefix.
func validStreamName(s string, prefix bool) bool {
	if len(s) > maxStreamName || (s == "" && !prefix) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '$':
		default:
			return false
		}
	}
	return true
}

// badRequest is a client error whose message is safe to return.
type badRequest string

func (b badRequest) Error() string { return string(b) }

// pageLimit reads the limit parameter: def when absent, 1..max otherwise.
func pageLimit(r *http.Request, def, max int) (int, error) {
	raw := r.URL.Query().Get("limit")
	if raw == "" {
		return min(def, max), nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > max {
		return 0, badRequest(fmt.Sprintf("limit: want a whole number from 1 to %d", max))
	}
	return n, nil
}

// boolParam reads a 0/1/true/false parameter, def when absent.
func boolParam(r *http.Request, name string, def bool) (bool, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		return false, badRequest(name + ": want 1, 0, true or false")
	}
	return b, nil
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
