package datapath_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// Host device topology, built in a test netns so FIB lookups are
// deterministic: ext0 (192.168.250.1/24) faces the client, rmt0
// (192.168.251.1/24) a remote backend; both neighbours are permanent entries.
// A local backend pod is an endpoint on a fake ifindex (a redirect target).
var (
	hostExtIP    = netip.MustParseAddr("192.168.250.1")
	hostRmtIP    = netip.MustParseAddr("192.168.251.1")
	hostClient   = netip.MustParseAddr("192.168.250.10")
	hostClientMA = net.HardwareAddr{0x02, 0, 0, 0, 0xfa, 0x0a}
	hostRemote   = netip.MustParseAddr("192.168.251.2")
	hostRemoteMA = net.HardwareAddr{0x02, 0, 0, 0, 0xfb, 0x02}
	hostPod      = netip.MustParseAddr("10.244.1.11")
	hostPodMAC   = bMAC
	hostPodNode  = bNodeMAC
	hostExtIP2   = netip.MustParseAddr("203.0.113.5") // an ExternalIP, not a node address
)

const (
	hostNodePort = 30080
	hostPodIfidx = 4242
	beLocal      = 1
	beRemote     = 2
)

type hostEnv struct {
	d          *datapath.Datapath
	ns         *harness.NetNS
	ext, rmt   int // ifindexes
	extMAC     net.HardwareAddr
	rmtMAC     net.HardwareAddr
	nextRevNAT uint16
}

func newHostEnv(t testing.TB) *hostEnv {
	t.Helper()
	return newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{SNATAddr: hostExtIP}})
}

// newHostEnvWith is newHostEnv with the datapath loaded with opts (whose
// Host.SNATAddr should be hostExtIP).
func newHostEnvWith(t testing.TB, opts datapath.Options) *hostEnv {
	t.Helper()
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), opts)
	e := &hostEnv{d: d, ns: harness.NewNetNS(t, "sl-host-"), nextRevNAT: 1}
	for _, args := range [][]string{
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "link", "add", "ext0", "type", "veth", "peer", "name", "extp"},
		{"ip", "link", "add", "rmt0", "type", "veth", "peer", "name", "rmtp"},
		{"ip", "addr", "add", "192.168.250.1/24", "dev", "ext0"},
		{"ip", "addr", "add", "192.168.251.1/24", "dev", "rmt0"},
		{"ip", "link", "set", "ext0", "up"}, {"ip", "link", "set", "extp", "up"},
		{"ip", "link", "set", "rmt0", "up"}, {"ip", "link", "set", "rmtp", "up"},
		{"ip", "neigh", "replace", hostClient.String(), "lladdr", hostClientMA.String(), "nud", "permanent", "dev", "ext0"},
		{"ip", "neigh", "replace", hostRemote.String(), "lladdr", hostRemoteMA.String(), "nud", "permanent", "dev", "rmt0"},
	} {
		e.ns.Run(t, args[0], args[1:]...)
	}
	e.ns.Do(t, func() {
		ext, err := net.InterfaceByName("ext0")
		require.NoError(t, err)
		rmt, err := net.InterfaceByName("rmt0")
		require.NoError(t, err)
		e.ext, e.extMAC, e.rmt, e.rmtMAC = ext.Index, ext.HardwareAddr, rmt.Index, rmt.HardwareAddr
	})
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: hostPod, Ifindex: hostPodIfidx, ID: 1, MAC: hostPodMAC, NodeMAC: hostPodNode}))
	require.NoError(t, d.LB().SetNodeAddrs([]netip.Addr{hostExtIP, hostRmtIP}))
	require.NoError(t, d.LB().UpsertBackend(beLocal, lbmap.Backend{Addr: hostPod, Port: 8080, Proto: protoTCP}))
	require.NoError(t, d.LB().UpsertBackend(beRemote, lbmap.Backend{Addr: hostRemote, Port: 8080, Proto: protoTCP}))
	return e
}

// service programs frontend fe with the backends ids.
func (e *hostEnv) service(t testing.TB, fe lbmap.Frontend, flags lbmap.Flags, ids ...uint32) {
	t.Helper()
	id := e.nextRevNAT
	e.nextRevNAT++
	require.NoError(t, e.d.LB().UpsertRevNAT(id, fe))
	require.NoError(t, e.d.LB().UpsertService(fe, lbmap.Service{RevNATID: id, Flags: flags, Backends: ids}))
}

