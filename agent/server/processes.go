package server

import (
	"net/http"

	"github.com/sluicenet/sluice/agent/api"
)

// Processes is what the server needs from the process cache.
type Processes interface {
	// List returns the processes the cache holds.
	List() []*api.Process
	// Get returns a process and its ancestors (parent first), or false
	// when the cache does not hold it.
	Get(execID string) (*api.Process, []*api.Process, bool)
}

func listProcesses(p Processes) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		out := p.List()
		if out == nil {
			out = []*api.Process{}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func getProcess(p Processes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("execID")
		proc, ancestors, ok := p.Get(id)
		if !ok {
			writeError(w, http.StatusNotFound, "process "+id+" not found")
			return
		}
		writeJSON(w, http.StatusOK, api.ProcessDetail{Process: proc, Ancestors: ancestors})
	}
}
