package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/test/echoserver"
	"github.com/sluicenet/sluice/test/harness"
)

// The cross-node tests (TestMultiNode*, `make e2e-multinode`) run on a
// cluster of two or more Ready nodes (hack/local-cluster.sh up --nodes 2, in
// either --routing mode): node 1 is this host, the remote node another node
// of the cluster. With fewer Ready nodes they skip, unless SLUICE_E2E_NODES
// asks for two or more: then they fail. They are no TestE2E* tests, so that a
// single-node `make e2e`, whose log gate fails on any skipped TestE2E* test,
// is not failed by them.

// TestMultiNodePodToPod: TCP, UDP and HTTP between pods on every pair of
// Ready nodes, both ways, each reply naming the pod that answered and HTTP
// seeing the client's own pod IP (no NAT between nodes); this node routes
// every remote pod as the agents' routing mode says.
func TestMultiNodePodToPod(t *testing.T) {
	c := connect(t)
	host, _ := c.crossNodes(t)
	ns := c.namespace(t)
	nodes := c.readyNodes(t)
	pods := make([]*corev1.Pod, len(nodes))
	for i, n := range nodes {
		pods[i] = c.echoPodOn(t, ns, fmt.Sprintf("pod-%d", i), n.Name, nil)
	}
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			t.Logf("%s on %s <-> %s on %s", pods[i].Name, nodes[i].Name, pods[j].Name, nodes[j].Name)
			c.requirePodToPod(t, pods[i], pods[j])
		}
		if nodes[i].Name != host.Name {
			c.requireRoutedTo(t, nodes[i], netip.MustParseAddr(pods[i].Status.PodIP))
		}
	}
}

// TestMultiNodeService: a ClusterIP Service whose backends all run on the
// other node answers a client on this node, and the other way round, over TCP
// and UDP, every backend naming itself.
func TestMultiNodeService(t *testing.T) {
	c := connect(t)
	host, remote := c.crossNodes(t)
	for _, d := range []struct{ client, backends string }{{host.Name, remote.Name}, {remote.Name, host.Name}} {
		t.Run("backends-on-"+d.backends, func(t *testing.T) {
			ns := c.namespace(t)
			sel := map[string]string{"app": "echo-x"}
			c.echoPodOn(t, ns, "backend-1", d.backends, sel)
			c.echoPodOn(t, ns, "backend-2", d.backends, sel)
			client := c.echoPodOn(t, ns, "client", d.client, nil)
			c.requireEchoService(t, ns, sel, client, []string{"backend-1", "backend-2"})
		})
	}
}

// TestMultiNodeNodePort: a client outside the nodes (the netns on the
// underlay) reaches a NodePort Service at one node's address while both
// backends run on the other node: at node 1's test device address with the
// backends on the remote node, and at the remote node's address with them on
// node 1.
func TestMultiNodeNodePort(t *testing.T) {
	c := connect(t)
	host, remote := c.crossNodes(t)
	ext := &harness.NetNS{Name: extNetNS}
	for _, d := range []struct {
		frontend string
		backends string
	}{{extNodeIP, remote.Name}, {internalIP(t, remote).String(), host.Name}} {
		t.Run("backends-on-"+d.backends, func(t *testing.T) {
			_, backends, np := c.nodePortServiceOn(t, "xnp", d.backends)
			addr := fmt.Sprintf("%s:%d", d.frontend, np)
			requireAllBackends(t, fmt.Sprintf("NodePort %s from %s", addr, extNetNS), "xnp", backends,
				func() (string, error) { return askFromNetNS(ext, addr, "xnp") })
		})
	}
}

