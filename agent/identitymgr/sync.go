package identitymgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/identity"
)

// Sync allocates identities for the current endpoints and pods, writes
// endpoint identities and updates the IP cache. It continues past failures
// and returns them joined; whoever fails to get the identity of its current
// labels keeps the one it had (see allocate).
func (m *Manager) Sync(ctx context.Context) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	// The looked-up pods are read before the endpoints: one added after
	// this read is not pruned below for want of its endpoint (AddPod comes
	// after the endpoint's Put).
	m.mu.Lock()
	fetched := m.fetched.copy()
	m.mu.Unlock()
	eps, err := m.eps.List()
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	m.mu.Lock()
	objs, prefixes := m.objs, m.prefixes
	m.mu.Unlock()

	p := newSyncPass(ctx, m, fetched.merge(objs))
	local, localIPs := p.localEndpoints(eps)
	m.mu.Lock()
	m.fetched.prune(fetched, endpointPods(eps))
	m.mu.Unlock()
	remote := p.remotePods(local)
	cidrs := p.cidrs(prefixes)
	hosts := p.hosts()
	p.errs = append(p.errs,
		m.applyIPCache(identity.SourceLocal, localIPs),
		m.applyIPCache(identity.SourceKubernetes, remote),
		m.applyIPCache(identity.SourceGenerated, cidrs),
		m.applyIPCache(identity.SourceAgent, hosts))
	p.errs = append(p.errs, m.commit(ctx, p))
	return errors.Join(p.errs...)
}

// syncPass is one Sync: the objects it reads, the identities it takes
// references on, what it learns about endpoints and addresses, and the
// errors it meets (it continues past them).
type syncPass struct {
	ctx      context.Context
	m        *Manager
	nsLabels map[string]map[string]string
	pods     map[string]*corev1.Pod // by namespace/name

	held      map[string]identity.NumericIdentity // owner key -> identity referenced
	kept      map[string]bool                     // owners whose last identity carries over
	endpoints map[uint16]EndpointIdentity
	// unresolved are the endpoints left without identity: allocation failed
	// and they had none.
	unresolved map[uint16]bool
	byIP       map[netip.Addr]PodRef
	errs       []error
}

func newSyncPass(ctx context.Context, m *Manager, objs Objects) *syncPass {
	p := &syncPass{
		ctx: ctx, m: m,
		nsLabels:   map[string]map[string]string{},
		pods:       map[string]*corev1.Pod{},
		held:       map[string]identity.NumericIdentity{},
		kept:       map[string]bool{},
		endpoints:  map[uint16]EndpointIdentity{},
		unresolved: map[uint16]bool{},
		byIP:       map[netip.Addr]PodRef{},
	}
	for _, ns := range objs.Namespaces {
		p.nsLabels[ns.Name] = ns.Labels
	}
	for _, pod := range objs.Pods {
		p.pods[pod.Namespace+"/"+pod.Name] = pod
	}
	return p
}

// allocate takes a reference on the identity of ls for owner. When that
// fails (the store cannot be reached or written) the owner keeps the
// identity it held, with its reference, and kept reports so: what is
// enforced with that identity stays until an allocation succeeds (the
// error makes the loop retry), rather than the owner dropping out of the
// endpoints and the IP cache, which ends its policy enforcement. ok is
// false when the owner held no identity either.
func (p *syncPass) allocate(owner string, ls identity.Labels) (id identity.NumericIdentity, kept, ok bool) {
	id, err := p.m.alloc.Allocate(p.ctx, ls)
	if err == nil {
		p.held[owner] = id
		return id, false, true
	}
	p.errs = append(p.errs, fmt.Errorf("allocate identity for %s: %w", owner, err))
	p.m.mu.Lock()
	id, ok = p.m.held[owner]
	p.m.mu.Unlock()
	if ok {
		p.held[owner] = id
		p.kept[owner] = true
	}
	return id, ok, ok
}

