package servicemgr

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
)

// epList is the CNI's view of the node, changeable between syncs.
type epList struct {
	mu   sync.Mutex
	list []api.Endpoint
}

func (e *epList) List() ([]api.Endpoint, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]api.Endpoint(nil), e.list...), nil
}

func (e *epList) set(eps ...api.Endpoint) {
	e.mu.Lock()
	e.list = eps
	e.mu.Unlock()
}

func hostPortEP(pod, ip string, pms ...api.PortMapping) api.Endpoint {
	return api.Endpoint{ContainerID: "c-" + pod, IfName: "eth0", PodNamespace: "default", PodName: pod, IPv4: ip, PortMappings: pms}
}

func hpm(hostIP string, port int, proto string) api.PortMapping {
	return api.PortMapping{HostIP: hostIP, HostPort: port, ContainerPort: 8080, Protocol: proto}
}

// conformancePods are the pods of the upstream test "HostPort validates
// that there is no conflict between pods with same hostPort but different
// hostIP and protocol", with node IP 192.168.1.5.
func conformancePods() []api.Endpoint {
	return []api.Endpoint{
		hostPortEP("pod1", "10.0.0.1", hpm("127.0.0.1", 54323, "tcp")),
		hostPortEP("pod2", "10.0.0.2", hpm("192.168.1.5", 54323, "tcp")),
		hostPortEP("pod3", "10.0.0.3", hpm("192.168.1.5", 54323, "udp")),
	}
}

func hostPortSvc(pod, fe string, proto lb.Proto, backend string) lb.Service {
	ap := netip.MustParseAddrPort(fe)
	return lb.Service{
		Name: lb.ServiceName{Namespace: "default", Name: pod, Port: "hostport"}, Kind: lb.HostPort,
		Frontend: lb.Frontend{Addr: ap.Addr(), Port: ap.Port(), Proto: proto},
		Backends: []lb.Backend{{Addr: netip.MustParseAddrPort(backend), Local: true, Pod: "default/" + pod}},
	}
}

func TestHostPortServices(t *testing.T) {
	nodeAddrs := []netip.Addr{addr("127.0.0.1"), addr("192.168.1.5")}
	eps := append(conformancePods(),
		hostPortEP("any", "10.0.0.4", hpm("", 80, "tcp"), api.PortMapping{HostPort: 53, ContainerPort: 5353, Protocol: "udp"}),
		hostPortEP("elsewhere", "10.0.0.5", hpm("10.9.9.9", 80, "tcp")),
		hostPortEP("late", "10.0.0.6", hpm("", 80, "tcp")),
		api.Endpoint{ContainerID: "bare", IfName: "eth0", IPv4: "10.0.0.7", PortMappings: []api.PortMapping{hpm("", 81, "tcp")}},
	)
	got, diags := hostPortServices(eps, nodeAddrs)
	bare := lb.Service{
		Name: lb.ServiceName{Name: "bare/eth0", Port: "hostport"}, Kind: lb.HostPort,
		Frontend: lb.Frontend{Addr: addr("0.0.0.0"), Port: 81, Proto: lb.TCP},
		Backends: []lb.Backend{{Addr: netip.MustParseAddrPort("10.0.0.7:8080"), Local: true, Pod: "bare/eth0"}},
	}
	assert.Equal(t, []lb.Service{
		bare,
		hostPortSvc("any", "0.0.0.0:53", lb.UDP, "10.0.0.4:5353"),
		hostPortSvc("any", "0.0.0.0:80", lb.TCP, "10.0.0.4:8080"),
		hostPortSvc("pod1", "127.0.0.1:54323", lb.TCP, "10.0.0.1:8080"),
		hostPortSvc("pod2", "192.168.1.5:54323", lb.TCP, "10.0.0.2:8080"),
		hostPortSvc("pod3", "192.168.1.5:54323", lb.UDP, "10.0.0.3:8080"),
	}, got)
	assert.Equal(t, []translate.Diagnostic{
		{Service: "default/elsewhere", Reason: "hostPort 10.9.9.9:80/TCP -> containerPort 8080: hostIP 10.9.9.9 is not an address of this node, not programmed"},
		{Service: "default/late", Reason: "hostPort 0.0.0.0:80/TCP -> containerPort 8080: already used by default/any, not programmed"},
	}, diags)
}
