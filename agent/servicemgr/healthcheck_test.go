package servicemgr

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/source"
)

// nodeAddrsOnly answers the model's question for the node's addresses (no
// hostPorts here); the model tests write no map.
type nodeAddrsOnly struct{ Maps }

func (nodeAddrsOnly) NodeAddrs() ([]netip.Addr, error) { return nil, nil }

func lbLocalService(name string, port int32) *corev1.Service {
	s := clusterIPService(name, vipOf(1))
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	s.Spec.HealthCheckNodePort = port
	s.Spec.Ports[0].NodePort = 30080
	return s
}

func onNode(s *discoveryv1.EndpointSlice, node string) *discoveryv1.EndpointSlice {
	for i := range s.Endpoints {
		s.Endpoints[i].NodeName = &node
	}
	return s
}

// The model keeps every Service's health-check node port up to date in
// full and incremental translations: local endpoints coming and going, the
// port moving, the Service going; standalone selector Services count the
// pods wired here.
func TestModelHealthChecks(t *testing.T) {
	m := manager(endpoints{}, quietLog())
	m.lb = nodeAddrsOnly{}
	objs := Objects{
		Services:       []*corev1.Service{clusterIPService("plain", vipOf(2)), lbLocalService("web", 32000)}, // sorted, as a Snapshot's
		EndpointSlices: []*discoveryv1.EndpointSlice{onNode(endpointSlice("web", "10.0.1.5"), "node-a")},
	}
	md := m.newModel(objs, nil)
	assert.Equal(t, []translate.HealthCheck{{Namespace: "default", Name: "web", Port: 32000, LocalEndpoints: 1}}, md.healthChecks())

	apply := func(o Objects, ch source.Changes) {
		for n := range md.update(o, &ch, false) {
			m.translate(md, n, nil)
		}
	}
	web := types.NamespacedName{Namespace: "default", Name: "web"}
	webSlice := types.NamespacedName{Namespace: "default", Name: "web-1"}

	objs.EndpointSlices = []*discoveryv1.EndpointSlice{onNode(endpointSlice("web", "10.0.1.5"), "node-b")}
	apply(objs, source.Changes{EndpointSlices: []types.NamespacedName{webSlice}})
	assert.Equal(t, []translate.HealthCheck{{Namespace: "default", Name: "web", Port: 32000}}, md.healthChecks(), "endpoint moved to another node")

	objs.Services[1] = lbLocalService("web", 32001)
	apply(objs, source.Changes{Services: []types.NamespacedName{web}})
	assert.Equal(t, []translate.HealthCheck{{Namespace: "default", Name: "web", Port: 32001}}, md.healthChecks(), "port moved")

	objs.Services = objs.Services[:1]
	apply(objs, source.Changes{Services: []types.NamespacedName{web}})
	assert.Empty(t, md.healthChecks(), "Service gone")

	// Standalone: a selector Service without slices counts the pods wired
	// here (the CNI's endpoints).
	sel := lbLocalService("sel", 32002)
	sel.Spec.Selector = map[string]string{"app": "web"}
	m = manager(endpoints{list: []api.Endpoint{{PodNamespace: "default", PodName: "a", IPv4: "10.0.1.7"}}}, quietLog())
	m.lb = nodeAddrsOnly{}
	md = m.newModel(Objects{
		Services: []*corev1.Service{sel},
		Pods:     []*corev1.Pod{podObj("default", "a", "", "", true, map[string]string{"app": "web"})},
	}, m.endpoints())
	assert.Equal(t, []translate.HealthCheck{{Namespace: "default", Name: "sel", Port: 32002, LocalEndpoints: 1}}, md.healthChecks())
}