// TestMultiNodeNetworkPolicy: a NetworkPolicy admitting only role=allowed
// to the server is enforced on the server's node for clients on the other
// node by their identity: the allowed client gets through, the other one (same
// node, other labels) does not; with the server on either node.
func TestMultiNodeNetworkPolicy(t *testing.T) {
	c := connect(t)
	host, remote := c.crossNodes(t)
	for _, d := range []struct{ srv, clients string }{{remote.Name, host.Name}, {host.Name, remote.Name}} {
		t.Run("srv-on-"+d.srv, func(t *testing.T) {
			ns := c.namespace(t)
			srv, allowed, denied := policyPodsOn(t, c, ns, d.srv, d.clients)
			_, err := c.cs.NetworkingV1().NetworkPolicies(ns).Create(ctxT(t, 10*time.Second), srvFromAllowed(), metav1.CreateOptions{})
			require.NoError(t, err)
			start := time.Now()
			c.eventually(t, denied, srv, false, "NetworkPolicy applied")
			t.Logf("denied client stopped %s after the policy's creation", time.Since(start).Round(time.Second))
			c.eventually(t, allowed, srv, true, "NetworkPolicy applied")
		})
	}
}

// TestMultiNodeIdentity: pods with the same labels on two nodes get the
// same identity number from their nodes' agents, and both agents list it with
// the same labels (read with the sluice CLI in each agent's container).
func TestMultiNodeIdentity(t *testing.T) {
	c := connect(t)
	host, remote := c.crossNodes(t)
	ns := c.namespace(t)
	lbl := map[string]string{"app": "twin"}
	c.echoPodOn(t, ns, "twin-host", host.Name, lbl)
	c.echoPodOn(t, ns, "twin-remote", remote.Name, lbl)
	c.echoPodOn(t, ns, "other", remote.Name, map[string]string{"app": "other"})

	idHost := c.podIdentity(t, host.Name, ns+"/twin-host")
	idRemote := c.podIdentity(t, remote.Name, ns+"/twin-remote")
	require.Equal(t, idHost, idRemote, "same labels on two nodes, same identity")
	require.NotEqual(t, idHost, c.podIdentity(t, remote.Name, ns+"/other"), "other labels, other identity")
	labelsHost := c.identityLabels(t, host.Name, idHost)
	require.ElementsMatch(t, labelsHost, c.identityLabels(t, remote.Name, idHost), "identity %d's labels on both nodes", idHost)
	require.Contains(t, labelsHost, "k8s:app=twin")
	require.Contains(t, labelsHost, "k8s:io.kubernetes.pod.namespace="+ns)
}

// TestMultiNodeAgentRestart: one TCP connection from a pod on this node to
// a pod on the remote node carries requests before, during and after the
// remote node's agent is replaced, then this node's; a pod created afterwards
// reaches the server too.
func TestMultiNodeAgentRestart(t *testing.T) {
	c := connect(t)
	host, remote := c.crossNodes(t)
	ns := c.namespace(t)
	client := c.echoPodOn(t, ns, "client", host.Name, nil)
	server := c.echoPodOn(t, ns, "server", remote.Name, nil)
	s := c.openStream(t, client, server.Status.PodIP+":9000", "cross-node")
	backends := []string{server.Name}
	s.roundTrip(t, "before", backends)
	for _, node := range []string{remote.Name, host.Name} {
		old := c.agentOn(t, node)
		fresh := c.replaceAgent(t, old, func() { s.roundTrip(t, "during restart on "+node, backends) })
		t.Logf("agent pod %s on %s replaced by %s after %d round trips", old.Name, node, fresh.Name, s.seq)
		for range 3 {
			s.roundTrip(t, "after restart on "+node, backends)
		}
	}
	late := c.echoPodOn(t, ns, "late", host.Name, nil)
	out, err := c.ask(t, late, "tcp", server.Status.PodIP+":9000", "late")
	require.NoError(t, err)
	require.Equal(t, server.Name+" late", out)
}

