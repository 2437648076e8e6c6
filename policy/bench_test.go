package policy

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/identity"
)

// benchWorld is 1000 endpoints in 20 namespaces (25 apps, 2 pods each: 500
// identities) and 500 policies: half Kubernetes NetworkPolicies, half
// SluiceNetworkPolicies with allow and deny rules, ports and ranges.
type benchWorld struct {
	identities map[identity.NumericIdentity]identity.Labels
	endpoints  []Endpoint
	policies   []*Policy
}

func ns(i int) string  { return fmt.Sprintf("ns%d", i%20) }
func app(i int) string { return fmt.Sprintf("app%d", i%25) }

func newBenchWorld(tb testing.TB) *benchWorld {
	w := &benchWorld{identities: identity.ReservedIdentities()}
	ids := map[string]identity.NumericIdentity{}
	next := identity.MinAllocated
	for i := 0; i < 1000; i++ {
		n, a := ns(i), app(i/20)
		ls := identity.PodLabels(n, map[string]string{"app": a, "tier": []string{"web", "db", "cache"}[i%3/2]},
			map[string]string{"team": fmt.Sprintf("t%d", i%20%4)})
		id, ok := ids[ls.String()]
		if !ok {
			id = next
			next++
			ids[ls.String()] = id
			w.identities[id] = ls
		}
		w.endpoints = append(w.endpoints, Endpoint{ID: EndpointID(i + 1), Identity: id, Labels: ls,
			NamedPorts: map[string]NamedPort{"http": {8080, ProtoTCP}}})
	}
	tcp := func() *corev1Protocol { p := corev1TCP; return &p }
	for p := 0; p < 500; p++ {
		var pol *Policy
		var err error
		if p%2 == 0 {
			end := int32(8090)
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("knp%d", p), Namespace: ns(p)},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app(p / 3)}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{
						From: []networkingv1.NetworkPolicyPeer{
							{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app(p + 1)}}},
							{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", p%4)}},
								PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}},
						},
						Ports: []networkingv1.NetworkPolicyPort{
							{Protocol: tcp(), Port: ptrIntStr(intstr.FromInt32(80))},
							{Protocol: tcp(), Port: ptrIntStr(intstr.FromInt32(8000)), EndPort: &end},
							{Protocol: tcp(), Port: ptrIntStr(intstr.FromString("http"))},
						},
					}},
				},
			}
			pol, err = FromNetworkPolicy(np)
		} else {
			sp := &SluiceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("snp%d", p), Namespace: ns(p)},
				Spec: &Rule{
					EndpointSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
					Ingress: []IngressRule{{
						FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": app(p)}}},
						ToPorts:       []PortRule{{Ports: []PortProtocol{{Port: intstr.FromString("443"), Protocol: "TCP"}}}},
					}, {FromEntities: []string{"host", "remote-node"}}},
					IngressDeny: []IngressRule{{
						FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"k8s:io.kubernetes.pod.namespace": ns(p + 7)}}},
						ToPorts:       []PortRule{{Ports: []PortProtocol{{Port: intstr.FromString("442"), EndPort: 444, Protocol: "ANY"}}}},
					}},
					Egress: []EgressRule{{
						ToEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": app(p + 2)}}},
						ToPorts:     []PortRule{{Ports: []PortProtocol{{Port: intstr.FromString("http"), Protocol: "TCP"}}}},
					}, {ToCIDRSet: []CIDRRule{{CIDR: "10.0.0.0/8", Except: []string{"10.96.0.0/12"}}}},
						{ToEntities: []string{"kube-apiserver"}}},
				}}
			pol, err = FromSluicePolicy(sp)
		}
		if err != nil {
			tb.Fatal(err)
		}
		w.policies = append(w.policies, pol)
	}
	return w
}

func ptrIntStr(v intstr.IntOrString) *intstr.IntOrString { return &v }

func (w *benchWorld) load() *Resolver {
	r := NewResolver(Options{})
	for id, ls := range w.identities {
		r.UpsertIdentity(id, ls)
	}
	for _, p := range w.policies {
		r.UpsertPolicy(p)
	}
	for _, ep := range w.endpoints {
		r.UpsertEndpoint(ep)
	}
	return r
}

func entryCount(r *Resolver) int {
	n := 0
	for _, id := range r.Endpoints() {
		p, _ := r.MapState(id)
		n += len(p.Entries)
	}
	return n
}

// BenchmarkResolveFull: 1000 endpoints × 500 policies from scratch
// (identities, policies with their selector caches, then every endpoint).
func BenchmarkResolveFull(b *testing.B) {
	w := newBenchWorld(b)
	b.ResetTimer()
	var r *Resolver
	for i := 0; i < b.N; i++ {
		r = w.load()
	}
	b.ReportMetric(float64(entryCount(r)), "entries")
}

// BenchmarkResolveAll: recompute all 1000 endpoints of a loaded resolver.
func BenchmarkResolveAll(b *testing.B) {
	r := newBenchWorld(b).load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		all := map[EndpointID]struct{}{}
		for _, id := range r.Endpoints() {
			all[id] = struct{}{}
		}
		for id := range all {
			r.endpoints[id].policy = nil
		}
		r.recompute(all)
	}
}

// BenchmarkIncrementalPolicyUpdate: change one policy (two versions in turn)
// in the loaded resolver; reports how many endpoints changed.
func BenchmarkIncrementalPolicyUpdate(b *testing.B) {
	w := newBenchWorld(b)
	r := w.load()
	v1 := w.policies[1]
	sp := &SluiceNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1.Key.Name, Namespace: v1.Key.Namespace},
		Spec: &Rule{
			EndpointSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
			Ingress: []IngressRule{{
				FromEndpoints: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": app(3)}}},
				ToPorts:       []PortRule{{Ports: []PortProtocol{{Port: intstr.FromString("8443"), Protocol: "TCP"}}}},
			}},
		}}
	v2, err := FromSluicePolicy(sp)
	if err != nil {
		b.Fatal(err)
	}
	changed := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			changed += len(r.UpsertPolicy(v2))
		} else {
			changed += len(r.UpsertPolicy(v1))
		}
	}
	b.ReportMetric(float64(changed)/float64(b.N), "endpoints/op")
}

// BenchmarkIncrementalIdentity: a new pod identity appears (selected as a
// peer by some rules) and goes away.
func BenchmarkIncrementalIdentity(b *testing.B) {
	r := newBenchWorld(b).load()
	// Selected as a peer by snp1 (fromEndpoints app1 in ns1).
	ls := identity.PodLabels(ns(1), map[string]string{"app": app(1), "tier": "web"}, map[string]string{"team": "t1"})
	changed := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		changed += len(r.UpsertIdentity(60000, ls))
		changed += len(r.DeleteIdentity(60000))
	}
	b.ReportMetric(float64(changed)/float64(2*b.N), "endpoints/op")
}

type corev1Protocol = corev1.Protocol

const corev1TCP = corev1.ProtocolTCP
