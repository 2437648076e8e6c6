package datapath_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// The XDP program (bpf/xdp.c) in the host device topology of host_test.go.
// Its SNAT port range is one port, so tc and XDP translate a packet to the
// same bytes and their entries can be compared byte for byte.

const (
	beRemoteUDP = 3
	xdpNATPort  = 61000
)

func newXDPEnv(t testing.TB) *hostEnv {
	t.Helper()
	e := newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{SNATAddr: hostExtIP, SNATPortMin: xdpNATPort, SNATPortMax: xdpNATPort}})
	require.NoError(t, e.d.LB().UpsertBackend(beRemoteUDP, lbmap.Backend{Addr: hostRemote, Port: 8053, Proto: protoUDP}))
	// Both devices get the XDP program (natively, veths have it), which
	// makes them redirect targets.
	e.ns.Do(t, func() {
		for _, dev := range []string{"ext0", "rmt0"} {
			require.NoError(t, e.d.Devices().AttachXDP(dev, device.XDPNative))
		}
	})
	return e
}

func (e *hostEnv) runXDP(t testing.TB, pkt []byte, ifindex int) progtest.Result {
	t.Helper()
	var res progtest.Result
	e.ns.Do(t, func() { res = progtest.RunXDP(t, e.d.XDPNodePort(), pkt, uint32(ifindex)) })
	res.Packet = res.Packet[:len(pkt)] // translation never changes the length
	return res
}

func (e *hostEnv) clientPkt(proto layers.IPProtocol, dport, sport uint16, flags uint8) []byte {
	return progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP, Proto: proto,
		SrcPort: sport, DstPort: dport, TCPFlags: flags, Payload: []byte("hello xdp")}.IPv4()
}

func (e *hostEnv) backendReply(proto layers.IPProtocol, bport uint16, flags uint8) []byte {
	return progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP, Proto: proto,
		SrcPort: bport, DstPort: xdpNATPort, TCPFlags: flags, Payload: []byte("from the backend")}.IPv4()
}

// parsed decodes pkt with gopacket, verifying the IPv4 and L4 checksums, and
// returns its addresses, ports and TTL.
func parsed(t testing.TB, pkt []byte) (src, dst netip.AddrPort, ttl uint8) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
	require.Nil(t, p.ErrorLayer())
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	s, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	d, _ := netip.AddrFromSlice(ip.DstIP.To4())
	var sp, dp uint16
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		require.NoError(t, l.SetNetworkLayerForChecksum(ip))
		got := l.Checksum
		recompute(t, l, l.Payload)
		require.Equal(t, l.Checksum, got, "TCP checksum")
		sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.UDP:
		require.NoError(t, l.SetNetworkLayerForChecksum(ip))
		if got := l.Checksum; got != 0 {
			recompute(t, l, l.Payload)
			require.Equal(t, l.Checksum, got, "UDP checksum")
		}
		sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
	default:
		t.Fatalf("no TCP/UDP in %x", pkt)
	}
	got := ip.Checksum
	recompute(t, ip, nil)
	require.Equal(t, ip.Checksum, got, "IPv4 header checksum")
	require.True(t, progtest.L4ChecksumOK(pkt))
	return netip.AddrPortFrom(s, sp), netip.AddrPortFrom(d, dp), ip.TTL
}

func TestPrivilegedXDPNodePortRemote(t *testing.T) {
	for _, tc := range []struct {
		proto layers.IPProtocol
		be    uint32
		bport uint16
		flags uint8
	}{
		{layers.IPProtocolTCP, beRemote, 8080, progtest.TCPSyn},
		{layers.IPProtocolUDP, beRemoteUDP, 8053, 0},
	} {
		t.Run(tc.proto.String(), func(t *testing.T) {
			e := newXDPEnv(t)
			fe := lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: hostNodePort, Proto: uint8(tc.proto)}
			e.service(t, fe, lbmap.FlagNodePort, tc.be)

			res := e.runXDP(t, e.clientPkt(tc.proto, hostNodePort, 40000, tc.flags), e.ext)
			require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict, "redirected to rmt0")
			src, dst, ttl := parsed(t, res.Packet)
			assert.Equal(t, netip.AddrPortFrom(hostExtIP, xdpNATPort), src, "SNAT to the node IP")
			assert.Equal(t, netip.AddrPortFrom(hostRemote, tc.bport), dst, "DNAT to the backend")
			assert.Equal(t, uint8(63), ttl)
			dmac, smac := macs(t, res.Packet)
			assert.Equal(t, hostRemoteMA, dmac, "FIB neighbour")
			assert.Equal(t, e.rmtMAC, smac)
			assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonXDPLBSNAT, metricsmap.DirIngress).Packets)
			assert.Zero(t, counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBSNAT, metricsmap.DirIngress).Packets, "tc counter untouched")

			// The backend's reply at rmt0 goes back out of ext0 to the
			// client, from the frontend.
			res = e.runXDP(t, e.backendReply(tc.proto, tc.bport, tc.flags|progtest.TCPAck), e.rmt)
			require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict, "redirected to ext0")
			src, dst, ttl = parsed(t, res.Packet)
			assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), src)
			assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), dst)
			assert.Equal(t, uint8(63), ttl)
			dmac, smac = macs(t, res.Packet)
			assert.Equal(t, hostClientMA, dmac)
			assert.Equal(t, e.extMAC, smac)
			assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.rmt), metricsmap.ReasonXDPLBRevSNAT, metricsmap.DirIngress).Packets)

			cts, err := e.d.CT().Entries()
			require.NoError(t, err)
			require.Len(t, cts, 2, "service and backend entries")
			for _, c := range cts {
				assert.Equal(t, uint64(2), c.Packets, "request and reply accounted: %+v", c)
			}
		})
	}
}

