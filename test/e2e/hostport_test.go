package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/test/harness"
)

const e2eHostPort = 54323 // the upstream conformance test's port

// hostPortPod starts an echo pod on node with one hostPort (hostIP may be
// "") to the echo server's TCP 9000 or UDP 9001, and waits until it is ready.
func (c *cluster) hostPortPod(t *testing.T, ns, name, node, hostIP string, hostPort int32, proto corev1.Protocol) *corev1.Pod {
	t.Helper()
	port := int32(9000)
	if proto == corev1.ProtocolUDP {
		port = 9001
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "echo", Image: echoImage, ImagePullPolicy: corev1.PullNever,
				Ports: []corev1.ContainerPort{{ContainerPort: port, HostPort: hostPort, HostIP: hostIP, Protocol: proto}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	_, err := c.cs.CoreV1().Pods(ns).Create(ctxT(t, 30*time.Second), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	return c.waitReady(t, ns, name)
}

// hostPortFrontends returns the agent's HostPort frontends of namespace ns
// ("addr:port/proto" → backend pod name).
func (c *cluster) hostPortFrontends(t *testing.T, ns string) map[string]string {
	t.Helper()
	svcs, err := c.agent.ListServices(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	out := map[string]string{}
	for _, s := range svcs {
		if s.Kind == "HostPort" && len(s.Backends) == 1 && s.Backends[0].Pod != "" && s.Error == "" {
			if pns, pod, _ := strings.Cut(s.Backends[0].Pod, "/"); pns == ns {
				out[s.Frontend+"/"+s.Protocol] = pod
			}
		}
	}
	return out
}

// TestE2EHostPort is the upstream conformance test "HostPort validates that
// there is no conflict between pods with same hostPort but different hostIP
// and protocol" with Sluice's echo pods: pod1 on 127.0.0.1, pod2 on the
// node's InternalIP (TCP), pod3 on the InternalIP (UDP), all on one
// hostPort; a hostNetwork pod on the node reaches each at its address and
// protocol, and each answers with its own name. A fourth pod's hostPort on
// every address answers the external client behind the node's test device
// (host device programs). The agent lists the frontends as kind HostPort
// and drops one when its pod goes.
func TestE2EHostPort(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	nodeName := c.nodeName(t)
	node, err := c.cs.CoreV1().Nodes().Get(ctxT(t, 10*time.Second), nodeName, metav1.GetOptions{})
	require.NoError(t, err)
	var nodeIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}
	require.NotEmpty(t, nodeIP, "node %s has no InternalIP", nodeName)

	c.hostPortPod(t, ns, "pod1", nodeName, "127.0.0.1", e2eHostPort, corev1.ProtocolTCP)
	c.hostPortPod(t, ns, "pod2", nodeName, nodeIP, e2eHostPort, corev1.ProtocolTCP)
	c.hostPortPod(t, ns, "pod3", nodeName, nodeIP, e2eHostPort, corev1.ProtocolUDP)
	c.hostPortPod(t, ns, "pod4", nodeName, "", e2eHostPort+1, corev1.ProtocolTCP)
	want := map[string]string{
		fmt.Sprintf("127.0.0.1:%d/TCP", e2eHostPort):  "pod1",
		fmt.Sprintf("%s:%d/TCP", nodeIP, e2eHostPort): "pod2",
		fmt.Sprintf("%s:%d/UDP", nodeIP, e2eHostPort): "pod3",
		fmt.Sprintf("0.0.0.0:%d/TCP", e2eHostPort+1):  "pod4",
	}
	require.Equal(t, want, c.hostPortFrontends(t, ns), "the agent's HostPort frontends")

	_, err = c.cs.CoreV1().Pods(ns).Create(ctxT(t, 30*time.Second), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "host-client"},
		Spec: corev1.PodSpec{
			NodeName: nodeName, HostNetwork: true, TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "client", Image: echoImage, ImagePullPolicy: corev1.PullNever, Command: []string{"/echo", "idle"},
			}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	client := c.waitReady(t, ns, "host-client")

	for _, q := range []struct{ mode, addr, want string }{
		{"tcp", fmt.Sprintf("127.0.0.1:%d", e2eHostPort), "pod1"},
		{"tcp", fmt.Sprintf("%s:%d", nodeIP, e2eHostPort), "pod2"},
		{"udp", fmt.Sprintf("%s:%d", nodeIP, e2eHostPort), "pod3"},
		{"tcp", fmt.Sprintf("127.0.0.1:%d", e2eHostPort+1), "pod4"},
		{"tcp", fmt.Sprintf("%s:%d", nodeIP, e2eHostPort+1), "pod4"},
	} {
		for i := 0; i < 3; i++ {
			out, err := c.ask(t, client, q.mode, q.addr, "hp")
			require.NoError(t, err, "%s %s from the node", q.mode, q.addr)
			require.Equal(t, q.want+" hp", out, "%s %s from the node", q.mode, q.addr)
		}
	}

	ext := &harness.NetNS{Name: extNetNS}
	addr := fmt.Sprintf("%s:%d", extNodeIP, e2eHostPort+1)
	for i := 0; i < 3; i++ {
		out, err := askFromNetNS(ext, addr, "hp")
		require.NoError(t, err, "%s from %s", addr, extNetNS)
		require.Equal(t, "pod4 hp", out, "%s from %s", addr, extNetNS)
	}

	require.NoError(t, c.cs.CoreV1().Pods(ns).Delete(ctxT(t, 30*time.Second), "pod2", metav1.DeleteOptions{}))
	delete(want, fmt.Sprintf("%s:%d/TCP", nodeIP, e2eHostPort))
	var got map[string]string
	err = wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		got = c.hostPortFrontends(t, ns)
		return len(got) == len(want), nil
	})
	require.NoError(t, err, "pod2's hostPort removed: %v", got)
	require.Equal(t, want, got)
	out, err := c.ask(t, client, "udp", fmt.Sprintf("%s:%d", nodeIP, e2eHostPort), "hp")
	require.NoError(t, err)
	require.Equal(t, "pod3 hp", out, "the UDP hostPort stays")
}
