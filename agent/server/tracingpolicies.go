package server

import (
	"errors"
	"net/http"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/policy/tracing"
)

// TracingPolicies is what the server needs from the tracing policy manager
// (*tracingmgr.Manager). Errors for a policy it does not hold wrap
// api.ErrTracingPolicyNotFound.
type TracingPolicies interface {
	List() []api.TracingPolicy
	Get(ref tracing.Ref) (api.TracingPolicy, error)
	SetMode(ref tracing.Ref, mode tracing.Mode) error
}

// TracingRules counts the entries of the tracing rule maps in the kernel
// (the daemon's process tracing).
type TracingRules interface {
	RuleEntries() (api.TracingRuleEntries, error)
}

// tracingRef names the policy of a /v1/tracingpolicies/{namespace}/{name}
// path: namespace "-" is the cluster-scoped kind.
func tracingRef(r *http.Request) tracing.Ref {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if ns == api.ClusterScope {
		return tracing.Ref{Kind: tracing.KindTracingPolicy, Name: name}
	}
	return tracing.Ref{Kind: tracing.KindTracingPolicyNamespaced, Namespace: ns, Name: name}
}

func tracingError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, api.ErrTracingPolicyNotFound) {
		status = http.StatusNotFound
	}
	writeError(w, status, err.Error())
}

func routeTracingPolicies(mux *http.ServeMux, tp TracingPolicies) {
	mux.HandleFunc("GET /v1/tracingpolicies", func(w http.ResponseWriter, _ *http.Request) {
		out := tp.List()
		if out == nil {
			out = []api.TracingPolicy{}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/tracingpolicies/{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, err := tp.Get(tracingRef(r))
		if err != nil {
			tracingError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("PUT /v1/tracingpolicies/{namespace}/{name}/mode", func(w http.ResponseWriter, r *http.Request) {
		var req api.TracingPolicyMode
		if err := decode(w, r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		ref := tracingRef(r)
		if err := tp.SetMode(ref, tracing.Mode(req.Mode)); err != nil {
			tracingError(w, err)
			return
		}
		p, err := tp.Get(ref)
		if err != nil {
			tracingError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
}

func routeTracingRules(mux *http.ServeMux, tr TracingRules) {
	mux.HandleFunc("GET /v1/tracingrules", func(w http.ResponseWriter, _ *http.Request) {
		out, err := tr.RuleEntries()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}
