package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/echoserver"
	"github.com/sluicenet/sluice/test/harness"
)

// XDP NodePort on the real node: hack/local-cluster.sh runs the one-node
// cluster's agent with --lb-acceleration generic (the chart's
// loadBalancer.acceleration) on its NodePort device, the sluice-ext0 veth.
// The XDP program translates flows to remote backends only (a local
// backend is handed to tc), and a one-node cluster has none: the backend
// here is a server on the "external" network itself (a second address of
// the client's namespace, behind a selector-less Service's EndpointSlice),
// so the request and the reply both enter and leave through sluice-ext0
// (XDP_TX) after DNAT+SNAT and reverse SNAT.
const (
	extDev       = "sluice-ext0"
	extBackendIP = "198.51.100.3" // on eth0 of extNetNS, for this test only
	bpfRoot      = "/sys/fs/bpf/sluice"
)

// TestE2ENodePortXDP: the client outside the node gets its answer from the
// backend, named, through the node's XDP program, whose counters move.
func TestE2ENodePortXDP(t *testing.T) {
	c := connect(t)
	st, err := c.agent.Status(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	mode := st.KubeProxy.NodePortXDP[extDev]
	require.True(t, strings.HasPrefix(mode, "xdp "),
		"the agent's NodePort program on %s is %q, want XDP (hack/local-cluster.sh sets the chart's loadBalancer.acceleration)", extDev, mode)

	// The outside backend, removed with the test.
	ext := &harness.NetNS{Name: extNetNS}
	ext.Run(t, "ip", "addr", "add", extBackendIP+"/32", "dev", "eth0")
	t.Cleanup(func() { exec.Command("ip", "-n", extNetNS, "addr", "del", extBackendIP+"/32", "dev", "eth0").Run() })
	var ln net.Listener
	ext.Do(t, func() { ln, err = net.Listen("tcp4", extBackendIP+":9000") })
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go echoserver.Serve(ln, echoserver.Lines("outside-backend"))

	ns := c.namespace(t)
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "outside"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	np := svc.Spec.Ports[0].NodePort
	port, name, proto, ready := int32(9000), "tcp", corev1.ProtocolTCP, true
	_, err = c.cs.DiscoveryV1().EndpointSlices(ns).Create(ctxT(t, 30*time.Second), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "outside-1", Labels: map[string]string{discoveryv1.LabelServiceName: "outside"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{extBackendIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	ifc, err := net.InterfaceByName(extDev)
	require.NoError(t, err)
	fwd0, rev0 := xdpCounters(t, uint32(ifc.Index))
	addr := fmt.Sprintf("%s:%d", extNodeIP, np)
	// The first answer once the agent has programmed the service; a first
	// packet before the node has resolved the backend's neighbour takes tc.
	requireAllBackends(t, fmt.Sprintf("NodePort %s from %s to %s", addr, extNetNS, extBackendIP), "xdp", []string{"outside-backend"},
		func() (string, error) { return askFromNetNS(ext, addr, "xdp") })
	const asks = 10
	for i := range asks {
		out, err := askFromNetNS(ext, addr, fmt.Sprint("xdp-", i))
		require.NoError(t, err, "ask %d", i)
		require.Equal(t, fmt.Sprintf("outside-backend xdp-%d", i), out)
	}
	fwd, rev := xdpCounters(t, uint32(ifc.Index))
	t.Logf("XDP on %s (%s): %d requests translated (xdp-lb-snat), %d replies (xdp-lb-reverse-snat)", extDev, mode, fwd-fwd0, rev-rev0)
	// Each connection: SYN, ACK with data, FIN, ACK from the client; as
	// many the other way.
	require.GreaterOrEqual(t, fwd-fwd0, uint64(2*asks), "requests translated by XDP on %s", extDev)
	require.GreaterOrEqual(t, rev-rev0, uint64(2*asks), "replies translated by XDP on %s", extDev)
}

// xdpCounters reads the agent's pinned metrics map: packets the XDP program
// on ifindex translated to a remote backend and back.
func xdpCounters(t *testing.T, ifindex uint32) (fwd, rev uint64) {
	t.Helper()
	cs, err := metricsmap.PinnedCounters(bpfRoot)
	require.NoError(t, err)
	for _, c := range cs {
		if c.Ifindex != ifindex || c.Direction != metricsmap.DirIngress {
			continue
		}
		switch c.Reason {
		case metricsmap.ReasonXDPLBSNAT:
			fwd += c.Packets
		case metricsmap.ReasonXDPLBRevSNAT:
			rev += c.Packets
		}
	}
	return fwd, rev
}
