package servicemgr

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/ctmap"
)

// Conntrack is the conntrack table the manager dumps and collects
// (*ctmap.Map).
type Conntrack interface {
	Entries() ([]ctmap.Entry, error)
	GC() (int, error)
	ServiceBackend(proto uint8, src, frontend netip.AddrPort) (uint32, bool)
}

// Endpoints lists the pods wired on this node.
type Endpoints interface {
	List() ([]api.Endpoint, error)
}

// Objects is the part of the state source the manager consumes.
type Objects struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	// Changes names the objects changed since the previous Objects (the
	// source's Snapshot.Changes); the lists are then sorted by namespace
	// and name, as in a Snapshot. Nil: anything may have changed.
	Changes *source.Changes
}

// Config tunes the manager.
type Config struct {
	NodeName       string
	ResyncInterval time.Duration // full map resync (default 30s)
	CTGCInterval   time.Duration // conntrack garbage collection (default 30s)
	// ServiceProxyName selects the Services this agent handles by their
	// service.kubernetes.io/service-proxy-name label (translate.Input).
	ServiceProxyName string
	// MaglevTableSize is the size of the Maglev tables of the services
	// that pick their backends per packet by Maglev (--lb-algorithm=maglev
	// or their annotation); the datapath must have been loaded with the
	// same size. 0: no service can (LB.NoMaglev says so).
	MaglevTableSize uint32
	// LB are the node's defaults (--lb-mode, --lb-algorithm) and what it
	// cannot do, which Services' annotations are resolved against
	// (translate.LBDefaults).
	LB translate.LBDefaults
}

// Manager owns the load-balancing maps (through its LB sync, lbsync.go).
type Manager struct {
	cfg Config
	log logrus.FieldLogger
	lb  Maps
	ct  Conntrack
	eps Endpoints
	rec *lbSync

	// loop records the owner loop's outcomes (LoopStatus).
	loop reconcile.Status

	mu        sync.Mutex
	objs      Objects
	lastErr   error
	errCount  uint64          // failed syncs
	fullCount uint64          // syncs that found a map full
	lastDiags map[string]bool // diagnostics already logged
	pend      pending         // changes not synced yet
	trigger   chan struct{}

	model *model // the sync loop's; nil until the first sync

	// healthChecks receives the health-check node ports after every sync
	// (OnHealthChecks); nil: nobody serves them.
	healthChecks func([]translate.HealthCheck)
	// queued is when the oldest change not yet programmed came (zero:
	// none); updated when a sync last programmed every change (ProxyState).
	queued, updated time.Time

	// latency observes, for each sync that programmed changes, the time
	// from the oldest change's arrival to its entries being in the maps.
	latency prometheus.Histogram
}

// New adopts the IDs in the maps and returns a manager; call Run.
func New(cfg Config, lbm Maps, ct Conntrack, eps Endpoints, log logrus.FieldLogger) (*Manager, error) {
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.CTGCInterval <= 0 {
		cfg.CTGCInterval = 30 * time.Second
	}
	rec, err := newLBSync(lbm)
	if err != nil {
		return nil, err
	}
	if cfg.MaglevTableSize == 0 && cfg.LB.NoMaglev == "" {
		cfg.LB.NoMaglev = "the programs were loaded without Maglev tables"
	}
	rec.maglevSize, rec.defaults = cfg.MaglevTableSize, cfg.LB
	return &Manager{cfg: cfg, log: log, lb: lbm, ct: ct, eps: eps, rec: rec, trigger: make(chan struct{}, 1),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_service_programming_latency_seconds",
			Help: "Time from a Service, EndpointSlice, Pod or endpoint change reaching the agent to the load-balancing maps holding it.",
			// 1 ms to ~16 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
	}, nil
}

// Collectors returns the manager's metrics.
func (m *Manager) Collectors() []prometheus.Collector { return []prometheus.Collector{m.latency} }

// SetObjects replaces the state source's objects and schedules a sync.
func (m *Manager) SetObjects(o Objects) {
	m.mu.Lock()
	m.objs = o
	m.pend.add(o.Changes)
	m.queue(m.pend.since)
	m.mu.Unlock()
	m.poke()
}