// crossNodes returns this host's node (named by the hostname) and another
// Ready node.
func (c *cluster) crossNodes(t *testing.T) (host, remote *corev1.Node) {
	t.Helper()
	want, _ := strconv.Atoi(os.Getenv("SLUICE_E2E_NODES"))
	ready := c.readyNodes(t)
	if len(ready) < 2 {
		if want >= 2 {
			t.Fatalf("SLUICE_E2E_NODES=%d but %d node(s) Ready", want, len(ready))
		}
		t.Skipf("needs two Ready nodes (hack/local-cluster.sh up --nodes 2), %d Ready", len(ready))
	}
	require.GreaterOrEqual(t, len(ready), want, "SLUICE_E2E_NODES=%d Ready nodes", want)
	name, err := os.Hostname()
	require.NoError(t, err)
	i := slices.IndexFunc(ready, func(n *corev1.Node) bool { return n.Name == name })
	require.GreaterOrEqual(t, i, 0, "this host's node %s is not Ready", name)
	host = ready[i]
	remote = ready[(i+1)%len(ready)]
	t.Logf("node 1 %s (%s), remote node %s (%s)", host.Name, internalIP(t, host), remote.Name, internalIP(t, remote))
	return host, remote
}

// readyNodes lists the Ready nodes.
func (c *cluster) readyNodes(t *testing.T) []*corev1.Node {
	t.Helper()
	l, err := c.cs.CoreV1().Nodes().List(ctxT(t, 10*time.Second), metav1.ListOptions{})
	require.NoError(t, err)
	var ready []*corev1.Node
	for i := range l.Items {
		if nodeReady(&l.Items[i]) {
			ready = append(ready, &l.Items[i])
		}
	}
	return ready
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func internalIP(t *testing.T, n *corev1.Node) netip.Addr {
	t.Helper()
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip, err := netip.ParseAddr(a.Address)
			require.NoError(t, err, "InternalIP of %s", n.Name)
			return ip
		}
	}
	t.Fatalf("node %s has no InternalIP", n.Name)
	return netip.Addr{}
}

// agentOn returns the agent DaemonSet pod on node.
func (c *cluster) agentOn(t *testing.T, node string) *corev1.Pod {
	t.Helper()
	l, err := c.cs.CoreV1().Pods("kube-system").List(ctxT(t, 10*time.Second), metav1.ListOptions{
		LabelSelector: agentSelector, FieldSelector: "spec.nodeName=" + node,
	})
	require.NoError(t, err)
	require.Len(t, l.Items, 1, "one agent pod on %s", node)
	return &l.Items[0]
}

// sluiceCLI runs the sluice CLI shipped in the agent's image in node's agent
// container (on the agent's default socket) and returns its output.
func (c *cluster) sluiceCLI(t *testing.T, node string, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := c.exec(ctxT(t, 30*time.Second), c.agentOn(t, node), nil, &out, append([]string{"/usr/bin/sluice"}, args...)...)
	return out.String(), err
}

// waitUntil polls f every 500 ms for up to 30 s until it succeeds.
func waitUntil(t *testing.T, what string, f func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	})
	require.NoError(t, err, "%s: %v", what, last)
}

// podIdentity returns the identity node's agent gives the pod ns/name (`sluice
// policy get`), once it is a cluster-allocated one.
func (c *cluster) podIdentity(t *testing.T, node, pod string) uint32 {
	t.Helper()
	var ep api.EndpointPolicy
	waitUntil(t, "identity of "+pod+" on "+node, func() error {
		out, err := c.sluiceCLI(t, node, "policy", "get", pod, "-o", "json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &ep); err != nil {
			return fmt.Errorf("sluice policy get %s: %w (%q)", pod, err, out)
		}
		if ep.Identity < uint32(identity.MinAllocated) {
			return fmt.Errorf("identity %d is no cluster identity yet", ep.Identity)
		}
		return nil
	})
	return ep.Identity
}

// identityLabels returns the labels of identity id in node's agent's list
// (`sluice identity list`).
func (c *cluster) identityLabels(t *testing.T, node string, id uint32) []string {
	t.Helper()
	var labels []string
	waitUntil(t, fmt.Sprintf("identity %d listed on %s", id, node), func() error {
		out, err := c.sluiceCLI(t, node, "identity", "list", "-o", "json")
		if err != nil {
			return err
		}
		var ids []api.Identity
		if err := json.Unmarshal([]byte(out), &ids); err != nil {
			return fmt.Errorf("sluice identity list: %w (%q)", err, out)
		}
		for _, i := range ids {
			if i.ID == id {
				labels = i.Labels
				return nil
			}
		}
		return fmt.Errorf("identity %d not in the list of %d", id, len(ids))
	})
	return labels
}

