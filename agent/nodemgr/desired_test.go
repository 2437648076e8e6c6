package nodemgr

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func TestFromObjects(t *testing.T) {
	objs := []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "b"},
			Spec: corev1.NodeSpec{PodCIDR: "10.244.2.0/24", PodCIDRs: []string{"10.244.2.7/24", "fd00::/64", "bad"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "b"},
				{Type: corev1.NodeInternalIP, Address: "fd00::2"},
				{Type: corev1.NodeInternalIP, Address: "172.31.250.2"},
				{Type: corev1.NodeInternalIP, Address: "172.31.250.9"},
			}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"}},
	}
	require.Equal(t, []Node{
		{Name: "a", PodCIDRs: []netip.Prefix{pfx("10.244.1.0/24")}},
		{Name: "b", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24")}, InternalIP: ip("172.31.250.2")},
	}, FromObjects(objs))
}

func TestDesired(t *testing.T) {
	nodes := []Node{
		{Name: "a", PodCIDRs: []netip.Prefix{pfx("10.244.1.0/24")}, InternalIP: ip("10.0.0.1")},
		{Name: "b", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24"), pfx("10.245.2.0/24")}, InternalIP: ip("10.0.0.2")},
		{Name: "c", PodCIDRs: []netip.Prefix{pfx("10.244.3.0/24")}},                                                   // no IP yet
		{Name: "d", PodCIDRs: []netip.Prefix{pfx("10.244.1.128/25")}, InternalIP: ip("10.0.0.4")},                     // overlaps self
		{Name: "e", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/23"), pfx("10.244.5.0/24")}, InternalIP: ip("10.0.0.5")}, // overlaps b
	}
	peers, problems := Desired("a", nodes)
	require.Equal(t, []Peer{
		{Node: "b", PodCIDR: pfx("10.244.2.0/24"), NodeIP: ip("10.0.0.2")},
		{Node: "b", PodCIDR: pfx("10.245.2.0/24"), NodeIP: ip("10.0.0.2")},
		{Node: "e", PodCIDR: pfx("10.244.5.0/24"), NodeIP: ip("10.0.0.5")},
	}, peers)
	require.Len(t, problems, 3, "%q", problems)
	require.Contains(t, problems[0], "node c")
	require.Contains(t, problems[1], "this node's 10.244.1.0/24")
	require.Contains(t, problems[2], "of node b")

	peers, _ = Desired("b", nodes[:2])
	require.Equal(t, []Peer{{Node: "a", PodCIDR: pfx("10.244.1.0/24"), NodeIP: ip("10.0.0.1")}}, peers)
	peers, problems = Desired("a", nodes[:1])
	require.Empty(t, peers)
	require.Empty(t, problems)
	require.Equal(t, ip("10.0.0.2"), SelfIP("b", nodes))
	require.False(t, SelfIP("x", nodes).IsValid())
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeNative, "native": ModeNative, "vxlan": ModeVXLAN, "none": ModeNone} {
		got, err := ParseMode(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := ParseMode("geneve")
	require.ErrorContains(t, err, "geneve")
}

func TestIPEncapRoundTrip(t *testing.T) {
	in := &ipEncap{ID: VNI, Dst: ip("172.31.250.2")}
	b, err := in.Encode()
	require.NoError(t, err)
	// struct nlattr {len=12, type=1} be64(1); {len=8, type=2} 172.31.250.2
	require.Equal(t, []byte{12, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 8, 0, 2, 0, 172, 31, 250, 2}, b)
	var out ipEncap
	require.NoError(t, out.Decode(b))
	require.True(t, in.Equal(&out))
	_, err = (&ipEncap{Dst: ip("fd00::1")}).Encode()
	require.Error(t, err)
	require.Equal(t, "0a:53:ac:1f:fa:02", VTEPMAC(ip("172.31.250.2")).String())
}
