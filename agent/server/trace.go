package server

import (
	"errors"
	"net/http"

	"github.com/sluicenet/sluice/agent/api"
)

// Tracer is what the server needs to answer POST /v1/policy/trace.
type Tracer interface {
	// Trace computes the verdicts of a new flow; a BadRequest error is the
	// request's fault (an unknown pod, say).
	Trace(api.TraceRequest) (api.TraceResult, error)
}

// BadRequest marks an error caused by the request: it is answered with
// 400 and its message.
type BadRequest struct{ Err error }

func (e BadRequest) Error() string { return e.Err.Error() }
func (e BadRequest) Unwrap() error { return e.Err }

// serveTrace serves POST /v1/policy/trace.
func serveTrace(t Tracer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.TraceRequest
		if err := decode(w, r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		out, err := t.Trace(req)
		var bad BadRequest
		switch {
		case errors.As(err, &bad):
			writeError(w, http.StatusBadRequest, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, "trace: "+err.Error())
		default:
			writeJSON(w, http.StatusOK, out)
		}
	}
}
