package endpointmgr_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
)

func withPorts(e api.Endpoint, pod string, pms ...api.PortMapping) api.Endpoint {
	e.PodNamespace, e.PodName, e.PortMappings = "default", pod, pms
	return e
}

func pm(hostIP string, port int, proto string) api.PortMapping {
	return api.PortMapping{HostIP: hostIP, HostPort: port, ContainerPort: 8080, Protocol: proto}
}

// The conformance test's three pods share one hostPort by host address and
// protocol; a fourth on the same address, port and protocol (or on every
// address) is refused at ADD naming the pod that holds the port.
func TestPutHostPortConflicts(t *testing.T) {
	f := newFixture(t)
	for i, p := range []api.Endpoint{
		withPorts(ep("a", "10.0.0.1", 11), "pod1", pm("127.0.0.1", 54323, "tcp")),
		withPorts(ep("b", "10.0.0.2", 12), "pod2", pm("192.168.1.5", 54323, "tcp")),
		withPorts(ep("c", "10.0.0.3", 13), "pod3", pm("192.168.1.5", 54323, "udp")),
	} {
		_, err := f.m.Put(p)
		require.NoError(t, err, "pod %d", i+1)
	}
	for _, tc := range []struct {
		name string
		pm   api.PortMapping
		want string
	}{
		{"same address, port and protocol", pm("192.168.1.5", 54323, "TCP"), "pod default/pod2"},
		{"every address against a given one", pm("", 54323, "udp"), "pod default/pod3"},
		{"0.0.0.0 is every address", pm("0.0.0.0", 54323, "tcp"), "pod default/pod1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.m.Put(withPorts(ep("d", "10.0.0.4", 14), "pod4", tc.pm))
			require.ErrorIs(t, err, endpointmgr.ErrConflict)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "already used by")
			assert.Equal(t, 3, f.m.Len(), "nothing stored")
		})
	}

	// Another port, or the same endpoint again (a retried ADD), is fine.
	_, err := f.m.Put(withPorts(ep("d", "10.0.0.4", 14), "pod4", pm("", 54324, "tcp")))
	require.NoError(t, err)
	_, err = f.m.Put(withPorts(ep("b", "10.0.0.2", 12), "pod2", pm("192.168.1.5", 54323, "tcp")))
	require.NoError(t, err, "replacing an endpoint keeps its own ports")

	// Once the holder is deleted the port is free.
	require.NoError(t, f.m.Delete("b", "eth0"))
	_, err = f.m.Put(withPorts(ep("e", "10.0.0.5", 15), "pod5", pm("192.168.1.5", 54323, "tcp")))
	require.NoError(t, err)
}

// Port mappings are stored normalised and survive a restart with the
// endpoint.
func TestPortMappingsNormalisedAndRestored(t *testing.T) {
	f := newFixture(t)
	out, err := f.m.Put(withPorts(ep("a", "10.0.0.1", 11), "pod1",
		api.PortMapping{HostIP: "0.0.0.0", HostPort: 80, ContainerPort: 8080, Protocol: "TCP"},
		api.PortMapping{HostIP: "::ffff:192.168.1.5", HostPort: 53, ContainerPort: 5353, Protocol: "UDP"},
		api.PortMapping{HostPort: 81, ContainerPort: 8081}))
	require.NoError(t, err)
	want := []api.PortMapping{
		{HostPort: 80, ContainerPort: 8080, Protocol: "tcp"},
		{HostIP: "192.168.1.5", HostPort: 53, ContainerPort: 5353, Protocol: "udp"},
		{HostPort: 81, ContainerPort: 8081, Protocol: "tcp"},
	}
	assert.Equal(t, want, out.PortMappings)
	f.restart(t, func(string, int) (bool, error) { return true, nil })
	got, err := f.m.Get("a", "eth0")
	require.NoError(t, err)
	assert.Equal(t, want, got.PortMappings)
}

func TestPutRejectsBadPortMappings(t *testing.T) {
	f := newFixture(t)
	for _, p := range []api.PortMapping{
		{HostPort: 0, ContainerPort: 80},
		{HostPort: 80, ContainerPort: 70000},
		{HostPort: 80, ContainerPort: 80, Protocol: "sctp"},
		{HostPort: 80, ContainerPort: 80, HostIP: "fd00::1"},
		{HostPort: 80, ContainerPort: 80, HostIP: "node"},
	} {
		_, err := f.m.Put(withPorts(ep("a", "10.0.0.1", 11), "pod1", p))
		require.ErrorIs(t, err, endpointmgr.ErrInvalid, "%+v", p)
	}
	_, err := f.m.Put(withPorts(ep("a", "10.0.0.1", 11), "pod1", pm("", 80, "tcp"), pm("0.0.0.0", 80, "TCP")))
	require.ErrorIs(t, err, endpointmgr.ErrInvalid, "one pod, the same address twice")
	_, err = f.m.Put(withPorts(ep("a", "10.0.0.1", 11), "pod1", pm("", 80, "tcp"), pm("127.0.0.1", 80, "tcp"), pm("", 80, "udp")))
	require.NoError(t, err, "one pod: every address and a given one may share a port")
}
