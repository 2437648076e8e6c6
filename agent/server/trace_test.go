package server_test

import (
	"errors"
	"net/http"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/server"
)

// tracer answers fixed values (the agent's tracer is tested against real
// traffic in test/integration): only the route and its errors are at stake.
type tracer struct{}

func (tracer) Trace(req api.TraceRequest) (api.TraceResult, error) {
	switch req.Src.Pod {
	case "x/unknown":
		return api.TraceResult{}, server.BadRequest{Err: errors.New("no pod x/unknown is known to the agent")}
	case "x/broken":
		return api.TraceResult{}, errors.New("lookup sluice_policy_v1: boom")
	}
	return api.TraceResult{Src: api.TraceEnd{Name: req.Src.Pod, Identity: 300}, Protocol: req.Protocol, Port: req.Port, Paths: []api.TracePath{}}, nil
}

func TestTraceRoute(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	h := server.Handler(server.Config{Tracer: tracer{}, Log: log})
	for _, tt := range []struct {
		method, body string
		status       int
		want         string
	}{
		{"POST", `{"src":{"pod":"x/a"},"dst":{"pod":"x/b"},"protocol":"TCP","port":80}`, 200,
			`{"src":{"name":"x/a","identity":300},"protocol":"TCP","port":80,"paths":[]}` + "\n"},
		{"POST", `{"src":{"pod":"x/unknown"},"dst":{"pod":"x/b"},"port":80}`, 400, `{"error":"no pod x/unknown is known to the agent"}` + "\n"},
		{"POST", `{"src":{"pod":"x/broken"},"dst":{"pod":"x/b"},"port":80}`, 500, `{"error":"trace: lookup sluice_policy_v1: boom"}` + "\n"},
		{"POST", `{`, 400, ""},
		{"GET", "", 405, ""},
	} {
		status, body := doRaw(t, h, tt.method, "/v1/policy/trace", tt.body)
		assert.Equal(t, tt.status, status, "%s %s: %s", tt.method, tt.body, body)
		if tt.want != "" {
			assert.Equal(t, tt.want, body)
		}
	}
	status, _ := doRaw(t, server.Handler(server.Config{Log: log}), http.MethodPost, "/v1/policy/trace", "{}")
	assert.Equal(t, http.StatusNotFound, status, "no tracer, no route")
}
