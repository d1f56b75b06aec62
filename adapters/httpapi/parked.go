package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/projections"
)

// Parked lanes: GET /api/parked lists them (read only, like the rest of
// the API); POST /api/admin/parked/retry publishes them again after a fix,
// behind the admin token because it sends messages downstream.

type parkedBody struct {
	Orders int                  `json:"orders"` // distinct orders with a parked lane
	Lanes  int                  `json:"lanes"`
	Parked []projections.Parked `json:"parked"`
}

func newParkedBody(lanes []projections.Parked) parkedBody {
	orders := map[string]bool{}
	for _, p := range lanes {
		orders[p.OrderID] = true
	}
	if lanes == nil {
		lanes = []projections.Parked{}
	}
	return parkedBody{Orders: len(orders), Lanes: len(lanes), Parked: lanes}
}

// listParked answers every parked lane, or one order's (?orderId=).
func (s *Server) listParked(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("orderId")
	if only != "" {
		id, ok := parseOrderID(only)
		if !ok {
			writeError(w, http.StatusBadRequest, "orderId: want an order id (UUID)")
			return
		}
		only = id
	}
	if s.deps.Parked == nil {
		writeError(w, http.StatusNotImplemented, "parked lanes are not available in this process")
		return
	}
	lanes, err := s.deps.Parked(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if only != "" {
		var mine []projections.Parked
		for _, p := range lanes {
			if p.OrderID == only {
				mine = append(mine, p)
			}
		}
		lanes = mine
	}
	writeJSON(w, http.StatusOK, newParkedBody(lanes))
}

// retryRequest is the JSON body of a retry: some orders, or all of them.
type retryRequest struct {
	OrderIDs []string `json:"orderIds"`
	All      bool     `json:"all"`
}

type retryBody struct {
	Results  []projections.RetryResult `json:"results"`
	Unparked int                       `json:"unparked"`  // lanes that went out and left the parked set
	Parked   int                       `json:"parked"`    // lanes that failed again and are parked again
	NotFound int                       `json:"notParked"` // ids asked for with no parked lane
	Failed   int                       `json:"failed"`    // lanes whose retry could not finish (park kept)
}

// retryParked publishes parked lanes again. One unknown or unparked id
// does not fail the others: each result says what became of its lane.
func (s *Server) retryParked(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	var req retryRequest
	if !readJSONBody(w, r, &req, `body: want {"orderIds":["order id",…]} or {"all":true}`) {
		return
	}
	if req.All == (len(req.OrderIDs) > 0) {
		writeError(w, http.StatusBadRequest, "name the orders to retry (orderIds) or ask for all, not both")
		return
	}
	ids := make([]string, 0, len(req.OrderIDs))
	seen := map[string]bool{}
	for _, raw := range req.OrderIDs {
		id, ok := parseOrderID(raw)
		if !ok {
			writeError(w, http.StatusBadRequest, "orderIds: want order ids (UUIDs)")
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if s.deps.RetryParked == nil {
		writeError(w, http.StatusNotImplemented, "retry is not available in this process (is the publisher on?)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RetryTimeout)
	defer cancel()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.RetryTimeout + s.cfg.WriteTimeout))
	s.log.Info("retry of parked lanes requested", zap.Strings("orders", ids), zap.Bool("all", req.All))
	res, err := s.deps.RetryParked(ctx, ids, req.All)
	if err != nil {
		switch {
		case errors.Is(err, projections.ErrNotParked):
			writeError(w, http.StatusNotFound, "not parked")
		case errors.Is(err, projections.ErrNotRunning):
			writeError(w, http.StatusServiceUnavailable, s.notPublishing())
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && r.Context().Err() == nil:
			s.log.Error("retry of parked lanes timed out", zap.Duration("timeout", s.cfg.RetryTimeout))
			writeError(w, http.StatusGatewayTimeout, "retry timed out")
		default:
			s.fail(w, r, err)
		}
		return
	}
	body := retryBody{Results: res}
	if body.Results == nil {
		body.Results = []projections.RetryResult{}
	}
	for i, rr := range res {
		switch {
		case rr.Unparked:
			body.Unparked++
		case errors.Is(rr.Err, projections.ErrNotParked):
			body.NotFound++
		case rr.Err != nil || rr.Error != "":
			body.Failed++
		default:
			body.Parked++
		}
		if rr.Err != nil && rr.Error == "" {
			body.Results[i].Error = rr.Err.Error()
		}
	}
	s.log.Info("retry of parked lanes done", zap.Int("lanes", len(res)), zap.Int("unparked", body.Unparked),
		zap.Int("parked_again", body.Parked), zap.Int("not_parked", body.NotFound), zap.Int("failed", body.Failed))
	writeJSON(w, http.StatusOK, body)
}

// readJSONBody decodes an optional JSON body strictly into v and answers
// the client's mistakes itself (false: answered).
func readJSONBody(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
			return false
		}
		writeError(w, http.StatusBadRequest, "cannot read body")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		writeError(w, http.StatusBadRequest, want)
		return false
	}
	return true
}

// notPublishing says why a retry cannot run here and where it can.
func (s *Server) notPublishing() string {
	msg := "the lifecycle publisher is not running in this process"
	if s.deps.Role == nil {
		return msg
	}
	st := s.deps.Role()
	if st.Leading {
		return msg + " (it is between two terms: try again)"
	}
	msg += fmt.Sprintf(": instance %s does not lead", st.Instance)
	if st.Leader != "" {
		return msg + "; retry on " + st.Leader
	}
	return msg + "; retry on the instance whose /readyz says leader"
}
