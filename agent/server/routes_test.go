package server_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/endpointmgr/endpointtest"
	"github.com/sluicenet/sluice/agent/flows"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/agent/state"
)

// services, policies and identities answer fixed values: the managers
// compute them from BPF maps and resolvers (tested in their packages and
// the integration tests); here only the routes and the encoding are at
// stake.
type services struct{ dumpErr error }

func (services) Services() []api.Service {
	return []api.Service{{Name: "default/web", Kind: "ClusterIP", Frontend: "10.96.0.10:80", Protocol: "TCP",
		Backends: []api.ServiceBackend{{ID: 1, Address: "10.244.1.2:8080", State: "active", Local: true, Pod: "default/web"}}}}
}

func (s services) LBMaps() (api.LBMaps, error) {
	if s.dumpErr != nil {
		return api.LBMaps{}, s.dumpErr
	}
	return api.LBMaps{Services: []api.LBMapService{{Frontend: "10.96.0.10:80", Protocol: "TCP", RevNATID: 1, BackendIDs: []uint32{1}}},
		Backends: []api.LBMapBackend{}, RevNAT: []api.LBMapRevNAT{}}, nil
}

func (s services) Conntrack() ([]api.CTEntry, error) {
	if s.dumpErr != nil {
		return nil, s.dumpErr
	}
	return []api.CTEntry{}, nil
}

func (s services) MaglevTables(service string) ([]api.MaglevTable, error) {
	if service != "default/web" {
		return nil, errors.New(`no service "` + service + `"`)
	}
	return []api.MaglevTable{{Service: "default/web", Frontend: "10.96.0.10:80/TCP", RevNATID: 1, Size: 3,
		Backends: []api.MaglevBackend{{ID: 1, Address: "10.244.1.2:8080", Entries: 3, Share: 1}}, Entries: []uint32{1, 1, 1}}}, nil
}

type policies struct{}

func (policies) Status() []api.PolicyStatus {
	return []api.PolicyStatus{{Kind: "NetworkPolicy", Namespace: "default", Name: "deny", Accepted: true, Endpoints: 1}}
}

func (policies) EndpointPolicy(epID uint16) (api.EndpointPolicy, bool) {
	if epID != 1 {
		return api.EndpointPolicy{}, false
	}
	return api.EndpointPolicy{EndpointID: 1, Identity: 1234, Labels: []string{}, SelectedBy: []string{}, Rules: []api.PolicyRule{}}, true
}

type identities struct{}

func (identities) Identities() []api.Identity {
	return []api.Identity{{ID: 1, Name: "host", Labels: []string{"reserved:host"}}}
}