func nodePortFE(port uint16) lbmap.Frontend {
	return lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: port, Proto: protoTCP}
}

// run runs prog on pkt as if it passed ifindex, inside the test netns.
func (e *hostEnv) run(t testing.TB, egress bool, pkt []byte, ifindex int) progtest.Result {
	t.Helper()
	prog := e.d.FromNetdev()
	if egress {
		prog = e.d.ToNetdev()
	}
	var res progtest.Result
	e.ns.Do(t, func() { res = progtest.Run(t, prog, pkt, uint32(ifindex)) })
	return res
}

// fromClient is a client packet arriving at ext0 for dst:dport.
func (e *hostEnv) fromClient(dst netip.Addr, dport uint16, sport uint16, flags uint8) []byte {
	return progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: dst,
		SrcPort: sport, DstPort: dport, TCPFlags: flags, Payload: []byte("hello")}.IPv4()
}

func addrPorts(t testing.TB, pkt []byte) (src, dst netip.AddrPort, ttl uint8) {
	t.Helper()
	d := progtest.Decode(t, pkt)
	require.NotNil(t, d.IP)
	require.NotNil(t, d.TCP)
	s, _ := netip.AddrFromSlice(d.IP.SrcIP.To4())
	ds, _ := netip.AddrFromSlice(d.IP.DstIP.To4())
	return netip.AddrPortFrom(s, uint16(d.TCP.SrcPort)), netip.AddrPortFrom(ds, uint16(d.TCP.DstPort)), d.IP.TTL
}

func macs(t testing.TB, pkt []byte) (dst, src net.HardwareAddr) {
	t.Helper()
	d := progtest.Decode(t, pkt)
	return d.Eth.DstMAC, d.Eth.SrcMAC
}

func natEntries(t testing.TB, d *datapath.Datapath, kind ctmap.NATKind) []ctmap.NATEntry {
	t.Helper()
	all, err := d.CT().NATEntries()
	require.NoError(t, err)
	var out []ctmap.NATEntry
	for _, n := range all {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

func TestPrivilegedHostNodePortLocalBackend(t *testing.T) {
	e := newHostEnv(t)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)

	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "redirected into the pod")
	src, dst, ttl := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), src, "client address preserved")
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst)
	assert.Equal(t, uint8(63), ttl)
	dmac, smac := macs(t, res.Packet)
	assert.Equal(t, hostPodMAC, dmac)
	assert.Equal(t, hostPodNode, smac)
	checkSums(t, res.Packet)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBTranslated, metricsmap.DirIngress).Packets)

	rev := natEntries(t, e.d, ctmap.NATRevDNAT)
	require.Len(t, rev, 1)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), rev[0].Src)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), rev[0].Dst)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), rev[0].Frontend)
	assert.Positive(t, rev[0].Expires)
	assert.Empty(t, natEntries(t, e.d, ctmap.NATIn), "no SNAT for a local backend")

	// The pod's reply leaves through ext0 from the frontend.
	reply := progtest.Packet{SrcMAC: e.extMAC, DstMAC: hostClientMA, Src: hostPod, Dst: hostClient,
		SrcPort: 8080, DstPort: 40000, TCPFlags: progtest.TCPSyn | progtest.TCPAck}.IPv4()
	res = e.run(t, true, reply, e.ext)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	src, dst, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), src)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), dst)
	checkSums(t, res.Packet)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBRevNAT, metricsmap.DirEgress).Packets)

	// Conntrack saw both directions of the flow.
	cts, err := e.d.CT().Entries()
	require.NoError(t, err)
	var found bool
	for _, c := range cts {
		if !c.Service && c.Dst == netip.AddrPortFrom(hostPod, 8080) {
			found = true
			assert.Equal(t, uint16(0), c.RevNATID, "pod programs leave NodePort replies alone")
			assert.Equal(t, uint64(2), c.Packets)
		}
	}
	assert.True(t, found, "backend conntrack entry")

	// NodePort answers only on node addresses.
	in := e.fromClient(netip.MustParseAddr("192.168.250.99"), hostNodePort, 40001, progtest.TCPSyn)
	res = e.run(t, false, in, e.ext)
	assert.Equal(t, uint32(progtest.ActOK), res.Verdict)
	assert.Equal(t, in, res.Packet[:len(in)], "untouched")
}

