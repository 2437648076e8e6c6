package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/test/harness"
	"github.com/sluicenet/sluice/test/harness/apiserver"
)

// In Kubernetes mode: the API server allocates the health-check node port,
// the agent answers it from the EndpointSlices (200 with a local ready
// endpoint, 503 with only a terminating one) on the node's addresses, and
// the node's proxy health fails /healthz (not /livez) once the Node is
// tainted ToBeDeletedByClusterAutoscaler, as kube-proxy's. A port that
// cannot be opened is a Warning Event on its Service, as kube-proxy's.
func TestPrivilegedHealthCheckNodePortKubernetes(t *testing.T) {
	harness.RequirePrivileged(t)
	node := harness.NewNode(t, harness.NodeOptions{})
	apis := apiserver.Start(t, node.NS)
	ctx := context.Background()
	cs := apis.Client
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name},
		Spec:       corev1.NodeSpec{PodCIDR: node.PodCIDR.String()},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	node.StartAgentWith(t, harness.AgentOptions{Kubeconfig: apis.Kubeconfig})

	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lb"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(podPort), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotZero(t, svc.Spec.HealthCheckNodePort, "allocated by the API server")
	addr := fmt.Sprintf("127.0.0.1:%d", svc.Spec.HealthCheckNodePort)

	t.Logf("health-check node port %d", svc.Spec.HealthCheckNodePort)
	waitHC(t, node.NS, addr, 503, 0)

	name, port, proto := "http", int32(podPort), corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "lb-1", Labels: map[string]string{discoveryv1.LabelServiceName: "lb"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.9.5"}, NodeName: &node.Name, Conditions: conditions(true, true, false)},
			{Addresses: []string{"10.244.9.6"}, NodeName: new("node-other"), Conditions: conditions(true, true, false)},
		},
	}
	slice, err = cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
	require.NoError(t, err)
	waitHC(t, node.NS, addr, 200, 1)

	slice.Endpoints[0].Conditions = conditions(false, true, true)
	_, err = cs.DiscoveryV1().EndpointSlices("default").Update(ctx, slice, metav1.UpdateOptions{})
	require.NoError(t, err)
	waitHC(t, node.NS, addr, 503, 0)

	nodeHealth := func(path string) (int, map[string]any) {
		a, err := hcGet(node.NS, "127.0.0.1:10256", path)
		require.NoError(t, err)
		var b map[string]any
		require.NoError(t, json.Unmarshal([]byte(a.body), &b), a.body)
		return a.status, b
	}
	code, b := nodeHealth("/healthz")
	assert.Equal(t, 200, code, "%v", b)
	assert.Equal(t, true, b["nodeEligible"])

	n, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "ToBeDeletedByClusterAutoscaler", Effect: corev1.TaintEffectNoSchedule})
	_, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { code, b = nodeHealth("/healthz"); return code == 503 }, 15*time.Second, 100*time.Millisecond,
		"node being drained: %v", b)
	assert.Equal(t, false, b["nodeEligible"])
	code, b = nodeHealth("/livez")
	assert.Equal(t, 200, code, "livez ignores the node: %v", b)

	// A health-check node port someone else holds: a Warning Event on
	// the Service with kube-proxy's reason, naming the node and the port;
	// the port opens once free.
	const taken = 32123
	var blocker net.Listener
	node.NS.Do(t, func() { blocker, err = net.Listen("tcp", fmt.Sprintf(":%d", taken)) })
	require.NoError(t, err)
	t.Cleanup(func() { blocker.Close() })
	svc2, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lb-taken"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			HealthCheckNodePort: taken,
			Ports:               []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(podPort), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	var ev corev1.Event
	require.Eventually(t, func() bool {
		l, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=lb-taken"})
		if err != nil {
			return false
		}
		for _, e := range l.Items {
			if e.Reason == "FailedToStartServiceHealthcheck" {
				ev = e
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "no FailedToStartServiceHealthcheck Event on the Service")
	t.Logf("event: %s %s %q from %s/%s", ev.Type, ev.Reason, ev.Message, ev.Source.Component, ev.Source.Host)
	assert.Equal(t, corev1.EventTypeWarning, ev.Type)
	assert.Equal(t, svc2.UID, ev.InvolvedObject.UID, "kubectl describe finds it by UID")
	assert.Equal(t, "Service", ev.InvolvedObject.Kind)
	assert.Equal(t, node.Name, ev.Source.Host)
	assert.Contains(t, ev.Message, fmt.Sprintf("port %d", taken))
	assert.Contains(t, ev.Message, "address already in use")
	blocker.Close()
	waitHC(t, node.NS, fmt.Sprintf("127.0.0.1:%d", taken), 503, 0)
}

func conditions(ready, serving, terminating bool) discoveryv1.EndpointConditions {
	return discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
}
