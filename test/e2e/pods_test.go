package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestE2EPodsGetIPsFromSluiceCNI: pods get addresses from the node's PodCIDR
// through sluice-cni, and the agent knows each of them as an endpoint with
// that address and a host veth.
func TestE2EPodsGetIPsFromSluiceCNI(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	a := c.echoPod(t, ns, "pod-a", nil)
	b := c.echoPod(t, ns, "pod-b", nil)

	node, err := c.cs.CoreV1().Nodes().Get(ctxT(t, 10*time.Second), a.Spec.NodeName, metav1.GetOptions{})
	require.NoError(t, err)
	cidr := netip.MustParsePrefix(node.Spec.PodCIDR)
	eps := c.endpoints(t)
	for _, p := range []struct{ name, ip string }{{a.Name, a.Status.PodIP}, {b.Name, b.Status.PodIP}} {
		ip := netip.MustParseAddr(p.ip)
		require.True(t, cidr.Contains(ip), "pod %s IP %s outside the node's PodCIDR %s", p.name, ip, cidr)
		ep, ok := eps[ns+"/"+p.name]
		require.True(t, ok, "agent has no endpoint for %s/%s: %v", ns, p.name, eps)
		require.Equal(t, p.ip, ep.IPv4)
		require.NotEmpty(t, ep.HostIfName)
	}
	require.NotEqual(t, a.Status.PodIP, b.Status.PodIP)
}

// TestE2EPodToPod: TCP, UDP and HTTP between two pods in both directions; every
// reply names the pod that answered.
func TestE2EPodToPod(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	a := c.echoPod(t, ns, "pod-a", nil)
	b := c.echoPod(t, ns, "pod-b", nil)
	c.requirePodToPod(t, a, b)
}

// requirePodToPod: TCP, UDP and HTTP from a to b and from b to a; every reply
// names the pod that answered, and HTTP sees the client's own pod IP.
func (c *cluster) requirePodToPod(t *testing.T, a, b *corev1.Pod) {
	t.Helper()
	for _, dir := range []struct {
		from   string
		to     string
		fromIP string
		toIP   string
	}{{a.Name, b.Name, a.Status.PodIP, b.Status.PodIP}, {b.Name, a.Name, b.Status.PodIP, a.Status.PodIP}} {
		from := a
		if dir.from == b.Name {
			from = b
		}
		out, err := c.ask(t, from, "tcp", dir.toIP+":9000", "hello-tcp")
		require.NoError(t, err)
		require.Equal(t, dir.to+" hello-tcp", out, "TCP %s -> %s", dir.from, dir.to)
		out, err = c.ask(t, from, "udp", dir.toIP+":9001", "hello-udp")
		require.NoError(t, err)
		require.Equal(t, dir.to+" hello-udp", out, "UDP %s -> %s", dir.from, dir.to)
		out, err = c.ask(t, from, "http", dir.toIP+":8080", "")
		require.NoError(t, err)
		require.Equal(t, "hello from "+dir.to+" (you are "+dir.fromIP, out[:min(len(out), len("hello from "+dir.to+" (you are "+dir.fromIP))],
			"HTTP %s -> %s sees the client's own pod IP", dir.from, dir.to)
	}
}

// TestE2EPodDeletionCleansEndpoint: deleting a pod removes its endpoint from
// the agent; the other pod's endpoint stays.
func TestE2EPodDeletionCleansEndpoint(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	a := c.echoPod(t, ns, "pod-a", nil)
	b := c.echoPod(t, ns, "pod-b", nil)
	eps := c.endpoints(t)
	require.Contains(t, eps, ns+"/"+a.Name)
	require.Contains(t, eps, ns+"/"+b.Name)
	deletedIP := b.Status.PodIP

	require.NoError(t, c.cs.CoreV1().Pods(ns).Delete(ctxT(t, 30*time.Second), b.Name, metav1.DeleteOptions{}))
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		eps = c.endpoints(t)
		_, still := eps[ns+"/"+b.Name]
		return !still, nil
	})
	require.NoError(t, err, "endpoint of deleted pod %s still listed: %v", b.Name, eps)
	for k, e := range eps {
		require.NotEqual(t, deletedIP, e.IPv4, "endpoint %s still holds the deleted pod's IP", k)
	}
	require.Contains(t, eps, ns+"/"+a.Name, "the other pod's endpoint must stay")
	out, err := c.ask(t, a, "tcp", deletedIP+":9000", "gone")
	require.Error(t, err, "deleted pod %s still answers at %s: %q", b.Name, deletedIP, out)
}
