package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// authorize enforces the bearer token of state-changing endpoints: 403 when
// none is configured (they are off), 401 when the request lacks it. The
// messages name the settings, for whoever reads them.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		writeError(w, http.StatusForbidden, "state-changing endpoints are disabled: no token configured (start the server with http.token, LEDGER_HTTP_TOKEN)")
		return false
	}
	given, ok := bearer(r.Header.Get("Authorization"))
	// Hashing first makes the comparison constant-time in the length too.
	want := sha256.Sum256([]byte(s.cfg.Token))
	got := sha256.Sum256([]byte(given))
	if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ledger"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return false
	}
	return true
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// replayOptions is the optional JSON body of a replay; query parameters
// of the same name win.
type replayOptions struct {
	DryRun  *bool `json:"dry_run"`
	Restate *bool `json:"restate"`
}

// replay rebuilds the read model with the current code. Absent flags are
// false (as `ledger replay --server` sends them): a real replay that
// restates nothing. A dry run only reads, like the rest of the API, and
// needs no token; a real replay (and so a restatement) does. A request
// that cannot be parsed is answered as unauthorized when it is, so the
// answer tells nothing to whoever lacks the token.
func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	dryRun, restate, perr := s.replayFlags(r)
	if (perr != nil || !dryRun) && !s.authorize(w, r) {
		return
	}
	if perr != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(perr, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		s.fail(w, r, perr)
		return
	}
	if s.deps.Replay == nil {
		writeError(w, http.StatusNotImplemented, "replay is not available in this process")
		return
	}
	if !s.replaying.CompareAndSwap(false, true) {
		writeError(w, http.StatusConflict, "a replay is already running")
		return
	}
	defer s.replaying.Store(false)

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReplayTimeout)
	defer cancel()
	// The answer comes when the replay ends, long after WriteTimeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.ReplayTimeout + s.cfg.WriteTimeout))
	s.log.Info("replay requested", zap.Bool("dry_run", dryRun), zap.Bool("restate", restate))
	res, err := s.deps.Replay(ctx, dryRun, restate)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && r.Context().Err() == nil {
			s.log.Error("replay timed out", zap.Duration("timeout", s.cfg.ReplayTimeout))
			writeError(w, http.StatusGatewayTimeout, "replay timed out")
			return
		}
		s.fail(w, r, err)
		return
	}
	s.log.Info("replay done", zap.Bool("dry_run", dryRun), zap.Int64("facts", res.Facts),
		zap.Int64("orders", res.Orders), zap.Int("changes", len(res.Changes)), zap.Duration("elapsed", res.Elapsed))
	writeJSON(w, http.StatusOK, res) // "changes": [] when none (ReplayResult.MarshalJSON)
}

// replayFlags reads dry_run and restate from the JSON body and the query
// (the query wins).
func (s *Server) replayFlags(r *http.Request) (dryRun, restate bool, err error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return false, false, err
		}
		return false, false, badRequest("cannot read body")
	}
	var opts replayOptions
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts); err != nil {
			return false, false, badRequest(`body: want {"dry_run":bool,"restate":bool}`)
		}
	}
	if opts.DryRun != nil {
		dryRun = *opts.DryRun
	}
	if opts.Restate != nil {
		restate = *opts.Restate
	}
	if dryRun, err = boolParam(r, "dry_run", dryRun); err != nil {
		return false, false, err
	}
	if restate, err = boolParam(r, "restate", restate); err != nil {
		return false, false, err
	}
	return dryRun, restate, nil
}
