package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/server"
)

func TestConfig(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "agent.sock")
	mux := server.Handler(server.Config{Agent: &api.AgentConfig{PodMTU: 1450}})
	ln, err := server.Listen(socket)
	require.NoError(t, err)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cfg, err := api.NewClient(socket).Config(context.Background())
	require.NoError(t, err)
	assert.Equal(t, api.AgentConfig{PodMTU: 1450}, cfg)
	status, body := doRaw(t, mux, http.MethodGet, "/v1/config", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"podMTU":1450}`, body)
	status, _ = doRaw(t, mux, http.MethodPut, "/v1/config", "{}")
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}

// An agent that predates /v1/config answers 404: the client says
// ErrNotFound, on which sluice-cni falls back to its default MTU.
func TestConfigUnknownToAnOlderAgent(t *testing.T) {
	f := newFixture(t)
	_, err := f.client.Config(context.Background())
	require.ErrorIs(t, err, api.ErrNotFound)
}