func TestPrivilegedHostNodePortRemoteBackendSNAT(t *testing.T) {
	e := newHostEnv(t)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)

	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "forwarded to rmt0")
	src, dst, ttl := addrPorts(t, res.Packet)
	assert.Equal(t, hostExtIP, src.Addr(), "SNAT to the node IP")
	assert.GreaterOrEqual(t, src.Port(), uint16(61000), "SNAT port range")
	assert.Equal(t, netip.AddrPortFrom(hostRemote, 8080), dst)
	assert.Equal(t, uint8(63), ttl)
	dmac, smac := macs(t, res.Packet)
	assert.Equal(t, hostRemoteMA, dmac, "FIB neighbour")
	assert.Equal(t, e.rmtMAC, smac)
	checkSums(t, res.Packet)
	natPort := src.Port()
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBSNAT, metricsmap.DirIngress).Packets)

	ins := natEntries(t, e.d, ctmap.NATIn)
	require.Len(t, ins, 1)
	assert.Equal(t, netip.AddrPortFrom(hostRemote, 8080), ins[0].Src)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, natPort), ins[0].Dst)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), ins[0].To)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), ins[0].Frontend)
	outs := natEntries(t, e.d, ctmap.NATOut)
	require.Len(t, outs, 1)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, natPort), outs[0].To)

	// Later packets of the flow keep their SNAT port.
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPAck), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, _, _ = addrPorts(t, res.Packet)
	assert.Equal(t, natPort, src.Port())

	// A second client flow gets another port.
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40001, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src2, _, _ := addrPorts(t, res.Packet)
	assert.NotEqual(t, natPort, src2.Port())

	// The backend's reply arrives at rmt0 for the SNAT address and goes back
	// to the client, from the frontend, out of ext0.
	reply := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP,
		SrcPort: 8080, DstPort: natPort, TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("remote")}.IPv4()
	res = e.run(t, false, reply, e.rmt)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst, ttl = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), src)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), dst)
	assert.Equal(t, uint8(63), ttl)
	dmac, smac = macs(t, res.Packet)
	assert.Equal(t, hostClientMA, dmac)
	assert.Equal(t, e.extMAC, smac)
	checkSums(t, res.Packet)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.rmt), metricsmap.ReasonLBRevSNAT, metricsmap.DirIngress).Packets)

	// A packet to the node IP on a port no flow holds is the stack's.
	stray := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP,
		SrcPort: 8080, DstPort: 1234, TCPFlags: progtest.TCPAck}.IPv4()
	res = e.run(t, false, stray, e.rmt)
	assert.Equal(t, uint32(progtest.ActOK), res.Verdict)
	assert.Equal(t, stray, res.Packet[:len(stray)])
}

func TestPrivilegedHostNodePortNoSNATAddress(t *testing.T) {
	harness.RequirePrivileged(t)
	e := newHostEnv(t)
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	e.d = d
	require.NoError(t, d.LB().SetNodeAddrs([]netip.Addr{hostExtIP}))
	require.NoError(t, d.LB().UpsertBackend(beRemote, lbmap.Backend{Addr: hostRemote, Port: 8080, Proto: protoTCP}))
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	assert.Equal(t, uint64(1), counter(t, d, uint32(e.ext), metricsmap.DropNATNoPort, metricsmap.DirIngress).Packets)
}

