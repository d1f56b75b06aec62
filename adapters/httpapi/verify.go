package httpapi

import (
	"net/http"

	"github.com/bookworm-ledger/ledger/projections"
)

// verify answers GET /api/books/verify: the log recomputed against its
// seals (projections.Verify). A tampered history is a 200 with ok false:
// the check itself worked.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	rep, err := projections.Verify(r.Context(), s.deps.Log)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
