package identitymgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
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
	// identity.FileStore in its run dir, or the SluiceIdentity store.
	Store identity.Store
	// Cluster says Store is shared by every node: the allocator then never
	// deletes from it (a cluster-wide collector does).
	Cluster bool
}

// EndpointIdentity is a local endpoint's identity.
type EndpointIdentity struct {
	Endpoint     api.Endpoint
	Identity     identity.NumericIdentity
	Labels       identity.Labels
	NamedPorts   map[string]NamedPort
	PodKnown     bool // a Pod object named the endpoint's pod
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
	prefixes  []netip.Prefix
	held      map[string]identity.NumericIdentity // owner key -> identity referenced
	endpoints map[uint16]EndpointIdentity
	byIP      map[netip.Addr]PodRef
	lastErr   error
	errCount  uint64
	listeners []func()
	bySource  map[identity.Source]map[netip.Prefix]identity.NumericIdentity

	trigger chan struct{}
	mirror  chan struct{}
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
		mirror:    make(chan struct{}, 1),
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
	m.ipc.Subscribe(func(identity.Change) { kick(m.mirror) })
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
func (m *Manager) Changed() { kick(m.trigger) }

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

// PodByIP returns the pod that has addr (local endpoints and pods of the
// state source).
func (m *Manager) PodByIP(addr netip.Addr) (PodRef, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.byIP[addr]
	return p, ok
}

// Sync allocates identities for the current endpoints and pods, writes
// endpoint identities and updates the IP cache. It continues past failures
// and returns them joined.
func (m *Manager) Sync(ctx context.Context) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	eps, err := m.eps.List()
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	m.mu.Lock()
	objs, prefixes := m.objs, m.prefixes
	m.mu.Unlock()

	nsLabels := map[string]map[string]string{}
	for _, ns := range objs.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	pods := map[string]*corev1.Pod{}
	for _, p := range objs.Pods {
		pods[p.Namespace+"/"+p.Name] = p
	}

	var errs []error
	want := map[string]identity.NumericIdentity{}
	ipWant := map[netip.Prefix]identity.NumericIdentity{}
	local := map[string]bool{}
	newEPs := map[uint16]EndpointIdentity{}
	byIP := map[netip.Addr]PodRef{}
	allocate := func(owner string, ls identity.Labels) (identity.NumericIdentity, bool) {
		id, err := m.alloc.Allocate(ctx, ls)
		if err != nil {
			errs = append(errs, fmt.Errorf("allocate identity for %s: %w", owner, err))
			return 0, false
		}
		want[owner] = id
		return id, true
	}

	for _, ep := range eps {
		ns := ep.PodNamespace
		if ns == "" {
			ns = "default"
		}
		pod := pods[ns+"/"+ep.PodName]
		var podLabels map[string]string
		if pod != nil {
			podLabels = pod.Labels
		}
		ls := identity.PodLabels(ns, podLabels, nsLabels[ns])
		id, ok := allocate("ep:"+ep.Key(), ls)
		if !ok {
			continue
		}
		if err := m.eps.SetIdentity(ep.ContainerID, ep.IfName, uint32(id)); err != nil {
			errs = append(errs, err)
		}
		ei := EndpointIdentity{Endpoint: ep, Identity: id, Labels: ls, PodKnown: pod != nil, PodNamespace: ns}
		if pod != nil {
			ei.NamedPorts = namedPorts(pod)
		}
		newEPs[ep.ID] = ei
		if addr, err := netip.ParseAddr(ep.IPv4); err == nil {
			ipWant[hostPrefix(addr)] = id
			byIP[addr] = PodRef{Namespace: ns, Name: ep.PodName, Identity: id, Local: true}
		}
		local[ns+"/"+ep.PodName] = true
	}

	remote := map[netip.Prefix]identity.NumericIdentity{}
	for key, p := range pods {
		if local[key] || p.DeletionTimestamp != nil {
			continue
		}
		addr, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || p.Spec.HostNetwork {
			continue
		}
		id, ok := allocate("pod:"+key, identity.PodLabels(p.Namespace, p.Labels, nsLabels[p.Namespace]))
		if !ok {
			continue
		}
		remote[hostPrefix(addr)] = id
		if _, dup := byIP[addr]; !dup {
			byIP[addr] = PodRef{Namespace: p.Namespace, Name: p.Name, Identity: id}
		}
	}

	cidrs := map[netip.Prefix]identity.NumericIdentity{}
	for _, p := range prefixes {
		p = p.Masked()
		if id, ok := allocate("cidr:"+p.String(), identity.CIDRLabels(p)); ok {
			cidrs[p] = id
		}
	}

	hosts := map[netip.Prefix]identity.NumericIdentity{}
	if m.cfg.HostAddrs != nil {
		addrs, err := m.cfg.HostAddrs()
		if err != nil {
			errs = append(errs, fmt.Errorf("list host addresses: %w", err))
		}
		for _, a := range addrs {
			hosts[hostPrefix(a)] = identity.ReservedHost
		}
	}

	errs = append(errs, m.applyIPCache(identity.SourceLocal, ipWant))
	errs = append(errs, m.applyIPCache(identity.SourceKubernetes, remote))
	errs = append(errs, m.applyIPCache(identity.SourceGenerated, cidrs))
	errs = append(errs, m.applyIPCache(identity.SourceAgent, hosts))

	// Swap references: take the new ones first (done by Allocate), then
	// release the ones no longer held.
	m.mu.Lock()
	old := m.held
	m.held = want
	m.endpoints = newEPs
	m.byIP = byIP
	listeners := append([]func(){}, m.listeners...)
	m.mu.Unlock()
	for _, id := range old {
		if err := m.alloc.Release(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("release identity %d: %w", id, err))
		}
	}
	for _, fn := range listeners {
		fn()
	}
	return errors.Join(errs...)
}

