// Package server serves the agent's local API (see agent/api) over HTTP on a
// unix socket, on top of the endpoint manager.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/datapath"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Endpoints is what the server needs from the endpoint manager.
type Endpoints interface {
	Put(api.Endpoint) (api.Endpoint, error)
	Delete(containerID, ifName string) error
	Get(containerID, ifName string) (api.Endpoint, error)
	List() ([]api.Endpoint, error)
	Len() int
}

// HealthFunc reports whether the datapath is ready (nil) or why not.
type HealthFunc func() error

// Handler returns the API's http.Handler.
func Handler(eps Endpoints, bpfRoot string, health HealthFunc, log logrus.FieldLogger) http.Handler {
	h := &handler{eps: eps, bpfRoot: bpfRoot, health: health, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/healthz", h.healthz)
	mux.HandleFunc("GET /v1/endpoints", h.list)
	mux.HandleFunc("GET /v1/endpoints/{containerID}/{ifName}", h.get)
	mux.HandleFunc("PUT /v1/endpoints/{containerID}/{ifName}", h.put)
	mux.HandleFunc("DELETE /v1/endpoints/{containerID}/{ifName}", h.delete)
	return mux
}

type handler struct {
	eps     Endpoints
	bpfRoot string
	health  HealthFunc
	log     logrus.FieldLogger
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	if h.health != nil {
		if err := h.health(); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", BPFRoot: h.bpfRoot, Endpoints: h.eps.Len()})
}

func (h *handler) list(w http.ResponseWriter, _ *http.Request) {
	eps, err := h.eps.List()
	if err != nil {
		h.fail(w, "list endpoints", err)
		return
	}
	writeJSON(w, http.StatusOK, eps)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	ep, err := h.eps.Get(r.PathValue("containerID"), r.PathValue("ifName"))
	if err != nil {
		h.fail(w, "get endpoint", err)
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

func (h *handler) put(w http.ResponseWriter, r *http.Request) {
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

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
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

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("request body is empty")
		}
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

// fail maps an error to its status and answers with it.
func (h *handler) fail(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, endpointmgr.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, endpointmgr.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, endpointmgr.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, datapath.ErrMapFull):
		h.log.WithError(err).Error("Endpoint map is full: " + what + " failed")
		writeError(w, http.StatusInternalServerError, "endpoint map is full: "+err.Error())
	case errors.Is(err, endpointmgr.ErrNoFreeID):
		h.log.WithError(err).Error(what + " failed")
		writeError(w, http.StatusInternalServerError, "no free endpoint id: "+err.Error())
	default:
		h.log.WithError(err).Error(what + " failed")
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}
