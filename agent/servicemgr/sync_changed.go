package servicemgr

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
)

// syncChanged re-translates the Services the pending changes concern and
// writes the entries of the frontends whose owner may have changed.
func (m *Manager) syncChanged(objs Objects, p pending) (SyncStats, error) {
	md := m.model
	dirty := md.update(objs, p.changes.Take(), p.endpoints)
	var (
		eps    []api.Endpoint
		listed bool
		pods   = map[string][]translate.Pod{}
	)
	podsOf := func(ns string) []translate.Pod {
		if ps, ok := pods[ns]; ok {
			return ps
		}
		if !listed {
			eps, listed = m.endpoints(), true
		}
		var objs []*corev1.Pod
		for _, o := range md.pods[ns] {
			objs = append(objs, o)
		}
		var nsEps []api.Endpoint
		for _, e := range eps {
			if e.PodNamespace == ns {
				nsEps = append(nsEps, e)
			}
		}
		pods[ns] = m.pods(objs, nsEps)
		return pods[ns]
	}
	touched := map[lb.Frontend]bool{}
	if p.endpoints {
		if !listed {
			eps, listed = m.endpoints(), true
		}
		fes, before, after := m.hostPorts(md, eps)
		m.logDiagnosticsDelta(before, after)
		for _, fe := range fes {
			touched[fe] = true
		}
	}
	for n := range dirty {
		var ps []translate.Pod
		if svc := md.svcs[n.Namespace][n.Name]; svc != nil && md.usesPods(svc) {
			ps = podsOf(n.Namespace)
		}
		fes, before, after := m.translate(md, n, ps)
		m.logDiagnosticsDelta(before, after)
		for _, fe := range fes {
			touched[fe] = true
		}
	}
	var upserts []lb.Service
	var gone []lb.Frontend
	for fe := range touched {
		if s, ok := md.fes.Owner(fe); ok {
			upserts = append(upserts, s)
		} else {
			gone = append(gone, fe)
		}
	}
	return m.rec.ApplyChanged(upserts, gone)
}
