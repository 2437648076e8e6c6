package translate

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// BenchmarkTranslate measures a full translation of n two-port services
// with 10 endpoints each (the first 2000 also have a node port).
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			in := Input{NodeName: thisNode}
			for i := range n {
				s := svc(fmt.Sprintf("s%d", i), tcpPort("http", 80, intstr.FromString("web")),
					corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)})
				ip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String()
				s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
				if i < 2000 { // the node port range is small
					s.Spec.Type = corev1.ServiceTypeNodePort
					s.Spec.Ports[0].NodePort = int32(30000 + i)
				}
				in.Services = append(in.Services, s)
				var eps []ep
				for j := range 10 {
					eps = append(eps, ep{addr: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)}).String(), node: fmt.Sprint("node-", j%3)})
				}
				in.EndpointSlices = append(in.EndpointSlices, slice(s.Name, s.Name+"-1", slicePorts("http", 8080, "dns", 53), eps...))
			}
			var out int
			b.ReportAllocs()
			for b.Loop() {
				out = len(Translate(in))
			}
			b.ReportMetric(float64(out), "lbservices")
		})
	}
}
