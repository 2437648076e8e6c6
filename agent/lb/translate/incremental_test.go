package translate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// incremental translates in one Service at a time into f (each Service
// with only its own slices and namespace's pods) and returns every
// Service's contribution.
func incremental(in Input, f *Frontends) map[string][]lb.Service {
	byName := slicesByService(in.EndpointSlices)
	out := map[string][]lb.Service{}
	for _, s := range in.Services {
		one := in
		one.Services, one.EndpointSlices = nil, byName[nsName{s.Namespace, s.Name}]
		got, _ := Service(one, s)
		f.Replace(nil, got)
		out[s.Name] = got
	}
	return out
}

// diagnostics returns the diagnostics Service and f give for in, sorted
// and deduplicated like TranslateWithDiagnostics'.
func diagnostics(in Input, f *Frontends) []Diagnostic {
	out := f.AllDiagnostics()
	for _, s := range in.Services {
		_, d := Service(in, s)
		out = append(out, d...)
	}
	slices.SortFunc(out, compareDiagnostics)
	return slices.Compact(out)
}

// TestIncrementalMatchesTranslate: translating Services one at a time and
// deduplicating their frontends with Frontends gives what a full
// translation gives, also after Services are replaced and removed, on
// random Services that share cluster IPs, node ports and external IPs.
func TestIncrementalMatchesTranslate(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	random := func(i int) *corev1.Service {
		s := svc(fmt.Sprintf("s%02d", i), tcpPort("http", int32(80+r.IntN(2)), intstr.FromInt32(8080)),
			corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)})
		ip := netip.AddrFrom4([4]byte{10, 96, 0, byte(r.IntN(8))}).String()
		s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
		if r.IntN(3) == 0 {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = int32(30000 + r.IntN(4))
		}
		if r.IntN(4) == 0 {
			s.Spec.ExternalIPs = []string{"192.0.2.1"}
		}
		if r.IntN(4) == 0 {
			s.Spec.Selector = map[string]string{"app": "web"}
		}
		return s
	}
	in := Input{NodeName: thisNode, Pods: []Pod{
		{Namespace: "default", Name: "p1", IP: netip.MustParseAddr("10.0.9.1"), Labels: map[string]string{"app": "web"}, Ready: true},
	}}
	for i := range 40 {
		in.Services = append(in.Services, random(i))
		if r.IntN(2) == 0 {
			in.EndpointSlices = append(in.EndpointSlices, slice(fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d-1", i), slicePorts("http", 8080, "dns", 53),
				ep{addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 1}).String(), node: thisNode}))
		}
	}
	var f Frontends
	contrib := incremental(in, &f)
	for round := range 60 {
		want, wantDiags := TranslateWithDiagnostics(in)
		require.Equal(t, want, f.Owners(), "round %d", round)
		require.Equal(t, wantDiags, diagnostics(in, &f), "round %d", round)
		// Replace or remove one Service.
		i := r.IntN(len(in.Services))
		old := in.Services[i]
		var got []lb.Service
		if r.IntN(3) == 0 {
			in.Services = slices.Delete(in.Services, i, i+1)
		} else {
			s := random(i)
			s.Name = old.Name
			in.Services[i] = s
			one := in
			one.Services, one.EndpointSlices = nil, slicesByService(in.EndpointSlices)[nsName{s.Namespace, s.Name}]
			got, _ = Service(one, s)
		}
		f.Replace(contrib[old.Name], got)
		contrib[old.Name] = got
	}
}
