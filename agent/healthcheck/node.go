package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultNodeAddr is kube-proxy's default --healthz-bind-address.
const DefaultNodeAddr = "0.0.0.0:10256"

// ProxyState is the service proxy's state the node health check reports.
type ProxyState struct {
	// LastUpdated is when the service maps last held every change
	// (zero: never).
	LastUpdated time.Time
	// Healthy is false while a change has waited longer than the proxy's
	// health timeout to be programmed.
	Healthy bool
	// NodeEligible is false when this node is being deleted or is tainted
	// ToBeDeletedByClusterAutoscaler: load balancers should drain it.
	NodeEligible bool
}

// proxierHealth and proxyHealth are kube-proxy's JSON (ProxyHealth).
type proxierHealth struct {
	LastUpdated time.Time `json:"lastUpdated"`
	Healthy     bool      `json:"healthy"`
}

type proxyHealth struct {
	LastUpdated  time.Time                `json:"lastUpdated"`
	CurrentTime  time.Time                `json:"currentTime"`
	NodeEligible *bool                    `json:"nodeEligible,omitempty"`
	Healthy      bool                     `json:"healthy"`
	Status       map[string]proxierHealth `json:"status,omitempty"`
}

// NodeHandler serves kube-proxy's node health: /healthz (200 when the
// proxy is healthy and the node eligible, else 503) and /livez (the proxy's
// health alone), with kube-proxy's JSON and headers. A healthy answer
// reports the current time as lastUpdated, as kube-proxy does.
func NodeHandler(state func() ProxyState, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	serve := func(withNode bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			s := state()
			t := now()
			h := proxyHealth{
				LastUpdated: s.LastUpdated, CurrentTime: t, Healthy: s.Healthy,
				Status: map[string]proxierHealth{},
			}
			if !s.LastUpdated.IsZero() {
				h.Status["IPv4"] = proxierHealth{LastUpdated: s.LastUpdated, Healthy: s.Healthy}
			}
			ok := s.Healthy
			if withNode {
				h.NodeEligible = &s.NodeEligible
				ok = ok && s.NodeEligible
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			if ok {
				h.LastUpdated = t
				w.WriteHeader(http.StatusOK)
			} else {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			b, _ := json.Marshal(h)
			w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", serve(true))
	mux.Handle("/livez", serve(false))
	return mux
}

// nodeRetry is how long ServeNode waits before listening again after a
// failure (kube-proxy retries every 5s too).
const nodeRetry = 5 * time.Second

// ServeNode serves h on addr until ctx ends. A failure to listen (the port
// taken) is logged and retried; it never returns an error.
func ServeNode(ctx context.Context, addr string, h http.Handler, log logrus.FieldLogger) {
	for {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			log.WithField("address", addr).Info("Serving the node's proxy health (kube-proxy /healthz, /livez)")
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				srv.Close()
			}()
			err = srv.Serve(ln)
			if ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.WithError(err).WithField("address", addr).Error("Node proxy health not served; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(nodeRetry):
		}
	}
}