// A UDP datagram without a checksum keeps none.
func TestPrivilegedXDPNodePortUDPNoChecksum(t *testing.T) {
	e := newXDPEnv(t)
	e.service(t, lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: hostNodePort, Proto: protoUDP}, lbmap.FlagNodePort, beRemoteUDP)
	pkt := progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP, Proto: layers.IPProtocolUDP,
		SrcPort: 40000, DstPort: hostNodePort, NoUDPChecksum: true, Payload: []byte("x")}.IPv4()
	res := e.runXDP(t, pkt, e.ext)
	require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict)
	_, dst, _ := parsed(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostRemote, 8053), dst)
	assert.Zero(t, progtest.L4Checksum(res.Packet))
}

// recompute serializes l (and payload) with gopacket computing its
// checksum, which it stores in l: gopacket's verification.
func recompute(t testing.TB, l gopacket.SerializableLayer, payload []byte) {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, l, gopacket.Payload(payload)))
}

// rawEntries dumps a pinned map of the datapath as key -> value bytes, with
// the value bytes [lifeOff, lifeOff+4) (a lifetime in seconds) zeroed after
// checking they are within a second of ref's.
type rawMap map[string][]byte

func dumpRaw(t testing.TB, d *datapath.Datapath, name string, lifeOff int) rawMap {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(d.Root()), name), nil)
	require.NoError(t, err)
	defer m.Close()
	out := rawMap{}
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[string(k)] = append([]byte{}, v...)
	}
	require.NoError(t, it.Err())
	return out
}

func clearRaw(t testing.TB, d *datapath.Datapath, names ...string) {
	t.Helper()
	for _, name := range names {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(d.Root()), name), nil)
		require.NoError(t, err)
		var keys [][]byte
		var k, v []byte
		it := m.Iterate()
		for it.Next(&k, &v) {
			keys = append(keys, append([]byte{}, k...))
		}
		for _, k := range keys {
			require.NoError(t, m.Delete(k))
		}
		m.Close()
	}
}

// requireSameEntries compares two dumps; lifetimes (4 bytes at lifeOff)
// may differ by the second that passed between the runs.
func requireSameEntries(t testing.TB, what string, want, got rawMap, lifeOff int) {
	t.Helper()
	keys := func(m rawMap) []string {
		var ks []string
		for k := range m {
			ks = append(ks, fmt.Sprintf("%x", k))
		}
		sort.Strings(ks)
		return ks
	}
	require.Equal(t, keys(want), keys(got), "%s keys", what)
	for k, w := range want {
		g := got[k]
		lw := binary.LittleEndian.Uint32(w[lifeOff:])
		lg := binary.LittleEndian.Uint32(g[lifeOff:])
		assert.LessOrEqual(t, lg-lw, uint32(1), "%s %x lifetime %d vs %d", what, k, lw, lg)
		w2, g2 := bytes.Clone(w), bytes.Clone(g)
		copy(w2[lifeOff:lifeOff+4], make([]byte, 4))
		copy(g2[lifeOff:lifeOff+4], make([]byte, 4))
		if lifeOff == ctLifeOff && len(k) > ctTupleFlagsOff && k[ctTupleFlagsOff]&ctFService != 0 {
			// A service entry's flags are a lazy copy of its backend
			// entry's (lb4_ct_follow copies them when the lifetime moves
			// to the next second), so they depend on whether a run crossed
			// a second; the backend entry's, compared, are the real ones.
			copy(w2[ctFlagsOff:ctFlagsOff+2], make([]byte, 2))
			copy(g2[ctFlagsOff:ctFlagsOff+2], make([]byte, 2))
		}
		assert.Equal(t, fmt.Sprintf("%x", w2), fmt.Sprintf("%x", g2), "%s %x value", what, k)
	}
}

