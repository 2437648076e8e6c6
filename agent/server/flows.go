package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

// Flows is what the server needs from the flow observer.
type Flows interface {
	// History returns the kept flows the filter selects.
	History(f api.FlowFilter) []api.Flow
	// Follow returns the history and a channel of every new flow until
	// cancel is called.
	Follow(f api.FlowFilter, buffer int) (history []api.Flow, ch <-chan api.Flow, cancel func())
}

// serveFlows streams flows as NDJSON: the history the filter selects, then
// with follow=true every new matching flow until the client goes away.
func serveFlows(o Flows) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := api.ParseFlowFilter(r.URL.Query(), time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		if !f.Follow {
			for _, fl := range o.History(f) {
				if enc.Encode(fl) != nil {
					return
				}
			}
			return
		}
		followFlows(w, r, enc, o, f)
	}
}

// followFlows writes the history and then every new flow matching f,
// flushing after each, until the client goes away.
func followFlows(w http.ResponseWriter, r *http.Request, enc *json.Encoder, o Flows, f api.FlowFilter) {
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
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
