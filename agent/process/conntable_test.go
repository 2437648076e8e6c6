package process

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

type fakeServices map[netip.AddrPort]string

func (s fakeServices) ServiceByFrontend(proto uint8, fe netip.AddrPort) (string, string, bool) {
	name, ok := s[fe]
	if !ok || proto != 6 {
		return "", "", false
	}
	return "default", name, true
}

type fakePodIPs map[netip.Addr]string

func (p fakePodIPs) PodByIP(a netip.Addr) string { return p[a] }

var (
	podA    = netip.MustParseAddrPort("10.244.1.2:40312")
	svc     = netip.MustParseAddrPort("10.96.0.10:80")
	backend = netip.MustParseAddrPort("10.244.1.3:8080")
)

func connectEvent(tgid uint32, proto uint8, src, dst, orig netip.AddrPort) procsensor.Event {
	return procsensor.Event{Connect: &procsensor.Connect{Time: t0, Key: key(tgid), Proto: proto, Src: src, Dst: dst, OrigDst: orig}}
}

func TestConnectEvent(t *testing.T) {
	f := newFixture(t, Config{
		Services: fakeServices{svc: "b"},
		PodIPs:   fakePodIPs{backend.Addr(): "default/b-1"},
	})
	f.seedChain(t, 3)
	f.m.Handle(connectEvent(3, 6, podA, backend, svc))
	ev := f.rec.last(t)
	assert.Equal(t, t0, ev.Time)
	c := ev.ProcessConnect
	assert.Equal(t, api.ProcessConnect{
		Process: c.Process, Parent: c.Parent, Ancestors: c.Ancestors,
		Protocol: "TCP", Source: "10.244.1.2:40312", Destination: "10.244.1.3:8080",
		Service:        &api.ServiceRef{Namespace: "default", Name: "b", Address: "10.96.0.10:80"},
		DestinationPod: "default/b-1",
	}, *c)
	assert.Equal(t, uint32(3), c.Process.PID)
	assert.Equal(t, uint32(2), c.Parent.PID)
	assert.Equal(t, []uint32{1}, pids(c.Ancestors))

	// A frontend the resolver does not know still shows its address.
	f.m.Handle(connectEvent(3, 17, podA, backend, svc))
	c = f.rec.last(t).ProcessConnect
	assert.Equal(t, &api.ServiceRef{Address: "10.96.0.10:80"}, c.Service)

	// Translated per packet: the socket connected to the frontend itself.
	f.m.Handle(connectEvent(3, 6, podA, svc, netip.AddrPort{}))
	c = f.rec.last(t).ProcessConnect
	assert.Equal(t, &api.ServiceRef{Namespace: "default", Name: "b", Address: "10.96.0.10:80"}, c.Service)
	assert.Equal(t, "10.96.0.10:80", c.Destination)
	assert.Empty(t, c.DestinationPod, "the backend is chosen per packet, after the socket")

	// ... and conntrack knows the backend it chose.
	f.m.cfg.Backends = fakeBackends{podA: backend}
	f.m.Handle(connectEvent(3, 6, podA, svc, netip.AddrPort{}))
	c = f.rec.last(t).ProcessConnect
	assert.Equal(t, &api.ServiceRef{Namespace: "default", Name: "b", Address: "10.96.0.10:80"}, c.Service)
	assert.Equal(t, "10.244.1.3:8080", c.Destination)
	assert.Equal(t, "default/b-1", c.DestinationPod)
	ref, ok := f.m.ProcessForFlow(6, podA, backend)
	assert.True(t, ok, "the flow to the backend names the process")
	assert.Equal(t, uint32(3), ref.PID)
}

// fakeBackends is conntrack's choice of backend by client.
type fakeBackends map[netip.AddrPort]netip.AddrPort

func (b fakeBackends) BackendFor(_ uint8, src, _ netip.AddrPort) (netip.AddrPort, bool) {
	be, ok := b[src]
	return be, ok
}

func TestProcessForFlow(t *testing.T) {
	f := newFixture(t, Config{})
	f.seedChain(t, 3)
	f.m.Handle(connectEvent(3, 6, podA, backend, svc))
	udpSrc := netip.MustParseAddrPort("10.244.1.2:0")
	dns := netip.MustParseAddrPort("10.244.1.9:53")
	f.m.Handle(connectEvent(2, 17, udpSrc, dns, netip.AddrPort{}))
	failed := netip.MustParseAddrPort("10.244.1.4:81")
	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{Key: key(2), Proto: 6, Src: podA, Dst: failed, Failed: true}})
	assert.True(t, f.rec.take()[2].ProcessConnect.Failed)

	want3 := api.ProcessRef{ExecID: ExecID(testNode, key(3)), PID: 3, Binary: "/bin/p3"}
	want2 := api.ProcessRef{ExecID: ExecID(testNode, key(2)), PID: 2, Binary: "/bin/p2"}
	for _, tc := range []struct {
		name     string
		proto    uint8
		src, dst netip.AddrPort
		want     api.ProcessRef
		ok       bool
	}{
		{"tcp request", 6, podA, backend, want3, true},
		{"tcp reply", 6, backend, podA, want3, true},
		{"other protocol", 17, podA, backend, api.ProcessRef{}, false},
		{"other source port", 6, netip.MustParseAddrPort("10.244.1.2:40313"), backend, api.ProcessRef{}, false},
		{"udp bound later", 17, netip.MustParseAddrPort("10.244.1.2:5353"), dns, want2, true},
		{"udp reply", 17, dns, netip.MustParseAddrPort("10.244.1.2:5353"), want2, true},
		{"failed connect", 6, podA, failed, api.ProcessRef{}, false},
		{"ipv4-mapped", 6, netip.MustParseAddrPort("[::ffff:10.244.1.2]:40312"), backend, want3, true},
	} {
		got, ok := f.m.ProcessForFlow(tc.proto, tc.src, tc.dst)
		assert.Equal(t, tc.ok, ok, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func TestConnTableBounded(t *testing.T) {
	ct := newConnTable(2)
	k := func(port uint16) connKey {
		return connKey{6, netip.AddrPortFrom(podA.Addr(), port), backend}
	}
	ct.add(k(1), api.ProcessRef{PID: 1})
	ct.add(k(2), api.ProcessRef{PID: 2})
	_, ok := ct.lookup(6, k(1).src, backend) // 1 is now the most recent
	require.True(t, ok)
	ct.add(k(3), api.ProcessRef{PID: 3})
	assert.Equal(t, 2, ct.len())
	_, ok = ct.lookup(6, k(2).src, backend)
	assert.False(t, ok, "the least recently used went")
	for _, port := range []uint16{1, 3} {
		ref, ok := ct.lookup(6, k(port).src, backend)
		require.True(t, ok)
		assert.Equal(t, uint32(port), ref.PID)
	}
	ct.add(k(3), api.ProcessRef{PID: 33}) // a port reused: the newer process
	ref, _ := ct.lookup(6, k(3).src, backend)
	assert.Equal(t, uint32(33), ref.PID)
	assert.Equal(t, 2, ct.len())
}