const (
	ctLifeOff  = 8 // struct ct4_entry.lifetime
	ctFlagsOff = 6 // struct ct4_entry.flags
	// struct ct4_tuple.flags and its CT_F_SERVICE bit
	ctTupleFlagsOff = 13
	ctFService      = 1
	natLifeOff      = 16 // struct snat4_entry.lifetime
)

// The tc program and the XDP program make the same packet and the same
// conntrack and NAT entries for the same packets; a flow started by one
// continues in the other.
func TestPrivilegedXDPSameAsTC(t *testing.T) {
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		t.Run(proto.String(), func(t *testing.T) {
			e := newXDPEnv(t)
			be, bport := uint32(beRemote), uint16(8080)
			if proto == layers.IPProtocolUDP {
				be, bport = beRemoteUDP, 8053
			}
			e.service(t, lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: hostNodePort, Proto: uint8(proto)}, lbmap.FlagNodePort, be)
			steps := []struct {
				pkt []byte
				dev int
			}{
				{e.clientPkt(proto, hostNodePort, 40000, progtest.TCPSyn), e.ext},
				{e.backendReply(proto, bport, progtest.TCPSyn|progtest.TCPAck), e.rmt},
				{e.clientPkt(proto, hostNodePort, 40000, progtest.TCPAck), e.ext},
				{e.clientPkt(proto, hostNodePort, 40000, progtest.TCPAck|progtest.TCPFin), e.ext},
				{e.backendReply(proto, bport, progtest.TCPAck|progtest.TCPFin), e.rmt},
			}
			maps := []string{"sluice_ct4_v1", "sluice_snat4_v1"}
			// run applies steps, the i-th with XDP when xdp(i), returning the
			// output packets and the entries.
			run := func(xdp func(int) bool) ([][]byte, rawMap, rawMap) {
				clearRaw(t, e.d, maps...)
				var outs [][]byte
				for i, s := range steps {
					var res progtest.Result
					if xdp(i) {
						res = e.runXDP(t, s.pkt, s.dev)
						require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict, "step %d (xdp)", i)
					} else {
						res = e.run(t, false, s.pkt, s.dev)
						require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "step %d (tc)", i)
					}
					parsed(t, res.Packet[:len(s.pkt)])
					outs = append(outs, res.Packet[:len(s.pkt)])
				}
				return outs, dumpRaw(t, e.d, maps[0], ctLifeOff), dumpRaw(t, e.d, maps[1], natLifeOff)
			}
			tcOut, tcCT, tcNAT := run(func(int) bool { return false })
			require.Len(t, tcCT, 2)
			require.Len(t, tcNAT, 2)
			for name, xdp := range map[string]func(int) bool{
				"xdp only":        func(int) bool { return true },
				"tc first":        func(i int) bool { return i > 0 },
				"xdp first":       func(i int) bool { return i == 0 },
				"alternating":     func(i int) bool { return i%2 == 1 },
				"alternating xdp": func(i int) bool { return i%2 == 0 },
			} {
				out, ct, nat := run(xdp)
				for i := range out {
					assert.Equal(t, fmt.Sprintf("%x", tcOut[i]), fmt.Sprintf("%x", out[i]), "%s: packet of step %d", name, i)
				}
				requireSameEntries(t, name+": conntrack", tcCT, ct, ctLifeOff)
				requireSameEntries(t, name+": nat", tcNAT, nat, natLifeOff)
			}
		})
	}
}

