package translate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lbLocal makes web a LoadBalancer Service with externalTrafficPolicy Local
// and health-check node port 32000.
func lbLocal(s *corev1.Service) {
	asNodePort(s)
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	s.Spec.HealthCheckNodePort = 32000
}

func readyEP(addr, node string) ep {
	return ep{addr: addr, node: node, ready: ptr(true), serving: ptr(true), terminating: ptr(false)}
}

// TestHealthCheckCounting: the local endpoint count kube-proxy 1.33 serves
// (EndpointsMap.LocalReadyEndpoints): ready local endpoints, by address.
func TestHealthCheckCounting(t *testing.T) {
	notReady := ep{addr: "10.0.1.7", node: thisNode, ready: ptr(false), serving: ptr(false), terminating: ptr(false)}
	cases := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   int
	}{
		{"no slices", nil, 0},
		{"one local ready", []*discoveryv1.EndpointSlice{webSlice(readyEP("10.0.1.5", thisNode))}, 1},
		{"conditions unset count as ready", []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5", node: thisNode})}, 1},
		{"remote ready endpoints do not count", []*discoveryv1.EndpointSlice{webSlice(readyEP("10.0.2.5", "node-b"), readyEP("10.0.2.6", "node-b"))}, 0},
		{"endpoint without node name is not local", []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5"})}, 0},
		{"local and remote", []*discoveryv1.EndpointSlice{webSlice(readyEP("10.0.1.5", thisNode), readyEP("10.0.1.6", thisNode), readyEP("10.0.2.5", "node-b"))}, 2},
		{"only terminating (serving) local: 0", []*discoveryv1.EndpointSlice{webSlice(terminatingEP("10.0.1.5", thisNode))}, 0},
		{"terminating not serving local: 0", []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5", node: thisNode, ready: ptr(false), serving: ptr(false), terminating: ptr(true)})}, 0},
		{"not ready, not terminating local: 0", []*discoveryv1.EndpointSlice{webSlice(notReady)}, 0},
		{"ready and terminating local beside each other", []*discoveryv1.EndpointSlice{webSlice(readyEP("10.0.1.5", thisNode), terminatingEP("10.0.1.6", thisNode))}, 1},
		{"terminating local with ready remote: 0", []*discoveryv1.EndpointSlice{webSlice(terminatingEP("10.0.1.5", thisNode), readyEP("10.0.2.5", "node-b"))}, 0},
		{
			"one address on two ports counts once",
			[]*discoveryv1.EndpointSlice{slice("web", "web-1", slicePorts("http", 8080, "https", 8443), readyEP("10.0.1.5", thisNode))},
			1,
		},
		{
			"one address in two slices counts once",
			[]*discoveryv1.EndpointSlice{
				slice("web", "web-1", slicePorts("http", 8080), readyEP("10.0.1.5", thisNode)),
				slice("web", "web-2", slicePorts("http", 8080), readyEP("10.0.1.5", thisNode), readyEP("10.0.1.6", thisNode)),
			},
			2,
		},
		{
			"a duplicate that is local replaces a remote one",
			[]*discoveryv1.EndpointSlice{
				slice("web", "web-1", slicePorts("http", 8080), readyEP("10.0.1.5", "node-b")),
				slice("web", "web-2", slicePorts("http", 8080), readyEP("10.0.1.5", thisNode)),
			},
			1,
		},
		{
			"a later local duplicate wins over an earlier one",
			[]*discoveryv1.EndpointSlice{
				slice("web", "web-1", slicePorts("http", 8080), readyEP("10.0.1.5", thisNode)),
				slice("web", "web-2", slicePorts("http", 8080), terminatingEP("10.0.1.5", thisNode)),
			},
			0,
		},
		{
			"slice ports without name or number are ignored",
			[]*discoveryv1.EndpointSlice{slice("web", "web-1", []discoveryv1.EndpointPort{{Port: ptr(int32(8080))}, {Name: ptr("x")}}, readyEP("10.0.1.5", thisNode))},
			0,
		},
		{
			"a slice with no ports lists no endpoint",
			[]*discoveryv1.EndpointSlice{slice("web", "web-1", nil, readyEP("10.0.1.5", thisNode))},
			0,
		},
		{
			"a slice port the Service does not have still counts",
			[]*discoveryv1.EndpointSlice{slice("web", "web-1", slicePorts("metrics", 9090), readyEP("10.0.1.5", thisNode))},
			1,
		},
		{
			"other services' slices do not count",
			[]*discoveryv1.EndpointSlice{slice("other", "other-1", slicePorts("http", 8080), readyEP("10.0.1.5", thisNode))},
			0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := HealthChecks(Input{NodeName: thisNode, Services: []*corev1.Service{webSvc(lbLocal)}, EndpointSlices: tc.slices})
			assert.Equal(t, []HealthCheck{{Namespace: "default", Name: "web", Port: 32000, LocalEndpoints: tc.want}}, got)
		})
	}
}

// TestHealthCheckFromPods: a selector Service without EndpointSlices
// (standalone mode) counts the ready pods on this node, as the
// EndpointSlice controller would list them.
func TestHealthCheckFromPods(t *testing.T) {
	pod := func(name, ip, node string, ready bool) Pod {
		return Pod{Namespace: "default", Name: name, IP: netip.MustParseAddr(ip), NodeName: node, Ready: ready, Labels: map[string]string{"app": "web"}}
	}
	s := webSvc(lbLocal)
	s.Spec.Selector = map[string]string{"app": "web"}
	pods := []Pod{
		pod("a", "10.0.1.5", thisNode, true),
		pod("b", "10.0.1.6", thisNode, false), // not ready, or terminating
		pod("c", "10.0.2.5", "node-b", true),
		{Namespace: "default", Name: "d", IP: netip.MustParseAddr("10.0.1.8"), NodeName: thisNode, Ready: true, Labels: map[string]string{"app": "db"}},
		{Namespace: "other", Name: "e", IP: netip.MustParseAddr("10.0.1.9"), NodeName: thisNode, Ready: true, Labels: map[string]string{"app": "web"}},
		{Namespace: "default", Name: "f", NodeName: thisNode, Ready: true, Labels: map[string]string{"app": "web"}}, // no IP yet
	}
	got := HealthChecks(Input{NodeName: thisNode, Services: []*corev1.Service{s}, Pods: pods})
	assert.Equal(t, []HealthCheck{{Namespace: "default", Name: "web", Port: 32000, LocalEndpoints: 1}}, got)

	s.Spec.PublishNotReadyAddresses = true
	got = HealthChecks(Input{NodeName: thisNode, Services: []*corev1.Service{s}, Pods: pods})
	assert.Equal(t, 2, got[0].LocalEndpoints, "publishNotReadyAddresses lists not-ready pods as ready")

	// PodFromObject: a pod being deleted is not ready.
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "g", Labels: map[string]string{"app": "web"}, DeletionTimestamp: &metav1.Time{Time: time.Now()}},
		Spec:       corev1.PodSpec{NodeName: thisNode},
		Status:     corev1.PodStatus{PodIP: "10.0.1.10", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	s.Spec.PublishNotReadyAddresses = false
	got = HealthChecks(Input{NodeName: thisNode, Services: []*corev1.Service{s}, Pods: []Pod{PodFromObject(obj)}})
	assert.Equal(t, 0, got[0].LocalEndpoints, "terminating pod")
}

// TestHealthCheckWhichServices: only LoadBalancer Services with
// externalTrafficPolicy Local and a port allocated, that this agent proxies.
func TestHealthCheckWhichServices(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.Service)
		want bool
	}{
		{"LoadBalancer Local", lbLocal, true},
		{"LoadBalancer Cluster", func(s *corev1.Service) {
			lbLocal(s)
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}, false},
		{"NodePort Local", func(s *corev1.Service) { lbLocal(s); s.Spec.Type = corev1.ServiceTypeNodePort }, false},
		{"no port allocated", func(s *corev1.Service) { lbLocal(s); s.Spec.HealthCheckNodePort = 0 }, false},
		{"headless", func(s *corev1.Service) { lbLocal(s); s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"} }, false},
		{"IPv6 only", func(s *corev1.Service) {
			lbLocal(s)
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00::10", []string{"fd00::10"}
		}, false},
		{"no ports", func(s *corev1.Service) { lbLocal(s); s.Spec.Ports = nil }, false},
		{"another proxy's", func(s *corev1.Service) { lbLocal(s); s.Labels = map[string]string{LabelServiceProxyName: "other"} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := HealthChecks(Input{NodeName: thisNode, Services: []*corev1.Service{webSvc(tc.mut)}})
			assert.Equal(t, tc.want, len(got) == 1, "%v", got)
		})
	}
}
