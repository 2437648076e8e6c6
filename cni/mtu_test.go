package cni

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAgent serves handler on <runDir>/agent.sock and counts requests to
// /v1/config.
func fakeAgent(t *testing.T, runDir string, handler http.HandlerFunc) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	ln, err := net.Listen("unix", filepath.Join(runDir, "agent.sock"))
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/config" {
			n.Add(1)
		}
		handler(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &n
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/config" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

func TestPodMTU(t *testing.T) {
	tests := []struct {
		name     string
		confMTU  int
		agent    http.HandlerFunc // nil: no agent listening
		want     int
		from     string
		requests int32
	}{
		{name: "agent's pod MTU", agent: answer(http.StatusOK, `{"podMTU":1450}`), want: 1450, from: "agent", requests: 1},
		{name: "explicit mtu wins without asking", confMTU: 9000, agent: answer(http.StatusOK, `{"podMTU":1450}`), want: 9000, from: "network config"},
		{name: "agent without the route", agent: answer(http.StatusNotFound, `{"error":"not found"}`), want: DefaultMTU, from: "default", requests: 1},
		{name: "agent error", agent: answer(http.StatusInternalServerError, `{"error":"boom"}`), want: DefaultMTU, from: "default", requests: 1},
		{name: "agent says nothing about the MTU", agent: answer(http.StatusOK, `{}`), want: DefaultMTU, from: "default", requests: 1},
		{name: "agent's MTU out of range", agent: answer(http.StatusOK, `{"podMTU":70000}`), want: DefaultMTU, from: "default", requests: 1},
		{name: "agent unreachable", want: DefaultMTU, from: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runDir := t.TempDir()
			var requests *atomic.Int32
			if tt.agent != nil {
				requests = fakeAgent(t, runDir, tt.agent)
			}
			log, hook := logtest.NewNullLogger()
			c := &command{conf: &NetConf{RunDir: runDir, MTU: tt.confMTU}, log: log}
			mtu, from := c.podMTU(context.Background())
			assert.Equal(t, tt.want, mtu)
			assert.Equal(t, tt.from, from)
			if requests != nil {
				assert.Equal(t, tt.requests, requests.Load(), "requests to /v1/config")
			}
			if tt.from == "default" {
				require.NotNil(t, hook.LastEntry())
				assert.Contains(t, hook.LastEntry().Message, "gave no pod MTU, using 1500")
			}
		})
	}
}