// localEndpoints gives every local endpoint the identity of its pod's and
// namespace's labels and writes it into the endpoint map. It returns the
// local pods (namespace/name) and the endpoints' IP cache entries.
func (p *syncPass) localEndpoints(eps []api.Endpoint) (map[string]bool, map[netip.Prefix]identity.NumericIdentity) {
	local := map[string]bool{}
	ips := map[netip.Prefix]identity.NumericIdentity{}
	for _, ep := range eps {
		ns := ep.PodNamespace
		if ns == "" {
			ns = "default"
		}
		pod := p.pods[ns+"/"+ep.PodName]
		var podLabels map[string]string
		if pod != nil {
			podLabels = pod.Labels
		}
		ls := identity.PodLabels(ns, podLabels, p.nsLabels[ns])
		id, kept, ok := p.allocate("ep:"+ep.Key(), ls)
		if !ok {
			p.unresolved[ep.ID] = true
			continue
		}
		if kept {
			ls, _ = p.m.alloc.Lookup(id) // still referenced, so known
		}
		if err := p.m.eps.SetIdentity(ep.ContainerID, ep.IfName, uint32(id)); err != nil {
			if errors.Is(err, api.ErrNotFound) {
				// Deleted since List (a concurrent CNI DEL): not an error
				// of this pass, which an ADD waiting on it would fail with.
				continue
			}
			p.errs = append(p.errs, err)
		}
		ei := EndpointIdentity{Endpoint: ep, Identity: id, Labels: ls, PodKnown: pod != nil, PodNamespace: ns}
		if pod != nil {
			ei.NamedPorts = namedPorts(pod)
		}
		p.endpoints[ep.ID] = ei
		if addr, err := netip.ParseAddr(ep.IPv4); err == nil {
			ips[hostPrefix(addr)] = id
			p.byIP[addr] = PodRef{Namespace: ns, Name: ep.PodName, Identity: id, Local: true}
		}
		local[ns+"/"+ep.PodName] = true
	}
	return local, ips
}

// remotePods returns the IP cache entries of the pods with an address that
// are not local, not terminating and not on the host network.
func (p *syncPass) remotePods(local map[string]bool) map[netip.Prefix]identity.NumericIdentity {
	remote := map[netip.Prefix]identity.NumericIdentity{}
	for key, pod := range p.pods {
		if local[key] || pod.DeletionTimestamp != nil {
			continue
		}
		addr, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil || pod.Spec.HostNetwork {
			continue
		}
		id, _, ok := p.allocate("pod:"+key, identity.PodLabels(pod.Namespace, pod.Labels, p.nsLabels[pod.Namespace]))
		if !ok {
			continue
		}
		remote[hostPrefix(addr)] = id
		if _, dup := p.byIP[addr]; !dup {
			p.byIP[addr] = PodRef{Namespace: pod.Namespace, Name: pod.Name, Identity: id}
		}
	}
	return remote
}

// cidrs returns the IP cache entries of the CIDR identities of the
// prefixes policies name.
func (p *syncPass) cidrs(prefixes []netip.Prefix) map[netip.Prefix]identity.NumericIdentity {
	out := map[netip.Prefix]identity.NumericIdentity{}
	for _, pfx := range prefixes {
		pfx = pfx.Masked()
		if id, _, ok := p.allocate("cidr:"+pfx.String(), identity.CIDRLabels(pfx)); ok {
			out[pfx] = id
		}
	}
	return out
}

// hosts returns the IP cache entries of the node's own addresses
// (reserved:host).
func (p *syncPass) hosts() map[netip.Prefix]identity.NumericIdentity {
	out := map[netip.Prefix]identity.NumericIdentity{}
	if p.m.cfg.HostAddrs == nil {
		return out
	}
	addrs, err := p.m.cfg.HostAddrs()
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("list host addresses: %w", err))
	}
	for _, a := range addrs {
		out[hostPrefix(a)] = identity.ReservedHost
	}
	return out
}

// commit makes the pass's references and endpoint identities current:
// the new references are taken (by allocate), the previous ones released
// except those that carry over (kept); then the OnSynced listeners run.
func (m *Manager) commit(ctx context.Context, p *syncPass) error {
	m.mu.Lock()
	old := m.held
	m.held = p.held
	m.endpoints = p.endpoints
	m.unresolved = p.unresolved
	m.byIP = p.byIP
	listeners := append([]func(){}, m.listeners...)
	m.mu.Unlock()
	var errs []error
	for owner, id := range old {
		if p.kept[owner] {
			continue
		}
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
