package k8s

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeInfoFrom(t *testing.T) {
	addrs := func(a ...corev1.NodeAddress) corev1.NodeStatus { return corev1.NodeStatus{Addresses: a} }
	for _, tc := range []struct {
		name    string
		spec    corev1.NodeSpec
		status  corev1.NodeStatus
		cidr    string
		ip      string
		ready   bool
		wantErr string
	}{
		{name: "empty"},
		{name: "podCIDR only", spec: corev1.NodeSpec{PodCIDR: "10.244.3.0/24"}, cidr: "10.244.3.0/24"},
		{name: "dual stack, v4 second", spec: corev1.NodeSpec{PodCIDR: "fd00::/64", PodCIDRs: []string{"fd00::/64", "10.244.0.0/24"}},
			status: addrs(corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n1"},
				corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::2"},
				corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.0.2.2"}),
			cidr: "10.244.0.0/24", ip: "192.0.2.2", ready: true},
		{name: "unmasked CIDR is masked", spec: corev1.NodeSpec{PodCIDR: "10.244.7.9/24"}, cidr: "10.244.7.0/24"},
		{name: "external IP is not internal", status: addrs(corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.51.100.1"})},
		{name: "bad CIDR", spec: corev1.NodeSpec{PodCIDR: "10.244.0.0/33"}, wantErr: `pod CIDR "10.244.0.0/33"`},
		{name: "bad IP", status: addrs(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "x"}), wantErr: `internal IP "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: tc.spec, Status: tc.status}
			got, err := NodeInfoFrom(n)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "n1", got.Name)
			if tc.cidr == "" {
				require.False(t, got.PodCIDR.IsValid())
			} else {
				require.Equal(t, netip.MustParsePrefix(tc.cidr), got.PodCIDR)
			}
			if tc.ip == "" {
				require.False(t, got.InternalIP.IsValid())
			} else {
				require.Equal(t, netip.MustParseAddr(tc.ip), got.InternalIP)
			}
			require.Equal(t, tc.ready, got.Ready())
		})
	}
}
