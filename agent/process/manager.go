package process

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// Defaults of Config.
const (
	DefaultCacheSize      = 65536
	DefaultAncestorsDepth = 10
)

// EventReader yields decoded sensor events (the procsensor reader). Close
// unblocks a pending Read, which then fails.
type EventReader interface {
	Read() (procsensor.Event, error)
	Close() error
}

// RunningFunc lists the processes running at start (procsensor
// Sensor.Running: Exec values with ProcFS set).
type RunningFunc func() ([]procsensor.Exec, error)

// Sink receives the events the manager builds (the event pipeline).
type Sink interface {
	Publish(*api.ProcessEvent)
}

// PodResolver names the pod a process runs in; nil on the host.
// *Association implements it.
type PodResolver interface {
	PodFor(pid uint32, cgroupID uint64, netns uint32) *api.Pod
}

// ServiceResolver names the service of a frontend address the socket LB
// translated.
type ServiceResolver interface {
	ServiceByFrontend(proto uint8, frontend netip.AddrPort) (namespace, name string, ok bool)
}

// BackendResolver returns the backend the per-packet load balancer chose
// for a connection to a frontend (the socket saw only the frontend).
type BackendResolver interface {
	BackendFor(proto uint8, src, frontend netip.AddrPort) (netip.AddrPort, bool)
}

// PodIPResolver names the pod that has addr ("namespace/name", "" when
// none).
type PodIPResolver interface {
	PodByIP(addr netip.Addr) string
}

// Config configures a Manager. Zero sizes take the defaults; resolvers may
// be nil (no pod, service or destination pod names).
type Config struct {
	NodeName  string
	CacheSize int // --process-cache-size
	// AncestorsDepth is how many ancestors beyond the parent events carry
	// (--process-ancestors-depth); negative for none.
	AncestorsDepth int
	ConnTableSize  int
	// HostNS are the host's namespace inodes (HostNamespaces), for is_host.
	HostNS   procsensor.Namespaces
	Pods     PodResolver
	Services ServiceResolver
	Backends BackendResolver
	PodIPs   PodIPResolver
	// Policies names and counts the tracing policies of exec rule events
	// (nil: events carry no policy name).
	Policies PolicyNames
	// Hooks describes the tracepoints of syscall rule events (nil: they
	// name the raw_syscalls hook).
	Hooks SyscallHooks
	// HoldUnnamed is how long events of a new container's processes may
	// wait for the Pod's status to name the container (0: the default,
	// negative: never held).
	HoldUnnamed time.Duration
	// Lost returns the sensor's count of events it could not send
	// (sluice_process_events_lost_total); nil when unknown.
	Lost func() uint64
	Log  logrus.FieldLogger
}

// Manager turns sensor events into process events: it keeps the process
// cache, names pods, publishes exec, exit and connect events to a Sink and
// remembers connections for ProcessForFlow. Its query methods are safe for
// concurrent use with Run.
type Manager struct {
	cfg   Config
	sink  Sink
	boot  time.Time // wall time of CLOCK_MONOTONIC zero
	conns *connTable

	mu    sync.Mutex
	cache *cache

	// holdMu guards the pods whose container is not named yet and the
	// events held for them (hold.go); taken before mu, never after.
	holdMu  sync.Mutex
	held    map[*api.Pod]heldPod
	queue   []heldEvent
	heldOut *prometheus.CounterVec

	misses prometheus.Counter
}

// NewManager returns a manager publishing to sink and registers its metrics
// with reg (may be nil).
func NewManager(cfg Config, sink Sink, reg prometheus.Registerer) *Manager {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.AncestorsDepth == 0 {
		cfg.AncestorsDepth = DefaultAncestorsDepth
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.HoldUnnamed == 0 {
		cfg.HoldUnnamed = DefaultHoldUnnamed
	}
	m := &Manager{
		cfg: cfg, sink: sink, boot: bootTime(), conns: newConnTable(cfg.ConnTableSize),
		cache:   newCache(cfg.NodeName, cfg.CacheSize, cfg.AncestorsDepth),
		heldOut: newHeldCounter(),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_process_cache_misses_total",
			Help: "Process events whose process or parent was not in the process cache (published with what was known).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

// Seed adds the processes running at start (flag procFS) and publishes an
// exec event for each, parents first, stamped now. Call it once, before
// Run; events the sensor queued meanwhile then update what it added.
func (m *Manager) Seed(running RunningFunc) error {
	execs, err := running()
	if err != nil {
		return err
	}
	procs := make([]seeded, len(execs))
	for i := range execs {
		e := &execs[i]
		pod := m.podOf(e)
		m.hold(pod, e.Key.TGID, e.CgroupID, e.NS.Net)
		procs[i] = seeded{key: e.Key, parent: e.Parent, proc: m.buildExec(e, pod, false)}
		if e.Parent != (procsensor.Key{}) {
			procs[i].proc.ParentExecID = ExecID(m.cfg.NodeName, e.Parent)
		}
	}
	m.mu.Lock()
	ls := m.cache.seed(procs)
	m.mu.Unlock()
	now := time.Now()
	for _, l := range ls {
		m.publish(execEvent(l), l, now)
	}
	return nil
}

// Run handles events from r until ctx ends (closing r) or r is closed.
// Errors reading one event are logged and skipped. Held events are
// released alongside and published when Run returns.
func (m *Manager) Run(ctx context.Context, r EventReader) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.releaseLoop(hctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	for {
		ev, err := r.Read()
		switch {
		case err == nil:
			m.Handle(ev)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, os.ErrClosed):
			return err
		case !errors.Is(err, os.ErrDeadlineExceeded):
			m.cfg.Log.WithError(err).Warn("Reading process event failed")
		}
	}
}

// Handle updates the cache with one event and publishes what it yields.
func (m *Manager) Handle(ev procsensor.Event) {
	switch {
	case ev.Exec != nil:
		m.handleExec(ev.Exec)
	case ev.Fork != nil:
		m.handleFork(ev.Fork)
	case ev.Exit != nil:
		m.handleExit(ev.Exit)
	case ev.Connect != nil:
		m.handleConnect(ev.Connect)
	case ev.Enforcement != nil:
		m.handleEnforcement(ev.Enforcement)
	case ev.Syscall != nil:
		m.handleSyscall(ev.Syscall)
	case ev.ConnectRule != nil:
		m.handleConnectRule(ev.ConnectRule)
	}
}

// publish hands ev to the sink, counting a miss, or holds it behind the
// events of a container not yet named (hold.go).
func (m *Manager) publish(ev *api.ProcessEvent, l lineage, t time.Time) {
	if l.miss {
		m.misses.Inc()
	}
	ev.NodeName, ev.Time = m.cfg.NodeName, t
	m.holdMu.Lock()
	if m.holds(l) {
		m.queue = append(m.queue, heldEvent{ev: ev, l: l})
		m.holdMu.Unlock()
		return
	}
	m.holdMu.Unlock()
	m.sink.Publish(ev)
}
