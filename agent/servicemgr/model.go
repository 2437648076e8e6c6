package servicemgr

import (
	"cmp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/source"
)

type name = types.NamespacedName

// model is the manager's incremental view of the services: the objects by
// name, each Service's translation and the frontends' owners. A change
// re-translates only the Services it concerns. Only the sync loop uses it.
type model struct {
	svcs     map[string]map[string]*corev1.Service // by namespace, name
	slices   map[name]map[string]*discoveryv1.EndpointSlice
	sliceSvc map[name]name                     // EndpointSlice → the Service it is labelled with
	pods     map[string]map[string]*corev1.Pod // by namespace, name
	out      map[name][]lb.Service             // by Service; the pods' hostPorts under hostPortsKey
	diags    map[name][]translate.Diagnostic
	fes      translate.Frontends
	hcs      map[name]translate.HealthCheck // the health-check node ports
}

// pending is what changed since the last sync.
type pending struct {
	all       bool // unknown changes: rebuild the model
	endpoints bool // the CNI's endpoints changed
	changes   source.ChangeSet
	since     time.Time // when the oldest change came (zero: none)
}

// noted records that a change came at now (the oldest one counts).
func (p *pending) noted(now time.Time) {
	if p.since.IsZero() {
		p.since = now
	}
}

func (p *pending) add(c *source.Changes) {
	p.noted(time.Now())
	if c == nil {
		p.all = true
		return
	}
	for _, n := range c.Services {
		p.changes.Add(source.KindService, n.Namespace, n.Name)
	}
	for _, n := range c.EndpointSlices {
		p.changes.Add(source.KindEndpointSlice, n.Namespace, n.Name)
	}
	for _, n := range c.Pods {
		p.changes.Add(source.KindPod, n.Namespace, n.Name)
	}
}

// newModel indexes objs and translates every Service.
func (m *Manager) newModel(objs Objects, eps []api.Endpoint) *model {
	md := &model{
		svcs: map[string]map[string]*corev1.Service{}, slices: map[name]map[string]*discoveryv1.EndpointSlice{},
		sliceSvc: map[name]name{}, pods: map[string]map[string]*corev1.Pod{},
		out: map[name][]lb.Service{}, diags: map[name][]translate.Diagnostic{},
		hcs: map[name]translate.HealthCheck{},
	}
	for _, s := range objs.Services {
		md.setService(name{Namespace: s.Namespace, Name: s.Name}, s)
	}
	for _, s := range objs.EndpointSlices {
		md.setSlice(name{Namespace: s.Namespace, Name: s.Name}, s)
	}
	for _, p := range objs.Pods {
		setIn(md.pods, p.Namespace, p.Name, p)
	}
	pods := map[string][]translate.Pod{}
	for _, p := range m.pods(objs.Pods, eps) {
		pods[p.Namespace] = append(pods[p.Namespace], p)
	}
	for ns, byName := range md.svcs {
		for n := range byName {
			m.translate(md, name{Namespace: ns, Name: n}, pods[ns])
		}
	}
	m.hostPorts(md, eps)
	return md
}

// update applies the changes in ch (read from objs, which holds every
// object's latest state) and returns the Services they concern.
func (md *model) update(objs Objects, ch *source.Changes, endpoints bool) map[name]bool {
	dirty := map[name]bool{}
	for _, n := range ch.Services {
		md.setService(n, find(objs.Services, n))
		dirty[n] = true
	}
	for _, n := range ch.EndpointSlices {
		if old, ok := md.sliceSvc[n]; ok {
			dirty[old] = true
		}
		if s := md.setSlice(n, find(objs.EndpointSlices, n)); s != nil {
			dirty[*s] = true
		}
	}
	for _, n := range ch.Pods {
		old := md.pods[n.Namespace][n.Name]
		p := find(objs.Pods, n)
		setIn(md.pods, n.Namespace, n.Name, p)
		for sn, svc := range md.svcs[n.Namespace] {
			if md.usesPods(svc) && (selects(svc, old) || selects(svc, p)) {
				dirty[name{Namespace: n.Namespace, Name: sn}] = true
			}
		}
	}
	if endpoints {
		for ns, byName := range md.svcs {
			for sn, svc := range byName {
				if md.usesPods(svc) {
					dirty[name{Namespace: ns, Name: sn}] = true
				}
			}
		}
	}
	return dirty
}

// usesPods reports whether svc's backends come from Pods (a selector
// Service without EndpointSlices).
func (md *model) usesPods(svc *corev1.Service) bool {
	return len(svc.Spec.Selector) > 0 && len(md.slices[name{Namespace: svc.Namespace, Name: svc.Name}]) == 0
}

