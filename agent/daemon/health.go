package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// DefaultHealthAddr is where the liveness and readiness probes are served.
const DefaultHealthAddr = "127.0.0.1:9879"

// livenessTimeout bounds the liveness probe's request to the agent's API.
const livenessTimeout = 3 * time.Second

// probeFunc is one probe: nil means healthy, an error says why not.
type probeFunc func(ctx context.Context) error

// healthHandler serves GET /healthz (liveness) and GET /readyz (readiness):
// 200 "ok" when the probe passes, 503 with the reason otherwise.
func healthHandler(live, ready probeFunc) http.Handler {
	mux := http.NewServeMux()
	serve := func(p probeFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := p(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err.Error())
				return
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("GET /healthz", serve(live))
	mux.HandleFunc("GET /readyz", serve(ready))
	return mux
}

// readiness is what /readyz checks, filled in as the agent comes up.
type readiness struct {
	snapshot   atomic.Bool // the state source delivered its first snapshot
	identities atomic.Bool // the identity manager synced once since
	// lastSnapshot is when the state source last delivered a snapshot
	// (unix nanoseconds; 0: never).
	lastSnapshot atomic.Int64
}

// liveness reports whether the agent's API loop answers on its unix socket
// (any HTTP answer counts: the process and its serve loop are alive).
func (d *Daemon) liveness(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, livenessTimeout)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.cfg.SocketPath())
		},
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/healthz", nil)
	if err != nil {
		return fmt.Errorf("api request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("api loop not answering: %w", err)
	}
	resp.Body.Close()
	return nil
}

// readiness reports whether the node is programmed: datapath loaded,
// programs pinned, the state source synced and its first snapshot applied
// to the service, identity and policy maps.
func (d *Daemon) readiness(context.Context) error {
	if d.dp == nil {
		return errors.New("datapath not loaded")
	}
	if err := d.health(); err != nil {
		return err
	}
	if d.k8s != nil && !d.k8s.Synced() {
		return errors.New("kubernetes caches not synced")
	}
	if d.source != nil && !d.ready.snapshot.Load() {
		return errors.New("no state snapshot applied yet")
	}
	if !d.ready.identities.Load() {
		return errors.New("identities not synced yet")
	}
	if _, err := d.ids.Errors(); err != nil {
		return fmt.Errorf("identity sync failing: %w", err)
	}
	if err := d.servicesProgrammed(); err != nil {
		return err
	}
	if _, err := d.pols.Errors(); err != nil {
		return fmt.Errorf("policy sync failing: %w", err)
	}
	return nil
}

// servicesProgrammed reports whether every desired service frontend is in
// the load-balancing maps (translated from the current objects, and written).
func (d *Daemon) servicesProgrammed() error {
	desired, _ := d.svcs.Desired()
	have := make(map[string]bool)
	for _, s := range d.svcs.Services() {
		if s.Error == "" {
			have[s.Name+" "+s.Frontend+" "+s.Protocol] = true
		}
	}
	missing := 0
	for _, s := range desired {
		fe := s.Name.String() + " " + netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port).String() + " " + s.Frontend.Proto.String()
		if !have[fe] {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d service frontends not programmed yet", missing, len(desired))
	}
	return nil
}

// setupHealth listens for the probes (when HealthAddr is set) and tracks
// the identity manager's first sync.
func (d *Daemon) setupHealth() error {
	d.ids.OnSynced(func() {
		if d.source == nil || d.ready.snapshot.Load() {
			d.ready.identities.Store(true)
		}
	})
	if d.cfg.HealthAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.HealthAddr)
	if err != nil {
		return fmt.Errorf("listen for health probes on %s: %w", d.cfg.HealthAddr, err)
	}
	d.healthLn = ln
	return nil
}

// serveHealth serves the probes on ln until ctx ends.
func (d *Daemon) serveHealth(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: healthHandler(d.liveness, d.readiness), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve health probes: %w", err)
	}
	return nil
}