// requireRoutedTo checks this host's route to addr, a pod of node remote, in
// the agents' routing mode (the DaemonSet's --routing): via remote's
// InternalIP (native) or through sluice_vxlan (vxlan).
func (c *cluster) requireRoutedTo(t *testing.T, remote *corev1.Node, addr netip.Addr) {
	t.Helper()
	mode := c.routingMode(t)
	routes, err := netlink.RouteGet(addr.AsSlice())
	require.NoError(t, err, "route to %s", addr)
	require.Len(t, routes, 1, "one route to %s", addr)
	r := routes[0]
	link, err := netlink.LinkByIndex(r.LinkIndex)
	require.NoError(t, err)
	t.Logf("routing %s: %s via %v dev %s", mode, addr, r.Gw, link.Attrs().Name)
	switch mode {
	case "native":
		require.Equal(t, internalIP(t, remote).String(), r.Gw.String(), "%s routed via %s's InternalIP", addr, remote.Name)
	case "vxlan":
		require.Equal(t, "sluice_vxlan", link.Attrs().Name, "%s routed through the VXLAN device", addr)
	default:
		t.Fatalf("the agents' routing mode is %q, want native or vxlan", mode)
	}
}

// routingMode returns the agents' routing mode (the DaemonSet's --routing).
func (c *cluster) routingMode(t *testing.T) string {
	t.Helper()
	ds, err := c.cs.AppsV1().DaemonSets("kube-system").Get(ctxT(t, 10*time.Second), "sluice-agent", metav1.GetOptions{})
	require.NoError(t, err)
	var mode string
	for _, a := range ds.Spec.Template.Spec.Containers[0].Command {
		if m, ok := strings.CutPrefix(a, "--routing="); ok {
			mode = m
		}
	}
	return mode
}

// TestMultiNodePodToNodeIP: a pod on the remote node reaches this node's
// own address (a server of this test in the host's network namespace, as
// the API server or a host-network pod would be), which sees the pod's own
// IP; with --routing vxlan the pod's packets arrive through the tunnel
// (sluice_vxlan's receive counter grows by at least them), not on the
// underlay with a pod source address, which a real underlay may drop.
func TestMultiNodePodToNodeIP(t *testing.T) {
	c := connect(t)
	host, remote := c.crossNodes(t)
	ns := c.namespace(t)
	client := c.echoPodOn(t, ns, "client", remote.Name, nil)
	ln, err := net.Listen("tcp4", net.JoinHostPort(internalIP(t, host).String(), "0"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		done <- echoserver.Serve(ln, func(conn net.Conn) {
			peer := conn.RemoteAddr().(*net.TCPAddr).IP
			s := bufio.NewScanner(conn)
			for s.Scan() {
				if _, err := fmt.Fprintf(conn, "%s %s %s\n", host.Name, peer, s.Text()); err != nil {
					return
				}
			}
		})
	}()
	t.Cleanup(func() { ln.Close(); require.NoError(t, <-done) })

	mode := c.routingMode(t)
	rx := func() uint64 {
		l, err := netlink.LinkByName("sluice_vxlan")
		require.NoError(t, err)
		return l.Attrs().Statistics.RxPackets
	}
	var before uint64
	if mode == "vxlan" {
		before = rx()
	}
	const n = 10
	for i := range n {
		msg := fmt.Sprintf("q%d", i)
		out, err := c.ask(t, client, "tcp", ln.Addr().String(), msg)
		require.NoError(t, err, "%s on %s to %s", client.Name, remote.Name, ln.Addr())
		require.Equal(t, fmt.Sprintf("%s %s %s", host.Name, client.Status.PodIP, msg), out, "the node's server sees the pod's IP")
	}
	if mode == "vxlan" {
		got := rx() - before
		t.Logf("sluice_vxlan received %d packets during %d connections", got, n)
		require.GreaterOrEqual(t, got, uint64(3*n), "the pod's packets (SYN, request, FIN at least) came through the tunnel")
	}
}