func selects(svc *corev1.Service, p *corev1.Pod) bool {
	if p == nil {
		return false
	}
	for k, v := range svc.Spec.Selector {
		if got, ok := p.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (md *model) setService(n name, s *corev1.Service) {
	setIn(md.svcs, n.Namespace, n.Name, s)
}

// setSlice indexes (or, nil, forgets) an EndpointSlice and returns the
// Service it now belongs to.
func (md *model) setSlice(n name, s *discoveryv1.EndpointSlice) *name {
	if old, ok := md.sliceSvc[n]; ok {
		delete(md.slices[old], n.Name)
		if len(md.slices[old]) == 0 {
			delete(md.slices, old)
		}
		delete(md.sliceSvc, n)
	}
	if s == nil || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil
	}
	svc := name{Namespace: s.Namespace, Name: s.Labels[discoveryv1.LabelServiceName]}
	if md.slices[svc] == nil {
		md.slices[svc] = map[string]*discoveryv1.EndpointSlice{}
	}
	md.slices[svc][n.Name] = s
	md.sliceSvc[n] = svc
	return &svc
}

// translate re-translates one Service (gone if not indexed) with pods, the
// translator's pods of its namespace, and swaps the result into the model.
func (m *Manager) translate(md *model, n name, pods []translate.Pod) (fes []lb.Frontend, before, after []translate.Diagnostic) {
	var out []lb.Service
	var diags []translate.Diagnostic
	if svc := md.svcs[n.Namespace][n.Name]; svc != nil {
		in := translate.Input{NodeName: m.cfg.NodeName, ServiceProxyName: m.cfg.ServiceProxyName, LB: m.cfg.LB}
		for _, s := range md.slices[n] {
			in.EndpointSlices = append(in.EndpointSlices, s)
		}
		if md.usesPods(svc) {
			in.Pods = pods
		}
		out, diags = translate.Service(in, svc)
		if hc, ok := translate.ServiceHealthCheck(in, svc); ok {
			md.hcs[n] = hc
		} else {
			delete(md.hcs, n)
		}
	} else {
		delete(md.hcs, n)
	}
	return md.swap(n, out, diags)
}

// swap replaces what n (a Service, or hostPortsKey) contributes with out
// and diags, and returns the frontends whose owner may have changed, and
// n's and these frontends' diagnostics before and after.
func (md *model) swap(n name, out []lb.Service, diags []translate.Diagnostic) (fes []lb.Frontend, before, after []translate.Diagnostic) {
	before = slices.Clone(md.diags[n])
	seen := map[lb.Frontend]bool{}
	for _, s := range slices.Concat(md.out[n], out) {
		if !seen[s.Frontend] {
			seen[s.Frontend] = true
			before = append(before, md.fes.Diagnostics(s.Frontend)...)
		}
	}
	fes = md.fes.Replace(md.out[n], out)
	after = slices.Clone(diags)
	for _, fe := range fes {
		after = append(after, md.fes.Diagnostics(fe)...)
	}
	if len(out) == 0 {
		delete(md.out, n)
	} else {
		md.out[n] = out
	}
	if len(diags) == 0 {
		delete(md.diags, n)
	} else {
		md.diags[n] = diags
	}
	return fes, before, after
}

// healthChecks returns the health-check node ports of the model's
// Services, sorted by namespace and name.
func (md *model) healthChecks() []translate.HealthCheck {
	out := make([]translate.HealthCheck, 0, len(md.hcs))
	for _, hc := range md.hcs {
		out = append(out, hc)
	}
	slices.SortFunc(out, func(a, b translate.HealthCheck) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// allDiagnostics returns every diagnostic of the model.
func (md *model) allDiagnostics() []translate.Diagnostic {
	out := md.fes.AllDiagnostics()
	for _, d := range md.diags {
		out = append(out, d...)
	}
	return out
}

func setIn[T any](m map[string]map[string]*T, ns, n string, v *T) {
	if v == nil {
		delete(m[ns], n)
		if len(m[ns]) == 0 {
			delete(m, ns)
		}
		return
	}
	if m[ns] == nil {
		m[ns] = map[string]*T{}
	}
	m[ns][n] = v
}

// find returns the object named n of a list sorted by namespace and name
// (a Snapshot's), nil if there is none.
func find[T any, P interface {
	*T
	GetNamespace() string
	GetName() string
}](list []P, n name) P {
	i, ok := slices.BinarySearchFunc(list, n, func(o P, n name) int {
		return cmp.Or(cmp.Compare(o.GetNamespace(), n.Namespace), cmp.Compare(o.GetName(), n.Name))
	})
	if !ok {
		return nil
	}
	return list[i]
}
