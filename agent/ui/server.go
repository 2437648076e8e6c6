package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

//go:embed static
var static embed.FS

// DefaultAddr is where `sluice ui` serves: loopback only.
const DefaultAddr = "127.0.0.1:12000"

// maxFlows bounds the flows the server keeps for the map.
const maxFlows = 20000

// Server follows the agent's flows and serves the page and its JSON:
//
//	GET /api/graph?<observe filters>     the service map of the kept flows the filters select (Graph)
//	GET /api/flows?<observe filters>     the agent's flows the filters select, newest last (last=200 unless given)
//	GET /api/processes?pod=ns/name       the process events of a pod (last=200 unless given), and whether the sensor is on
type Server struct {
	client *api.Client
	// EventLine formats a process event for the process panel.
	EventLine func(*api.ProcessEvent) string

	mu       sync.Mutex
	flows    []api.Flow // a ring of the last maxFlows flows, oldest first once full
	next     int
	services map[string]string
	local    map[string]bool // the pods of this node
	lastErr  string
}

// NewServer returns a server reading the agent through client.
func NewServer(client *api.Client) *Server {
	return &Server{client: client, services: map[string]string{}, local: map[string]bool{}}
}

// Run follows the agent's flow stream (its history first) and refreshes
// the service list until ctx ends, reconnecting after the agent restarts.
func (s *Server) Run(ctx context.Context) {
	go s.refreshServices(ctx)
	var since time.Time
	for ctx.Err() == nil {
		f := api.FlowFilter{Follow: true, Since: since}
		err := s.client.Flows(ctx, f, func(fl api.Flow) error {
			s.add(fl)
			since = fl.Time.Add(time.Nanosecond)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("flow stream ended")
		}
		s.setErr(err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// refreshServices reads the services and the pods of this node every
// few seconds.
func (s *Server) refreshServices(ctx context.Context) {
	for {
		svcs, err := s.client.ListServices(ctx)
		var eps []api.Endpoint
		if err == nil {
			eps, err = s.client.ListEndpoints(ctx)
		}
		if err == nil {
			local := make(map[string]bool, len(eps))
			for _, ep := range eps {
				if ep.PodName != "" {
					local[ep.PodNamespace+"/"+ep.PodName] = true
				}
			}
			s.mu.Lock()
			s.services, s.local = ServiceFrontends(svcs), local
			s.mu.Unlock()
		} else if ctx.Err() == nil {
			s.setErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
	}
}

func (s *Server) add(fl api.Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = ""
	if len(s.flows) < maxFlows {
		s.flows = append(s.flows, fl)
		return
	}
	s.flows[s.next] = fl
	s.next = (s.next + 1) % maxFlows
}

func (s *Server) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// snapshot returns the kept flows the filter selects (Last: the newest
// N of them), the service frontends, the local pods and the last error.
func (s *Server) snapshot(f api.FlowFilter) ([]api.Flow, map[string]string, map[string]bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Flow
	for i := range s.flows {
		fl := s.flows[(s.next+i)%len(s.flows)]
		if f.Match(fl) {
			out = append(out, fl)
		}
	}
	if f.Last > 0 && len(out) > f.Last {
		out = out[len(out)-f.Last:]
	}
	return out, s.services, s.local, s.lastErr
}

// GraphResponse is the answer of /api/graph.
type GraphResponse struct {
	Graph
	Error string `json:"error,omitempty"` // the last failure to reach the agent
}

// Handler serves the page and the API. It answers only requests that
// name a loopback host, so a web page elsewhere cannot read it through a
// rebound DNS name.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	page, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(page))
	mux.HandleFunc("GET /api/graph", func(w http.ResponseWriter, r *http.Request) {
		f, err := api.ParseFlowFilter(r.URL.Query(), time.Now())
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		flows, svcs, local, lastErr := s.snapshot(f)
		writeJSON(w, GraphResponse{Graph: Build(flows, svcs, local), Error: lastErr})
	})
	mux.HandleFunc("GET /api/flows", s.serveFlows)
	mux.HandleFunc("GET /api/processes", s.serveProcesses)
	return loopbackOnly(mux)
}

// FlowRow is a flow of /api/flows with the decision as `sluice observe`
// prints it.
type FlowRow struct {
	api.Flow
	Decision string `json:"decision"`
}

func (s *Server) serveFlows(w http.ResponseWriter, r *http.Request) {
	f, err := api.ParseFlowFilter(r.URL.Query(), time.Now())
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	f.Follow = false
	if f.Last == 0 {
		f.Last = 200
	}
	rows := []FlowRow{}
	err = s.client.Flows(r.Context(), f, func(fl api.Flow) error {
		rows = append(rows, FlowRow{Flow: fl, Decision: api.Decision(fl.Verdict, fl.Rule)})
		return nil
	})
	if err != nil {
		httpError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, rows)
}

// ProcessResponse is the answer of /api/processes.
type ProcessResponse struct {
	// Sensor says whether the agent runs the process sensor.
	Sensor bool           `json:"sensor"`
	Events []ProcessEvent `json:"events"`
}

// ProcessEvent is one process event of a pod, as a line.
type ProcessEvent struct {
	Time time.Time `json:"time"`
	Line string    `json:"line"`
}

func (s *Server) serveProcesses(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pod := q.Get("pod")
	if pod == "" {
		httpError(w, http.StatusBadRequest, errors.New("pod is required (namespace/name)"))
		return
	}
	h, err := s.client.Healthz(r.Context())
	if err != nil {
		httpError(w, http.StatusBadGateway, err)
		return
	}
	resp := ProcessResponse{Sensor: h.Tracing != nil, Events: []ProcessEvent{}}
	if !resp.Sensor {
		writeJSON(w, resp)
		return
	}
	f := api.EventFilter{Pod: pod, Last: 200}
	if n, err := strconv.Atoi(q.Get("last")); err == nil && n > 0 {
		f.Last = n
	}
	err = s.client.Events(r.Context(), f, func(ev *api.ProcessEvent) error {
		line := ""
		if s.EventLine != nil {
			line = s.EventLine(ev)
		}
		resp.Events = append(resp.Events, ProcessEvent{Time: ev.Time, Line: line})
		return nil
	})
	if err != nil {
		httpError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, resp)
}

func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			httpError(w, http.StatusForbidden, errors.New("sluice ui answers only on a loopback address"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
}
