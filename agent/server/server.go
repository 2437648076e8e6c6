// Package server serves the agent's local API (see agent/api) over HTTP on a
// unix socket. Every route of the local API is registered here, in Handler,
// from what the managers expose: the endpoint manager (endpoints, health),
// the service manager (services, LB maps, conntrack), the policy and
// identity managers, the policy tracer, the flow observer, the process event hub and process
// cache of the process sensor, and the tracing policy manager. The health probes and /metrics
// are a separate TCP listener, served by agent/daemon.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// HealthFunc reports whether the datapath is ready (nil) or why not.
type HealthFunc func() error

// Config names what the local API serves. A part left nil has no routes,
// so a test serves only what it needs (and, like an agent that predates a
// route, answers 404 for the rest).
type Config struct {
	// Endpoints serves /v1/endpoints and, with BPFRoot and Health,
	// /v1/healthz.
	Endpoints Endpoints
	BPFRoot   string
	Health    HealthFunc
	// Tracing adds the process sensor's state to /v1/healthz (nil: off).
	Tracing func() *api.TracingStatus
	// Agent is GET /v1/config: the settings sluice-cni applies to the pods
	// it wires, fixed for the agent's lifetime.
	Agent *api.AgentConfig
	// Services serves /v1/services, /v1/bpf/lb and /v1/bpf/ct.
	Services Services
	// Policies serves /v1/policy/status and, with Endpoints,
	// /v1/policy/endpoint/{containerID}/{ifName}.
	Policies Policies
	// Status serves GET /v1/status.
	Status func() api.Status
	// Tracer serves POST /v1/policy/trace.
	Tracer Tracer
	// Identities serves /v1/identities.
	Identities Identities
	// Flows serves /v1/flows.
	Flows Flows
	// Events serves /v1/events.
	Events Events
	// Processes serves /v1/processes and /v1/processes/{execID}.
	Processes Processes
	// TracingPolicies serves /v1/tracingpolicies.
	TracingPolicies TracingPolicies
	// TracingRules serves /v1/tracingrules.
	TracingRules TracingRules
	Log          logrus.FieldLogger
}

// Handler returns the local API's http.Handler: every route, in one mux.
func Handler(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	mux := http.NewServeMux()
	if cfg.Endpoints != nil {
		h := &endpointHandler{eps: cfg.Endpoints, bpfRoot: cfg.BPFRoot, health: cfg.Health, tracing: cfg.Tracing, log: cfg.Log}
		mux.HandleFunc("GET /v1/healthz", h.healthz)
		mux.HandleFunc("GET /v1/endpoints", h.list)
		mux.HandleFunc("GET /v1/endpoints/{containerID}/{ifName}", h.get)
		mux.HandleFunc("PUT /v1/endpoints/{containerID}/{ifName}", h.put)
		mux.HandleFunc("DELETE /v1/endpoints/{containerID}/{ifName}", h.delete)
	}
	if cfg.Agent != nil {
		agent := *cfg.Agent
		mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, agent)
		})
	}
	if s := cfg.Services; s != nil {
		mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Services()) })
		mux.HandleFunc("GET /v1/bpf/lb", serveDump(s.LBMaps))
		mux.HandleFunc("GET /v1/bpf/ct", serveDump(s.Conntrack))
		mux.HandleFunc("GET /v1/bpf/lb/maglev", func(w http.ResponseWriter, r *http.Request) {
			svc := r.URL.Query().Get("service")
			if svc == "" {
				writeError(w, http.StatusBadRequest, "service query parameter missing")
				return
			}
			out, err := s.MaglevTables(svc)
			if err != nil {
				writeError(w, http.StatusNotFound, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, out)
		})
	}
	if p := cfg.Policies; p != nil {
		mux.HandleFunc("GET /v1/policy/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Status()) })
		if cfg.Endpoints != nil {
			mux.HandleFunc("GET /v1/policy/endpoint/{containerID}/{ifName}", endpointPolicy(cfg.Endpoints, p))
		}
	}
	if status := cfg.Status; status != nil {
		mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, status()) })
	}
	if cfg.Tracer != nil {
		mux.HandleFunc("POST /v1/policy/trace", serveTrace(cfg.Tracer))
	}
	if ids := cfg.Identities; ids != nil {
		mux.HandleFunc("GET /v1/identities", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, ids.Identities()) })
	}
	if cfg.Flows != nil {
		mux.HandleFunc("GET /v1/flows", serveFlows(cfg.Flows))
	}
	if cfg.Events != nil {
		mux.HandleFunc("GET /v1/events", serveEvents(cfg.Events))
	}
	if p := cfg.Processes; p != nil {
		mux.HandleFunc("GET /v1/processes", listProcesses(p))
		mux.HandleFunc("GET /v1/processes/{execID}", getProcess(p))
	}
	if tr := cfg.TracingRules; tr != nil {
		routeTracingRules(mux, tr)
	}
	if tp := cfg.TracingPolicies; tp != nil {
		routeTracingPolicies(mux, tp)
	}
	return mux
}

// serveDump answers with what dump returns, or its error as a 500.
func serveDump[T any](dump func() (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		out, err := dump()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}
