package server

import (
	"net/http"

	"github.com/sluicenet/sluice/agent/api"
)

// RegisterConfig adds GET /v1/config to mux: the agent's settings for the
// pods sluice-cni wires, fixed for the agent's lifetime.
func RegisterConfig(mux *http.ServeMux, cfg api.AgentConfig) {
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, cfg)
	})
}