// What XDP does not translate it passes to tc unchanged, without leaving a
// trace in the maps that tc would not have left: tc then makes the same
// entries as it does alone.
func TestPrivilegedXDPPassesToTC(t *testing.T) {
	e := newXDPEnv(t)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)
	e.service(t, nodePortFE(hostNodePort+1), lbmap.FlagNodePort, beRemote)
	e.service(t, nodePortFE(hostNodePort+2), lbmap.FlagNodePort) // no backends
	maps := []string{"sluice_ct4_v1", "sluice_snat4_v1"}

	syn := e.clientPkt(layers.IPProtocolTCP, hostNodePort+1, 40000, progtest.TCPSyn)
	ipOpts := bytes.Clone(syn)
	ipOpts[14] = 0x46 // IHL 6: the first payload word read as an option
	frag := bytes.Clone(syn)
	frag[14+6] = 0x20 // MF
	icmpErr := progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
		Proto: layers.IPProtocolICMPv4}.IPv4()
	notIPv4 := bytes.Clone(syn)
	notIPv4[14] = 0x65
	for name, pkt := range map[string][]byte{
		"local backend": e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40000, progtest.TCPSyn),
		"no service":    e.clientPkt(layers.IPProtocolTCP, 22, 40000, progtest.TCPSyn),
		// A health-check node port: NodePort range, the agent's listener.
		"health-check node port":  e.clientPkt(layers.IPProtocolTCP, 31990, 40000, progtest.TCPSyn),
		"service without backend": e.clientPkt(layers.IPProtocolTCP, hostNodePort+2, 40000, progtest.TCPSyn),
		"udp to a tcp nodeport":   e.clientPkt(layers.IPProtocolUDP, hostNodePort+1, 40000, 0),
		"not a node address": progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient,
			Dst: netip.MustParseAddr("192.168.250.99"), SrcPort: 40000, DstPort: hostNodePort + 1}.IPv4(),
		"ttl 1": progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
			TTL: 1, SrcPort: 40000, DstPort: hostNodePort + 1}.IPv4(),
		"ip options":                    ipOpts,
		"fragment":                      frag,
		"icmp":                          icmpErr,
		"ip version 6 in an ipv4 frame": notIPv4,
		"truncated tcp":                 syn[:14+20+12],
		"truncated ip":                  syn[:14+16],
		"arp":                           progtest.ARP(hostClientMA, hostClientMA, hostClient, hostExtIP),
		"ipv6":                          progtest.IPv6(hostClientMA, e.extMAC),
		"stray reply to the snat address": progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote,
			Dst: hostExtIP, SrcPort: 8080, DstPort: 1234, TCPFlags: progtest.TCPAck}.IPv4(),
	} {
		clearRaw(t, e.d, maps...)
		var res progtest.Result
		e.ns.Do(t, func() { res = progtest.RunXDP(t, e.d.XDPNodePort(), pkt, uint32(e.ext)) })
		assert.Equal(t, uint32(progtest.XDPPass), res.Verdict, name)
		assert.Equal(t, fmt.Sprintf("%x", pkt), fmt.Sprintf("%x", res.Packet[:len(pkt)]), "%s: untouched", name)
		assert.Empty(t, dumpRaw(t, e.d, maps[1], natLifeOff), "%s: no NAT entries", name)
		ct := dumpRaw(t, e.d, maps[0], ctLifeOff)
		if name != "local backend" {
			assert.Empty(t, ct, "%s: no conntrack entries", name)
		}
	}
	cs, err := e.d.Metrics().Counters()
	require.NoError(t, err)
	assert.Empty(t, cs, "passed packets are counted by tc, not XDP")

	// A local backend's flow: XDP passes every packet, and after tc the
	// entries are what tc alone makes.
	local := []([]byte){
		e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40001, progtest.TCPSyn),
		e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40001, progtest.TCPAck),
	}
	runTC := func(withXDP bool) (rawMap, rawMap) {
		clearRaw(t, e.d, maps...)
		for _, pkt := range local {
			if withXDP {
				res := e.runXDP(t, pkt, e.ext)
				require.Equal(t, uint32(progtest.XDPPass), res.Verdict)
			}
			res := e.run(t, false, pkt, e.ext)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "into the pod")
		}
		return dumpRaw(t, e.d, maps[0], ctLifeOff), dumpRaw(t, e.d, maps[1], natLifeOff)
	}
	wantCT, wantNAT := runTC(false)
	require.Len(t, wantCT, 2)
	gotCT, gotNAT := runTC(true)
	requireSameEntries(t, "local backend: conntrack", wantCT, gotCT, ctLifeOff)
	requireSameEntries(t, "local backend: nat", wantNAT, gotNAT, natLifeOff)
}

// A remote backend behind a device XDP may not redirect to (not in
// sluice_xdp_devs_v1) is left to tc, with the entries tc alone makes.
func TestPrivilegedXDPUnknownEgressToTC(t *testing.T) {
	e := newXDPEnv(t)
	e.ns.Do(t, func() { require.NoError(t, e.d.Devices().DetachXDP("rmt0")) })
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	maps := []string{"sluice_ct4_v1", "sluice_snat4_v1"}
	pkts := [][]byte{
		e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40000, progtest.TCPSyn),
		e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40000, progtest.TCPAck),
	}
	runTC := func(withXDP bool) (rawMap, rawMap) {
		clearRaw(t, e.d, maps...)
		for _, pkt := range pkts {
			if withXDP {
				res := e.runXDP(t, pkt, e.ext)
				require.Equal(t, uint32(progtest.XDPPass), res.Verdict)
				require.Equal(t, pkt, res.Packet)
			}
			res := e.run(t, false, pkt, e.ext)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
		}
		return dumpRaw(t, e.d, maps[0], ctLifeOff), dumpRaw(t, e.d, maps[1], natLifeOff)
	}
	wantCT, wantNAT := runTC(false)
	gotCT, gotNAT := runTC(true)
	requireSameEntries(t, "conntrack", wantCT, gotCT, ctLifeOff)
	requireSameEntries(t, "nat", wantNAT, gotNAT, natLifeOff)
}
