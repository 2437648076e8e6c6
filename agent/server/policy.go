package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
)

// Policies is what the server needs from the policy manager.
type Policies interface {
	// Status returns every policy object's status.
	Status() []api.PolicyStatus
	// EndpointPolicy returns an endpoint's resolved policy, or false when
	// it is not resolved yet.
	EndpointPolicy(epID uint16) (api.EndpointPolicy, bool)
}

// Identities is what the server needs from the identity manager.
type Identities interface {
	// Identities returns every known identity.
	Identities() []api.Identity
}

// endpointPolicy serves GET /v1/policy/endpoint/{containerID}/{ifName}.
func endpointPolicy(eps Endpoints, pols Policies) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cid, ifn := r.PathValue("containerID"), r.PathValue("ifName")
		ep, err := eps.Get(cid, ifn)
		if errors.Is(err, endpointmgr.ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out, ok := pols.EndpointPolicy(ep.ID)
		if !ok {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("endpoint %s/%s has no resolved policy yet", cid, ifn))
			return
		}
		out.ContainerID, out.IfName = ep.ContainerID, ep.IfName
		if ep.PodName != "" {
			out.Pod = ep.PodNamespace + "/" + ep.PodName
		}
		writeJSON(w, http.StatusOK, out)
	}
}
