package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/reconcile"
)

// Config tunes the manager.
type Config struct {
	// Resync is the period of the full sync (default 30s): ports that
	// could not be bound are tried again at the latest then.
	Resync time.Duration
	// Listen opens a health-check port; nil listens on TCP port on every
	// address of the calling process's network namespace (kube-proxy's
	// default: no nodePortAddresses).
	Listen func(port uint16) (net.Listener, error)
	// ProxyHealthy reports the service proxy's health for the answers;
	// nil: always healthy.
	ProxyHealthy func() bool
	// ListenFailed, when set, hears of each new reason a Service's port
	// could not be opened (not of every retry with the same error): the
	// agent records it as a Kubernetes Event on the Service, as
	// kube-proxy does.
	ListenFailed func(svc types.NamespacedName, port uint16, err error)
}

// Status is one health-check port as the manager serves it.
type Status struct {
	Namespace, Name string
	Port            uint16
	LocalEndpoints  int
	// Listening: the port is open. Error, when not listening, says why.
	Listening bool
	Error     string
}

// Manager owns the health-check node port listeners.
type Manager struct {
	cfg     Config
	log     logrus.FieldLogger
	trigger chan struct{}
	loop    reconcile.Status

	mu      sync.RWMutex
	desired map[types.NamespacedName]translate.HealthCheck
	open    map[types.NamespacedName]*instance // the sync loop's; read under mu
	failed  map[types.NamespacedName]failure

	listenErrors prometheus.Counter
	ports        *prometheus.GaugeVec
}

// instance is one open health-check port.
type instance struct {
	port uint16
	srv  *http.Server
}

// failure is a port that could not be opened.
type failure struct {
	port uint16
	err  error
}

// New returns a manager; call Set with the desired ports, and Run.
func New(cfg Config, log logrus.FieldLogger) *Manager {
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Listen == nil {
		cfg.Listen = func(port uint16) (net.Listener, error) {
			// "tcp" on the wildcard: IPv4 and IPv6, as kube-proxy.
			return net.Listen("tcp", ":"+strconv.Itoa(int(port)))
		}
	}
	if cfg.ProxyHealthy == nil {
		cfg.ProxyHealthy = func() bool { return true }
	}
	return &Manager{
		cfg: cfg, log: log, trigger: make(chan struct{}, 1),
		desired: map[types.NamespacedName]translate.HealthCheck{},
		open:    map[types.NamespacedName]*instance{},
		failed:  map[types.NamespacedName]failure{},
		listenErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_healthcheck_listen_errors_total",
			Help: "Attempts to open a Service's health-check node port that failed (the port taken, for example).",
		}),
		ports: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_healthcheck_ports",
			Help: "Health-check node ports of LoadBalancer Services with externalTrafficPolicy Local, by state (listening or failed).",
		}, []string{"state"}),
	}
}

// Collectors returns the manager's metrics.
func (m *Manager) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.listenErrors, m.ports}
}

// Set replaces the desired health checks. New counts are answered at once;
// listeners open, move and close with the next sync.
func (m *Manager) Set(hcs []translate.HealthCheck) {
	desired := make(map[types.NamespacedName]translate.HealthCheck, len(hcs))
	for _, hc := range hcs {
		desired[types.NamespacedName{Namespace: hc.Namespace, Name: hc.Name}] = hc
	}
	m.mu.Lock()
	changed := len(desired) != len(m.desired)
	for n, hc := range desired {
		if old, ok := m.desired[n]; !ok || old.Port != hc.Port {
			changed = true
		}
	}
	m.desired = desired
	m.mu.Unlock()
	if changed {
		select {
		case m.trigger <- struct{}{}:
		default:
		}
	}
}

// answer is what the health-check port of Service n answers now.
func (m *Manager) answer(n types.NamespacedName) (Answer, bool) {
	m.mu.RLock()
	hc, ok := m.desired[n]
	m.mu.RUnlock()
	if !ok {
		return Answer{}, false
	}
	return Answer{Namespace: n.Namespace, Name: n.Name, LocalEndpoints: hc.LocalEndpoints, ProxyHealthy: m.cfg.ProxyHealthy()}, true
}

// Sync makes the open listeners those desired: it closes the ports of
// Services gone or moved, and opens the missing ones. It returns the errors
// of ports it could not open (they are tried again on the next sync).
func (m *Manager) Sync() error {
	m.mu.RLock()
	desired := make(map[types.NamespacedName]uint16, len(m.desired))
	for n, hc := range m.desired {
		desired[n] = hc.Port
	}
	m.mu.RUnlock()

	var errs []error
	failed := map[types.NamespacedName]failure{}
	for n, inst := range m.open {
		if port, ok := desired[n]; ok && port == inst.port {
			continue
		}
		inst.srv.Close()
		m.mu.Lock()
		delete(m.open, n)
		m.mu.Unlock()
		m.log.WithFields(logrus.Fields{"service": n.String(), "port": inst.port}).Info("Health-check node port closed")
	}
	for n, port := range desired {
		if _, ok := m.open[n]; ok {
			continue
		}
		ln, lerr := m.cfg.Listen(port)
		if lerr != nil {
			m.listenErrors.Inc()
			err := fmt.Errorf("health-check node port %d of %s: %w", port, n, lerr)
			errs = append(errs, err)
			if prev, ok := m.failed[n]; !ok || prev.port != port || prev.err.Error() != err.Error() {
				m.log.WithError(err).WithFields(logrus.Fields{"service": n.String(), "port": port}).Error("Health-check node port cannot be opened; retrying")
				if m.cfg.ListenFailed != nil {
					m.cfg.ListenFailed(n, port, lerr)
				}
			}
			failed[n] = failure{port: port, err: err}
			continue
		}
		srv := &http.Server{Handler: serviceHandler{answer: func() (Answer, bool) { return m.answer(n) }}, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		m.mu.Lock()
		m.open[n] = &instance{port: port, srv: srv}
		m.mu.Unlock()
		m.log.WithFields(logrus.Fields{"service": n.String(), "port": port}).Info("Health-check node port open")
	}
	m.mu.Lock()
	m.failed = failed
	listening := len(m.open)
	m.mu.Unlock()
	m.ports.WithLabelValues("listening").Set(float64(listening))
	m.ports.WithLabelValues("failed").Set(float64(len(failed)))
	return errors.Join(errs...)
}

// Run syncs on every change of ports, resyncs on a timer and retries ports
// that could not be opened with backoff, until ctx ends; then it closes
// every listener.
func (m *Manager) Run(ctx context.Context) {
	reconcile.Loop(ctx, reconcile.Config{Trigger: m.trigger, Resync: m.cfg.Resync, Status: &m.loop}, func(bool) error { return m.Sync() })
	m.closeAll()
}

func (m *Manager) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, inst := range m.open {
		inst.srv.Close()
		delete(m.open, n)
	}
}

// LoopStatus returns the outcomes of the owner loop's syncs.
func (m *Manager) LoopStatus() reconcile.LoopStatus { return m.loop.Get() }

// Status returns every desired health-check port with its state, sorted by
// namespace and name.
func (m *Manager) Status() []Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Status, 0, len(m.desired))
	for n, hc := range m.desired {
		s := Status{Namespace: n.Namespace, Name: n.Name, Port: hc.Port, LocalEndpoints: hc.LocalEndpoints}
		switch inst, ok := m.open[n]; {
		case ok && inst.port == hc.Port:
			s.Listening = true
		case m.failed[n].err != nil && m.failed[n].port == hc.Port:
			s.Error = m.failed[n].err.Error()
		default:
			s.Error = "not open yet"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
