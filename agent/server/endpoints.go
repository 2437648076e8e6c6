package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/datapath"
)

// Endpoints is what the server needs from the endpoint manager.
type Endpoints interface {
	Put(api.Endpoint) (api.Endpoint, error)
	Delete(containerID, ifName string) error
	Get(containerID, ifName string) (api.Endpoint, error)
	List() ([]api.Endpoint, error)
	Len() int
}

// endpointHandler serves the endpoint routes and the health check.
type endpointHandler struct {
	eps     Endpoints
	bpfRoot string
	health  HealthFunc
	tracing func() *api.TracingStatus
	log     logrus.FieldLogger
}

func (h *endpointHandler) healthz(w http.ResponseWriter, _ *http.Request) {
	if h.health != nil {
		if err := h.health(); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	st := api.Health{Status: "ok", BPFRoot: h.bpfRoot, Endpoints: h.eps.Len()}
	if h.tracing != nil {
		st.Tracing = h.tracing()
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *endpointHandler) list(w http.ResponseWriter, _ *http.Request) {
	eps, err := h.eps.List()
	if err != nil {
		h.fail(w, "list endpoints", err)
		return
	}
	writeJSON(w, http.StatusOK, eps)
}

func (h *endpointHandler) get(w http.ResponseWriter, r *http.Request) {
	ep, err := h.eps.Get(r.PathValue("containerID"), r.PathValue("ifName"))
	if err != nil {
		h.fail(w, "get endpoint", err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (h *endpointHandler) put(w http.ResponseWriter, r *http.Request) {
	var ep api.Endpoint
	if err := decode(w, r, &ep); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := matchPath(&ep, r.PathValue("containerID"), r.PathValue("ifName")); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, err := h.eps.Put(ep)
	if err != nil {
		h.fail(w, "put endpoint "+ep.Key(), err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *endpointHandler) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.eps.Delete(r.PathValue("containerID"), r.PathValue("ifName")); err != nil {
		h.fail(w, "delete endpoint", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// matchPath fills the endpoint's name from the path, rejecting a body that
// names another endpoint.
func matchPath(ep *api.Endpoint, containerID, ifName string) error {
	if ep.ContainerID == "" {
		ep.ContainerID = containerID
	}
	if ep.IfName == "" {
		ep.IfName = ifName
	}
	if ep.ContainerID != containerID {
		return fmt.Errorf("containerID %q in the body does not match %q in the path", ep.ContainerID, containerID)
	}
	if ep.IfName != ifName {
		return fmt.Errorf("ifName %q in the body does not match %q in the path", ep.IfName, ifName)
	}
	return nil
}

// fail maps an error to its status and answers with it.
func (h *endpointHandler) fail(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, endpointmgr.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, endpointmgr.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, endpointmgr.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, datapath.ErrMapFull):
		// The error names the map (endpoints, policy, IP cache, ...).
		h.log.WithError(err).Error("BPF map is full: " + what + " failed")
		writeError(w, http.StatusInternalServerError, "bpf map full: "+err.Error())
	case errors.Is(err, endpointmgr.ErrNoFreeID):
		h.log.WithError(err).Error(what + " failed")
		writeError(w, http.StatusInternalServerError, "no free endpoint id: "+err.Error())
	default:
		h.log.WithError(err).Error(what + " failed")
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
