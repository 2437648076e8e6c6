package translate

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestTranslateDeterministic shuffles the input order: the output must not change.
func TestTranslateDeterministic(t *testing.T) {
	var in Input
	in.NodeName = thisNode
	for i, n := range []string{"a", "b", "c", "d"} {
		s := svc(n, tcpPort("http", 80, intstr.FromString("web")), corev1.ServicePort{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 53})
		ip := netip.AddrFrom4([4]byte{10, 96, 1, byte(i)}).String()
		s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = int32(30000 + i)
		in.Services = append(in.Services, s)
		for j := range 3 {
			in.EndpointSlices = append(in.EndpointSlices, slice(n, n+strings.Repeat("x", j), slicePorts("http", 8080+j, "udp", 53),
				ep{addr: netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j)}).String(), node: thisNode},
				ep{addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 9}).String(), node: "node-b"},
			))
		}
	}
	want, wantDiags := TranslateWithDiagnostics(in)
	require.Len(t, want, 4*3) // per service: http ClusterIP, http NodePort, udp ClusterIP
	require.Empty(t, wantDiags)
	require.True(t, slices.IsSortedFunc(want, compareServices))
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r.Shuffle(len(in.Services), func(i, j int) { in.Services[i], in.Services[j] = in.Services[j], in.Services[i] })
		r.Shuffle(len(in.EndpointSlices), func(i, j int) {
			in.EndpointSlices[i], in.EndpointSlices[j] = in.EndpointSlices[j], in.EndpointSlices[i]
		})
		got, diags := TranslateWithDiagnostics(in)
		require.Equal(t, want, got)
		require.Empty(t, diags)
	}
}