func TestPrivilegedHostExactBeforeWildcard(t *testing.T) {
	e := newHostEnv(t)
	const port = 30081
	// An ExternalIP on a node address and the NodePort of another service
	// share the port: the exact frontend wins on its address only.
	e.service(t, lbmap.Frontend{Addr: hostExtIP, Port: port, Proto: protoTCP}, lbmap.FlagExternal, beLocal)
	e.service(t, nodePortFE(port), lbmap.FlagNodePort, beRemote)
	// An ExternalIP that is no node address, and a ClusterIP (not external).
	e.service(t, lbmap.Frontend{Addr: hostExtIP2, Port: 80, Proto: protoTCP}, lbmap.FlagExternal, beLocal)
	e.service(t, lbmap.Frontend{Addr: lbVIP, Port: 80, Proto: protoTCP}, 0, beLocal)

	res := e.run(t, false, e.fromClient(hostExtIP, port, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	_, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst, "exact frontend")

	res = e.run(t, false, e.fromClient(hostRmtIP, port, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	_, dst, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostRemote, 8080), dst, "wildcard frontend on another node address")

	res = e.run(t, false, e.fromClient(hostExtIP2, 80, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	_, dst, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst, "ExternalIP")
	rev := natEntries(t, e.d, ctmap.NATRevDNAT)
	assert.Contains(t, []netip.AddrPort{rev[0].Frontend, rev[len(rev)-1].Frontend}, netip.AddrPortFrom(hostExtIP2, 80))

	in := e.fromClient(lbVIP, 80, 40000, progtest.TCPSyn)
	res = e.run(t, false, in, e.ext)
	assert.Equal(t, uint32(progtest.ActOK), res.Verdict, "ClusterIPs are not served on external devices")
	assert.Equal(t, in, res.Packet[:len(in)])
}

func TestPrivilegedHostLocalOnlyAndNoBackends(t *testing.T) {
	e := newHostEnv(t)
	e.service(t, nodePortFE(30082), lbmap.FlagNodePort|lbmap.FlagLocalOnly)
	res := e.run(t, false, e.fromClient(hostExtIP, 30082, 40000, progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict, "eTP=Local without local backend drops")
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.DropNoLocalBackend, metricsmap.DirIngress).Packets)

	e.service(t, nodePortFE(30083), lbmap.FlagNodePort)
	in := e.fromClient(hostExtIP, 30083, 40000, progtest.TCPSyn)
	res = e.run(t, false, in, e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "ICMP back out of the device")
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.DropNoServiceBackend, metricsmap.DirIngress).Packets)
	p := gopacket.NewPacket(res.Packet, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	require.NotNil(t, icmp)
	assert.Equal(t, hostClientMA, eth.DstMAC)
	assert.Equal(t, hostExtIP.AsSlice(), []byte(ip.SrcIP.To4()))
	assert.Equal(t, hostClient.AsSlice(), []byte(ip.DstIP.To4()))
	assert.Equal(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort), icmp.TypeCode)
	assert.True(t, progtest.IPv4HeaderChecksumOK(res.Packet))
}

func TestPrivilegedHostPassesOtherTraffic(t *testing.T) {
	e := newHostEnv(t)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)
	for name, pkt := range map[string][]byte{
		"tcp to another port": e.fromClient(hostExtIP, 22, 40000, progtest.TCPSyn),
		// A Service's health-check node port: in the NodePort range, served
		// by the agent's listener, never a frontend.
		"tcp to a health-check node port": e.fromClient(hostExtIP, 31990, 40000, progtest.TCPSyn),
		"health-check answer": progtest.Packet{SrcMAC: e.extMAC, DstMAC: hostClientMA, Src: hostExtIP, Dst: hostClient,
			SrcPort: 31990, DstPort: 40000, TCPFlags: progtest.TCPSyn | progtest.TCPAck}.IPv4(),
		"udp on the node port": progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
			Proto: layers.IPProtocolUDP, SrcPort: 40000, DstPort: hostNodePort}.IPv4(),
		"icmp": progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
			Proto: layers.IPProtocolICMPv4}.IPv4(),
		"ttl 1": progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
			TTL: 1, SrcPort: 40000, DstPort: hostNodePort}.IPv4(),
		"arp":  progtest.ARP(hostClientMA, hostClientMA, hostClient, hostExtIP),
		"ipv6": progtest.IPv6(hostClientMA, e.extMAC),
	} {
		for _, egress := range []bool{false, true} {
			res := e.run(t, egress, pkt, e.ext)
			assert.Equal(t, uint32(progtest.ActOK), res.Verdict, name)
			assert.Equal(t, pkt, res.Packet[:len(pkt)], "%s untouched (egress %v)", name, egress)
		}
	}
	cs, err := e.d.Metrics().Counters()
	require.NoError(t, err)
	assert.Empty(t, cs, "pass-through traffic is not counted")
}