// Changed schedules a sync after an endpoint came or went.
func (m *Manager) Changed() {
	m.mu.Lock()
	m.pend.endpoints = true
	m.pend.noted(time.Now())
	m.queue(m.pend.since)
	m.mu.Unlock()
	m.poke()
}

// queue records that a change came at t (m.mu held).
func (m *Manager) queue(t time.Time) {
	if m.queued.IsZero() {
		m.queued = t
	}
}

// OnHealthChecks makes fn receive, after every sync, the health-check node
// ports the Services call for with their local endpoint counts (the
// healthcheck manager's Set). Call it before Run.
func (m *Manager) OnHealthChecks(fn func([]translate.HealthCheck)) { m.healthChecks = fn }

// ProxyHealth is the service proxy's health as kube-proxy defines it for
// its health checks: unhealthy once a change has waited longer than
// timeout without being programmed; LastUpdated is when a sync last
// programmed every change (zero: never).
func (m *Manager) ProxyHealth(timeout time.Duration) (lastUpdated time.Time, healthy bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.updated, m.queued.IsZero() || time.Since(m.queued) < timeout
}

func (m *Manager) poke() {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// Sync applies the changes since the last sync now: a full sync (or the
// first, or one after changes the source could not name) translates every
// Service and makes the maps hold exactly the result; otherwise only the
// changed Services are translated and only their entries written.
func (m *Manager) Sync(full bool) (SyncStats, error) {
	m.mu.Lock()
	objs, pend := m.objs, m.pend
	m.pend = pending{}
	m.mu.Unlock()
	start := time.Now()
	var st SyncStats
	var err error
	// Past a share of all Services, one translation of everything is
	// cheaper than one per change (a large manifest file loaded).
	many := pend.changes.Len() > 64 && 2*pend.changes.Len() > len(objs.Services)
	if full || pend.all || many || m.model == nil {
		m.model = m.newModel(objs, m.endpoints())
		m.logDiagnostics(m.model.allDiagnostics())
		st, err = m.rec.Apply(m.model.fes.Owners(), full)
	} else {
		st, err = m.syncChanged(objs, pend)
	}
	if m.healthChecks != nil {
		m.healthChecks(m.model.healthChecks())
	}
	log := m.log.WithFields(logrus.Fields{
		"services": st.Services, "backends": st.Backends,
		"upserted": st.UpsertedServices, "deleted": st.DeletedServices, "duration": time.Since(start).Round(time.Microsecond),
	})
	switch {
	case err != nil && st.MapFull:
		log.WithError(err).Error("Load-balancing map is full: services not programmed")
	case err != nil:
		log.WithError(err).Warn("Services partly programmed")
	case st.UpsertedServices+st.DeletedServices > 0:
		log.Info("Services programmed")
	}
	if err == nil && !pend.since.IsZero() {
		m.latency.Observe(time.Since(pend.since).Seconds())
	}
	m.mu.Lock()
	m.lastErr = err
	if err != nil {
		m.errCount++
		m.queue(pend.since)
	} else {
		// Programmed: what waits now came during this sync.
		m.updated, m.queued = time.Now(), m.pend.since
	}
	if st.MapFull {
		m.fullCount++
	}
	m.mu.Unlock()
	return st, err
}

// Errors returns how many syncs failed, how many of them found a map full,
// and the last sync's error.
func (m *Manager) Errors() (failed, mapFull uint64, last error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errCount, m.fullCount, m.lastErr
}

// logDiagnostics logs each reason a service port was skipped once, when it
// first appears, rather than on every sync.
func (m *Manager) logDiagnostics(diags []translate.Diagnostic) {
	now := make(map[string]bool, len(diags))
	for _, d := range diags {
		now[d.String()] = true
		if m.lastDiags[d.String()] {
			continue
		}
		m.logDiagnostic(d)
	}
	m.lastDiags = now
}

// logDiagnosticsDelta logs, of the diagnostics of some Services, those that
// appeared (were not in before), and keeps track of them.
func (m *Manager) logDiagnosticsDelta(before, after []translate.Diagnostic) {
	if m.lastDiags == nil {
		m.lastDiags = map[string]bool{}
	}
	was := make(map[string]bool, len(before))
	for _, d := range before {
		was[d.String()] = true
		delete(m.lastDiags, d.String())
	}
	for _, d := range after {
		if !was[d.String()] && !m.lastDiags[d.String()] {
			m.logDiagnostic(d)
		}
		m.lastDiags[d.String()] = true
	}
}

func (m *Manager) logDiagnostic(d translate.Diagnostic) {
	log := m.log.WithFields(logrus.Fields{"service": d.Service, "reason": d.Reason})
	switch {
	case d.NotOurs:
		log.Debug("Service left to another service proxy")
	case d.Warning:
		log.Warn("Service annotation not honoured")
	default:
		log.Warn("Service port not programmed")
	}
}

// Desired returns the services the current objects and endpoints call for,
// with the reasons service ports were skipped.
func (m *Manager) Desired() ([]lb.Service, []translate.Diagnostic) {
	m.mu.Lock()
	objs := m.objs
	m.mu.Unlock()
	eps := m.endpoints()
	in := translate.Input{
		Services:         objs.Services,
		EndpointSlices:   objs.EndpointSlices,
		Pods:             m.pods(objs.Pods, eps),
		NodeName:         m.cfg.NodeName,
		ServiceProxyName: m.cfg.ServiceProxyName,
		LB:               m.cfg.LB,
	}
	return translate.TranslateWithDiagnostics(in)
}

// endpoints lists the pods wired on this node (none, logged, on an error).
func (m *Manager) endpoints() []api.Endpoint {
	eps, err := m.eps.List()
	if err != nil {
		m.log.WithError(err).Warn("List endpoints for services")
	}
	return eps
}

// pods joins the pods wired here (addresses from the CNI) with the Pod
// objects of the state source (labels, ports, readiness; and the addresses
// of pods on other nodes).
func (m *Manager) pods(objs []*corev1.Pod, eps []api.Endpoint) []translate.Pod {
	byName := make(map[string]*corev1.Pod, len(objs))
	for _, p := range objs {
		byName[p.Namespace+"/"+p.Name] = p
	}
	var out []translate.Pod
	local := map[string]bool{}
	for _, ep := range eps {
		ip, err := netip.ParseAddr(ep.IPv4)
		if err != nil || ep.PodName == "" {
			continue
		}
		key := ep.PodNamespace + "/" + ep.PodName
		local[key] = true
		p := translate.Pod{Namespace: ep.PodNamespace, Name: ep.PodName, Ready: true}
		if obj, ok := byName[key]; ok {
			p = translate.PodFromObject(obj)
		}
		// The CNI's view is authoritative for where and at which address
		// the pod runs.
		p.IP, p.NodeName = ip, m.cfg.NodeName
		out = append(out, p)
	}
	for key, obj := range byName {
		if local[key] {
			continue
		}
		if p := translate.PodFromObject(obj); p.IP.IsValid() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

// Run syncs on every change, resyncs fully on a timer, retries failures with
// exponential backoff and garbage-collects conntrack, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	sync := func(full bool) error {
		_, err := m.Sync(full)
		return err
	}
	reconcile.Loop(ctx, reconcile.Config{
		Trigger: m.trigger, Resync: m.cfg.ResyncInterval, Status: &m.loop,
		Tasks: []reconcile.Task{{Every: m.cfg.CTGCInterval, Do: m.ctGC}},
	}, sync)
}

// LoopStatus returns the outcomes of the owner loop's syncs.
func (m *Manager) LoopStatus() reconcile.LoopStatus { return m.loop.Get() }

func (m *Manager) ctGC() {
	n, err := m.ct.GC()
	if err != nil {
		m.log.WithError(err).Warn("Conntrack garbage collection failed")
	} else if n > 0 {
		m.log.WithField("deleted", n).Debug("Conntrack entries expired")
	}
}