func TestRoutes(t *testing.T) {
	dir := t.TempDir()
	store, err := state.New(filepath.Join(dir, "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	epDP := endpointtest.New()
	eps := endpointmgr.New(epDP, epDP, store, log)
	_, err = eps.Put(sample("c1", "10.0.0.1"))
	require.NoError(t, err)
	_, err = eps.Put(sample("c2", "10.0.0.2"))
	require.NoError(t, err)
	obs := flows.New(8, nil, nil, log)
	obs.Add(api.Flow{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Verdict: "DROPPED", Direction: "ingress", Protocol: "TCP",
		Source: "10.0.0.9:1234", Destination: "10.0.0.1:80"})
	cfg := server.Config{
		Endpoints: eps, BPFRoot: "/bpf/root", Agent: &api.AgentConfig{PodMTU: 1450},
		Services: services{}, Policies: policies{}, Identities: identities{}, Flows: obs, Log: log,
	}
	h := server.Handler(cfg)

	tests := []struct {
		method, path string
		status       int
		body         string // exact, "" to skip
	}{
		{"GET", "/v1/healthz", 200, `{"status":"ok","bpfRoot":"/bpf/root","endpoints":2}` + "\n"},
		{"GET", "/v1/config", 200, `{"podMTU":1450}` + "\n"},
		{"GET", "/v1/services", 200, `[{"name":"default/web","kind":"ClusterIP","frontend":"10.96.0.10:80","protocol":"TCP","backends":[{"id":1,"address":"10.244.1.2:8080","state":"active","local":true,"pod":"default/web"}]}]` + "\n"},
		{"GET", "/v1/bpf/lb", 200, `{"services":[{"frontend":"10.96.0.10:80","protocol":"TCP","revNATID":1,"backendIDs":[1]}],"backends":[],"revNAT":[]}` + "\n"},
		{"GET", "/v1/bpf/ct", 200, "[]\n"},
		{"GET", "/v1/bpf/lb/maglev?service=default%2Fweb", 200, `[{"service":"default/web","frontend":"10.96.0.10:80/TCP","revNATID":1,"size":3,"backends":[{"id":1,"address":"10.244.1.2:8080","entries":3,"share":1}],"entries":[1,1,1]}]` + "\n"},
		{"GET", "/v1/bpf/lb/maglev?service=default%2Fnope", 404, `{"error":"no service \"default/nope\""}` + "\n"},
		{"GET", "/v1/bpf/lb/maglev", 400, ""},
		{"GET", "/v1/policy/status", 200, `[{"kind":"NetworkPolicy","namespace":"default","name":"deny","accepted":true,"endpoints":1}]` + "\n"},
		{"GET", "/v1/policy/endpoint/c1/eth0", 200, `{"containerID":"c1","ifName":"eth0","endpointID":1,"pod":"default/web","identity":1234,"labels":[],"ingressEnforced":false,"egressEnforced":false,"audit":false,"selectedBy":[],"rules":[],"mapEntries":0}` + "\n"},
		{"GET", "/v1/policy/endpoint/c2/eth0", 503, `{"error":"endpoint c2/eth0 has no resolved policy yet"}` + "\n"},
		{"GET", "/v1/policy/endpoint/nope/eth0", 404, ""},
		{"GET", "/v1/identities", 200, `[{"id":1,"name":"host","labels":["reserved:host"],"refs":0}]` + "\n"},
		{"GET", "/v1/flows", 200, `{"time":"2026-01-02T03:04:05Z","verdict":"DROPPED","direction":"ingress","protocol":"TCP","source":"10.0.0.9:1234","destination":"10.0.0.1:80","srcIdentity":0,"dstIdentity":0,"endpointID":0,"dstPort":0}` + "\n"},
		{"GET", "/v1/flows?last=-1", 400, ""},
		{"GET", "/v1/endpoints/nope/eth0", 404, ""},
		{"GET", "/v1/nope", 404, "404 page not found\n"},
		{"PUT", "/v1/config", 405, ""},
		{"POST", "/v1/endpoints", 405, ""},
	}
	for _, tt := range tests {
		status, body := doRaw(t, h, tt.method, tt.path, "")
		assert.Equal(t, tt.status, status, "%s %s: %s", tt.method, tt.path, body)
		if tt.body != "" {
			assert.Equal(t, tt.body, body, "%s %s", tt.method, tt.path)
		}
	}

	// A failed dump is a 500 with the error as JSON.
	cfg.Services = services{dumpErr: errors.New("dump services: boom")}
	h = server.Handler(cfg)
	for _, path := range []string{"/v1/bpf/lb", "/v1/bpf/ct"} {
		status, body := doRaw(t, h, http.MethodGet, path, "")
		assert.Equal(t, http.StatusInternalServerError, status)
		assert.Equal(t, `{"error":"dump services: boom"}`+"\n", body)
	}
}

func TestHealthzNamesTracingHooks(t *testing.T) {
	dir := t.TempDir()
	store, err := state.New(filepath.Join(dir, "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	epDP := endpointtest.New()
	h := server.Handler(server.Config{
		Endpoints: endpointmgr.New(epDP, epDP, store, log), BPFRoot: "/b", Log: log,
		Tracing: func() *api.TracingStatus {
			return &api.TracingStatus{Hooks: []string{"tp_btf/sched_process_exec"}, Lost: 7}
		},
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/healthz", nil))
	assert.Equal(t, 200, rec.Code)
	assert.JSONEq(t, `{"status":"ok","bpfRoot":"/b","endpoints":0,"tracing":{"hooks":["tp_btf/sched_process_exec"],"lost":7}}`, rec.Body.String())
}
