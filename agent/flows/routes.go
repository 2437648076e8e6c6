package flows

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

// Register adds GET /v1/flows to mux.
func (o *Observer) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/flows", o.serveFlows)
}

// serveFlows streams flows as NDJSON: the history the filter selects, then
// with follow=true every new matching flow until the client goes away.
func (o *Observer) serveFlows(w http.ResponseWriter, r *http.Request) {
	f, err := api.ParseFlowFilter(r.URL.Query(), time.Now())
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	if !f.Follow {
		for _, fl := range o.History(f) {
			if enc.Encode(fl) != nil {
				return
			}
		}
		return
	}
	hist, ch, cancel := o.Follow(f, 1024)
	defer cancel()
	for _, fl := range hist {
		if enc.Encode(fl) != nil {
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case fl := <-ch:
			if !f.Match(fl) {
				continue
			}
			if enc.Encode(fl) != nil {
				return
			}
			flush()
		}
	}
}
