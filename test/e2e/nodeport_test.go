package e2e

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/test/harness"
)

// The NodePort test device hack/local-cluster.sh creates: the agent's host
// programs attach to it (--devices), never to the machine's uplink; the
// "external" client lives in extNetNS and the node answers at extNodeIP.
const (
	extNetNS  = "sluice-e2e-ext"
	extNodeIP = "198.51.100.1"
)

// nodePortService starts two echo pods, <prefix>-1 and <prefix>-2, and a
// NodePort Service echo-<prefix> in front of them (TCP 80 -> 9000), and
// returns the namespace, the backend names and the allocated node port.
func (c *cluster) nodePortService(t *testing.T, prefix string) (ns string, backends []string, nodePort int32) {
	t.Helper()
	return c.nodePortServiceOn(t, prefix, "")
}

// nodePortServiceOn is nodePortService with both backends on node (the
// scheduler's choice when empty).
func (c *cluster) nodePortServiceOn(t *testing.T, prefix, node string) (ns string, backends []string, nodePort int32) {
	t.Helper()
	ns = c.namespace(t)
	sel := map[string]string{"app": "echo-" + prefix}
	backends = []string{prefix + "-1", prefix + "-2"}
	for _, b := range backends {
		c.echoPodOn(t, ns, b, node, sel)
	}
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-" + prefix},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	nodePort = svc.Spec.Ports[0].NodePort
	require.NotZero(t, nodePort)
	return ns, backends, nodePort
}

// TestE2ENodePortFromOutside: a client outside the node (a netns behind the
// node's test device) reaches a NodePort Service at the node's address on
// that device, and both backends answer, each naming itself.
func TestE2ENodePortFromOutside(t *testing.T) {
	c := connect(t)
	_, backends, np := c.nodePortService(t, "np")
	ext := &harness.NetNS{Name: extNetNS}
	addr := fmt.Sprintf("%s:%d", extNodeIP, np)
	requireAllBackends(t, fmt.Sprintf("NodePort %s from %s", addr, extNetNS), "np", backends,
		func() (string, error) { return askFromNetNS(ext, addr, "np") })
}

// askFromNetNS sends one line to the echo server at addr from inside ns and
// returns its reply line ("<pod> <msg>").
func askFromNetNS(ns *harness.NetNS, addr, msg string) (string, error) {
	conn, err := harness.Dial(ns, "tcp4", "", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(conn, msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestE2ENodePortFromNode: a process on the node itself (a hostNetwork pod:
// the node's network namespace, in the kubepods cgroup the socket LB is
// attached to) reaches a NodePort Service at the node's InternalIP and at
// 127.0.0.1, and both backends answer. Nothing listens on the node at that
// port: a reply naming a backend proves the translation.
func TestE2ENodePortFromNode(t *testing.T) {
	c := connect(t)
	ns, backends, np := c.nodePortService(t, "npn")

	node, err := c.cs.CoreV1().Nodes().Get(ctxT(t, 10*time.Second), c.nodeName(t), metav1.GetOptions{})
	require.NoError(t, err)
	var nodeIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}
	require.NotEmpty(t, nodeIP, "node %s has no InternalIP", node.Name)

	_, err = c.cs.CoreV1().Pods(ns).Create(ctxT(t, 30*time.Second), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "host-client"},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "client", Image: echoImage, ImagePullPolicy: corev1.PullNever, Command: []string{"/echo", "idle"},
			}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	client := c.waitReady(t, ns, "host-client")
	require.Equal(t, nodeIP, client.Status.PodIP, "a hostNetwork pod has the node's address")

	for _, addr := range []string{fmt.Sprintf("%s:%d", nodeIP, np), fmt.Sprintf("127.0.0.1:%d", np)} {
		requireAllBackends(t, fmt.Sprintf("NodePort %s from the node (hostNetwork pod)", addr), "npn", backends,
			func() (string, error) { return c.ask(t, client, "tcp", addr, "npn") })
	}
}