// applyIPCache makes the source's entries in the IP cache exactly want.
func (m *Manager) applyIPCache(src identity.Source, want map[netip.Prefix]identity.NumericIdentity) error {
	var errs []error
	have := m.sourceEntries(src)
	for p := range have {
		if _, ok := want[p]; !ok {
			if _, err := m.ipc.Delete(p, src); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for p, id := range want {
		if have[p] == id {
			continue
		}
		if _, err := m.ipc.Upsert(p, id, src); err != nil {
			errs = append(errs, err)
		}
	}
	m.mu.Lock()
	if m.bySource == nil {
		m.bySource = map[identity.Source]map[netip.Prefix]identity.NumericIdentity{}
	}
	m.bySource[src] = want
	m.mu.Unlock()
	return errors.Join(errs...)
}

func (m *Manager) sourceEntries(src identity.Source) map[netip.Prefix]identity.NumericIdentity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bySource[src]
}

func namedPorts(p *corev1.Pod) map[string]NamedPort {
	out := map[string]NamedPort{}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" || cp.ContainerPort <= 0 || cp.ContainerPort > 65535 {
				continue
			}
			proto := uint8(6)
			switch cp.Protocol {
			case corev1.ProtocolUDP:
				proto = 17
			case corev1.ProtocolSCTP:
				proto = 132
			}
			out[cp.Name] = NamedPort{Port: uint16(cp.ContainerPort), Proto: proto}
		}
	}
	return out
}

// Identities returns every known identity with its labels, sorted by number.
func (m *Manager) Identities() []IdentityInfo {
	all := m.alloc.Identities()
	out := make([]IdentityInfo, 0, len(all))
	for id, ls := range all {
		out = append(out, IdentityInfo{ID: id, Labels: ls, Refs: m.alloc.Refs(id)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IdentityInfo is an identity with its labels and local reference count.
type IdentityInfo struct {
	ID     identity.NumericIdentity
	Labels identity.Labels
	Refs   int
}

// Errors returns the number of failed passes and the last pass's error.
func (m *Manager) Errors() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errCount, m.lastErr
}
