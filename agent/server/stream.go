package server

import (
	"encoding/json"
	"net/http"
	"net/url"
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

// Events is what the server needs from the process event hub.
type Events interface {
	// History returns the kept events the filter selects.
	History(f api.EventFilter) []*api.ProcessEvent
	// Follow returns the history and a channel of every new event until
	// cancel is called.
	Follow(f api.EventFilter, buffer int) (history []*api.ProcessEvent, ch <-chan *api.ProcessEvent, cancel func())
}

// source is a stream of recent items with followers, selected by filters
// of type F (Flows, Events).
type source[F any, T any] interface {
	History(f F) []T
	Follow(f F, buffer int) (history []T, ch <-chan T, cancel func())
}

// filter selects items of type T (api.FlowFilter, api.EventFilter).
type filter[T any] interface {
	Match(T) bool
}

func serveFlows(o Flows) http.HandlerFunc {
	return serveStream(source[api.FlowFilter, api.Flow](o), api.ParseFlowFilter,
		func(f api.FlowFilter) bool { return f.Follow })
}

func serveEvents(e Events) http.HandlerFunc {
	return serveStream(source[api.EventFilter, *api.ProcessEvent](e), api.ParseEventFilter,
		func(f api.EventFilter) bool { return f.Follow })
}

// serveStream streams items as NDJSON: the history the filter selects, then
// when follow says so every new matching item until the client goes away.
func serveStream[F filter[T], T any](src source[F, T], parse func(url.Values, time.Time) (F, error), follow func(F) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := parse(r.URL.Query(), time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		if !follow(f) {
			for _, v := range src.History(f) {
				if enc.Encode(v) != nil {
					return
				}
			}
			return
		}
		followStream(w, r, enc, src, f)
	}
}

// followStream writes the history and then every new item matching f,
// flushing after each, until the client goes away.
func followStream[F filter[T], T any](w http.ResponseWriter, r *http.Request, enc *json.Encoder, src source[F, T], f F) {
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	hist, ch, cancel := src.Follow(f, 1024)
	defer cancel()
	w.WriteHeader(http.StatusOK) // before the history: a body write would send 200 itself
	for _, v := range hist {
		if enc.Encode(v) != nil {
			return
		}
	}
	flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case v := <-ch:
			if !f.Match(v) {
				continue
			}
			if enc.Encode(v) != nil {
				return
			}
			flush()
		}
	}
}
