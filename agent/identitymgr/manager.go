package identitymgr

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/identity"
)

// Endpoints is the part of the endpoint manager the identity manager uses.
type Endpoints interface {
	List() ([]api.Endpoint, error)
	SetIdentity(containerID, ifName string, id uint32) error
}

// Datapath is the IP cache map (implemented by *ipcachemap.Map).
type Datapath interface {
	Upsert(p netip.Prefix, id uint32) error
	Delete(p netip.Prefix) error
	List() (map[netip.Prefix]uint32, error)
}

// Objects is what the manager consumes of the state source.
type Objects struct {
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
}

// Config tunes the manager.
type Config struct {
	ResyncInterval time.Duration // full IP cache resync (default 30s)
	// HostAddrs lists the node's own addresses (reserved:host); nil means
	// none. It is called on every sync.
	HostAddrs func() ([]netip.Addr, error)
	// Store is where identity numbers are allocated; nil is an in-memory
	// store (numbers change when the agent restarts). The agent passes an
	// FileStore (filestore.go) in its run dir, or the SluiceIdentity store.
	Store identity.Store
	// Cluster says Store is shared by every node: the allocator then never
	// deletes from it (a cluster-wide collector does).
	Cluster bool
}

// EndpointIdentity is a local endpoint's identity.
type EndpointIdentity struct {
	Endpoint   api.Endpoint
	Identity   identity.NumericIdentity
	Labels     identity.Labels
	NamedPorts map[string]NamedPort
	// PodKnown says a Pod object named the endpoint's pod (from the state
	// source or AddPod): its labels are in Labels. Without it the identity
	// has the namespace's labels only, which a label-selected policy misses.
	PodKnown     bool
	PodNamespace string
}

// NamedPort is a container port by name.
type NamedPort struct {
	Port  uint16
	Proto uint8
}

// PodRef names the pod behind an address.
type PodRef struct {
	Namespace, Name string
	Identity        identity.NumericIdentity
	Local           bool
}

// Manager owns identity allocation for endpoints and pods and the IP cache.
type Manager struct {
	cfg   Config
	loop  reconcile.Status // the owner loop's outcomes (LoopStatus)
	log   logrus.FieldLogger
	eps   Endpoints
	dp    Datapath
	alloc *identity.StoreAllocator
	ipc   *identity.IPCache

	// syncMu serializes Sync and Mirror: the Run loop and the API's
	// endpoint regeneration both call them.
	syncMu sync.Mutex

	mu        sync.Mutex
	objs      Objects
	fetched   fetchedPods
	prefixes  []netip.Prefix
	held      map[string]identity.NumericIdentity // owner key -> identity referenced
	endpoints map[uint16]EndpointIdentity
	// unresolved are the local endpoints without identity (see Unresolved).
	unresolved map[uint16]bool
	byIP       map[netip.Addr]PodRef
	lastErr    error
	errCount   uint64
	listeners  []func()
	bySource   map[identity.Source]map[netip.Prefix]identity.NumericIdentity

	// trigger wakes the owner loop: for a mirror of the IP cache, and
	// with dirty set for an identity sync first.
	trigger chan struct{}
	dirty   atomic.Bool
}

// New returns a manager with a standalone allocator. onIdentity receives
// every identity event (the policy manager's resolver input); it is called
// without the manager's lock and must not block for long.
func New(cfg Config, eps Endpoints, dp Datapath, onIdentity func(identity.Event), log logrus.FieldLogger) *Manager {
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	m := &Manager{
		cfg: cfg, log: log, eps: eps, dp: dp,
		ipc:       identity.NewIPCache(),
		held:      map[string]identity.NumericIdentity{},
		endpoints: map[uint16]EndpointIdentity{},
		byIP:      map[netip.Addr]PodRef{},
		trigger:   make(chan struct{}, 1),
	}
	opts := identity.Options{GracePeriod: time.Minute, OnChange: onIdentity}
	switch {
	case cfg.Store != nil && cfg.Cluster:
		m.alloc = identity.NewClusterAllocator(cfg.Store, opts)
	case cfg.Store != nil:
		m.alloc = identity.NewStandaloneAllocatorWithStore(cfg.Store, opts)
	default:
		m.alloc = identity.NewStandaloneAllocator(opts)
	}
	m.ipc.Subscribe(func(identity.Change) { kick(m.trigger) })
	return m
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Allocator returns the allocator (for listing identities).
func (m *Manager) Allocator() *identity.StoreAllocator { return m.alloc }

// IPCache returns the IP cache.
func (m *Manager) IPCache() *identity.IPCache { return m.ipc }

// OnSynced registers fn to run after every sync that may have changed
// endpoint identities. fn must not block.
func (m *Manager) OnSynced(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listeners = append(m.listeners, fn)
}

// SetObjects replaces the pods and namespaces and schedules a sync.
func (m *Manager) SetObjects(o Objects) {
	m.mu.Lock()
	m.objs = o
	m.fetched.caughtUp(o)
	m.mu.Unlock()
	m.Changed()
}

// SetPolicyPrefixes replaces the CIDRs policies name (each gets a CIDR
// identity in the IP cache) and schedules a sync.
func (m *Manager) SetPolicyPrefixes(ps []netip.Prefix) {
	m.mu.Lock()
	m.prefixes = append([]netip.Prefix(nil), ps...)
	m.mu.Unlock()
	m.Changed()
}

// Changed schedules a sync (an endpoint came or went).
func (m *Manager) Changed() {
	m.dirty.Store(true)
	kick(m.trigger)
}

// Endpoints returns the local endpoints' identities by endpoint ID.
func (m *Manager) Endpoints() map[uint16]EndpointIdentity {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uint16]EndpointIdentity, len(m.endpoints))
	for k, v := range m.endpoints {
		out[k] = v
	}
	return out
}

// Unresolved returns the IDs of the local endpoints the last sync left
// without identity: their allocation failed and they held none (a new
// endpoint, or one restored at start). Their policy state is theirs until
// an allocation succeeds or they go away.
func (m *Manager) Unresolved() map[uint16]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uint16]bool, len(m.unresolved))
	for k := range m.unresolved {
		out[k] = true
	}
	return out
}

// PodByIP returns the pod that has addr (local endpoints and pods of the
// state source).
func (m *Manager) PodByIP(addr netip.Addr) (PodRef, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.byIP[addr]
	return p, ok
}

// PodAddr returns the address of pod namespace/name (local or not) as the
// last sync knew it; the lowest when it has several.
func (m *Manager) PodAddr(namespace, name string) (netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best netip.Addr
	for addr, p := range m.byIP {
		if p.Namespace == namespace && p.Name == name && (!best.IsValid() || addr.Less(best)) {
			best = addr
		}
	}
	return best, best.IsValid()
}

// Identities returns every known identity with its labels and local
// reference count in API form (GET /v1/identities), sorted by number.
func (m *Manager) Identities() []api.Identity {
	all := m.alloc.Identities()
	out := make([]api.Identity, 0, len(all))
	for id, ls := range all {
		ai := api.Identity{ID: uint32(id), Labels: LabelStrings(ls), Refs: m.alloc.Refs(id)}
		if id.IsReserved() {
			ai.Name = id.String()
		}
		out = append(out, ai)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LabelStrings returns the labels in their string form, in order.
func LabelStrings(ls identity.Labels) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.String())
	}
	return out
}

// Errors returns the number of failed passes and the last pass's error.
func (m *Manager) Errors() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errCount, m.lastErr
}
