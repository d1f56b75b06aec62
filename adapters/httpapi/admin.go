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

	"github.com/bookworm-ledger/ledger/projections"
)

// authorize enforces the bearer token of state-changing endpoints: 403 when
// none is configured (they are off), 401 when the request lacks it.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		writeError(w, http.StatusForbidden, "state-changing endpoints are disabled: no token configured")
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
// restates nothing.
func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	var opts replayOptions
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts); err != nil {
			writeError(w, http.StatusBadRequest, "body: want {\"dry_run\":bool,\"restate\":bool}")
			return
		}
	}
	dryRun, restate := false, false
	if opts.DryRun != nil {
		dryRun = *opts.DryRun
	}
	if opts.Restate != nil {
		restate = *opts.Restate
	}
	if dryRun, err = boolParam(r, "dry_run", dryRun); err != nil {
		s.fail(w, r, err)
		return
	}
	if restate, err = boolParam(r, "restate", restate); err != nil {
		s.fail(w, r, err)
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
	if res.Changes == nil {
		res.Changes = []projections.Change{}
	}
	writeJSON(w, http.StatusOK, res)
}
