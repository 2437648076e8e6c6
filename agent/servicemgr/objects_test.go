package servicemgr

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/source"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
)

// svcName is the name of generated Service i (and of its EndpointSlice's
// service-name label); names sort like the indexes.
func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// vipOf is Service i's cluster IP.
func vipOf(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}) }

// backendOf is the k-th backend address of Service i (unique per service).
func backendOf(i, k int) string {
	return netip.AddrFrom4([4]byte{10, byte(200 + k), byte(i >> 8), byte(i)}).String()
}

func clusterIPService(name string, vip netip.Addr) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: vip.String(), ClusterIPs: []string{vip.String()},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

func endpointSlice(svc string, addrs ...string) *discoveryv1.EndpointSlice {
	port, portName, ready := int32(8080), "http", true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

// generated returns n ClusterIP Services with one EndpointSlice of two
// backends each, sorted like a Snapshot's lists.
func generated(n int) Objects {
	var o Objects
	for i := range n {
		o.Services = append(o.Services, clusterIPService(svcName(i), vipOf(i)))
		o.EndpointSlices = append(o.EndpointSlices, endpointSlice(svcName(i), backendOf(i, 0), backendOf(i, 1)))
	}
	return o
}

// withChanges returns o with fresh lists (the objects shared) and changes.
func (o Objects) withChanges(c source.Changes) Objects {
	o.Services = append([]*corev1.Service(nil), o.Services...)
	o.EndpointSlices = append([]*discoveryv1.EndpointSlice(nil), o.EndpointSlices...)
	o.Pods = append([]*corev1.Pod(nil), o.Pods...)
	o.Changes = &c
	return o
}

func nn(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name}
}

// lbState is the content of the three LB maps.
type lbState struct {
	svcs map[dplb.Frontend]dplb.Service
	bes  map[uint32]dplb.Backend
	rns  map[uint16]dplb.Frontend
}

// countingMaps passes every call to the real maps and counts the writes.
type countingMaps struct {
	Maps
	writes map[string]int
}

func (c *countingMaps) count(op string, err error) error {
	if c.writes == nil {
		c.writes = map[string]int{}
	}
	c.writes[op]++
	return err
}

func (c *countingMaps) UpsertBackend(id uint32, b dplb.Backend) error {
	return c.count("upsert backend", c.Maps.UpsertBackend(id, b))
}
func (c *countingMaps) DeleteBackend(id uint32) error {
	return c.count("delete backend", c.Maps.DeleteBackend(id))
}
func (c *countingMaps) UpsertService(fe dplb.Frontend, s dplb.Service) error {
	return c.count("upsert service", c.Maps.UpsertService(fe, s))
}
func (c *countingMaps) DeleteService(fe dplb.Frontend) error {
	return c.count("delete service", c.Maps.DeleteService(fe))
}
func (c *countingMaps) UpsertRevNAT(id uint16, fe dplb.Frontend) error {
	return c.count("upsert rev NAT", c.Maps.UpsertRevNAT(id, fe))
}
func (c *countingMaps) DeleteRevNAT(id uint16) error {
	return c.count("delete rev NAT", c.Maps.DeleteRevNAT(id))
}
