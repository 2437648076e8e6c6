package datapath_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// The programs the packet fuzzer runs (its prog knob).
const (
	progFromContainer = iota
	progToContainer
	progFromNetdev
	progToNetdev
	progXDP // xdp_nodeport on ext0
	numFuzzProgs
)

// Fuzz fixture addresses beyond the host and pod topologies: services and
// the identities of the policy test topology (policy_test.go).
var (
	fzVIP     = netip.MustParseAddr("10.96.0.10") // TCP 80 → b:8080, UDP 53 → b:5353, UDP 54 → none
	fuzzAddrs = []netip.Addr{aIP, bIP, gwIP, polC, polC2, polWorld, hostExtIP, hostRmtIP, hostClient, hostRemote,
		fzVIP, hostExtIP2, netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255}), netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	fuzzPorts = []uint16{80, 8080, 53, 54, 5353, 22, hostNodePort, 9000, 443, fzNodePortLocal, fzNodePortRemote}
	// Identities of local endpoints (the endpoint map) and of prefixes (the IP cache).
	fzEndpointIDs = map[netip.Addr]identity.NumericIdentity{aIP: idA, bIP: idB}
	fzPrefixIDs   = map[netip.Prefix]identity.NumericIdentity{
		netip.MustParsePrefix("10.244.2.5/32"): idC, netip.MustParsePrefix("10.244.2.0/24"): idNode2,
		netip.MustParsePrefix("10.244.1.1/32"): identity.ReservedHost,
	}
)

// fuzzPolicies are the policies of a (endpoint 2 here) and b (endpoint 1).
func fuzzPolicies() map[uint16]*policy.EndpointPolicy {
	key := func(d policy.Direction, peer identity.NumericIdentity, proto uint8, lo, hi uint16) policy.Key {
		return policy.Key{Direction: d, PeerIdentity: peer, Proto: proto, PortLo: lo, PortHi: hi}
	}
	allow, deny := policy.Entry{}, policy.Entry{Deny: true}
	in, eg := policy.Ingress, policy.Egress
	return map[uint16]*policy.EndpointPolicy{
		fzEpA: {IngressEnforced: true, EgressEnforced: true, Entries: map[policy.Key]policy.Entry{
			key(eg, idB, policy.ProtoTCP, 8080, 8080): allow, key(eg, idB, policy.ProtoUDP, 5353, 5353): allow,
			key(eg, 0, policy.ProtoUDP, 53, 54): allow, key(eg, idNode2, policy.ProtoTCP, 1, 1024): allow,
			key(eg, idC, 0, 0, 0): deny, key(eg, 0, policy.ProtoICMP, 8, 8): allow,
			key(eg, identity.ReservedHost, 0, 0, 0): allow, key(eg, identity.ReservedWorld, policy.ProtoTCP, 443, 443): allow,
			key(in, identity.ReservedHost, 0, 0, 0): allow, key(in, idB, policy.ProtoTCP, 80, 90): allow,
			key(in, identity.ReservedWorld, policy.ProtoTCP, 0, 0): allow, key(in, identity.ReservedWorld, policy.ProtoTCP, 22, 22): deny,
		}},
		fzEpB: {IngressEnforced: true, Entries: map[policy.Key]policy.Entry{
			key(in, idA, policy.ProtoTCP, 8080, 8080): allow, key(in, idA, policy.ProtoUDP, 5353, 5353): allow,
			key(in, identity.ReservedHost, 0, 0, 0): allow, key(in, identity.ReservedWorld, policy.ProtoTCP, 8080, 8080): allow,
			key(in, idNode2, policy.ProtoTCP, 8080, 8080): deny,
		}},
	}
}

const (
	fzEpB            = 1 // the host topology's local backend pod (hostPod is bIP)
	fzEpA            = 2
	fzNodePortLocal  = hostNodePort + 1 // a NodePort whose only backend is b
	fzNodePortRemote = hostNodePort + 2 // and one whose only backend is remote
)

type packetFuzzEnv struct {
	*hostEnv
	pols  map[uint16]*policy.EndpointPolicy
	state []*ebpf.Map // per-flow state: conntrack, NAT, affinity
}

func newPacketFuzzEnv(t testing.TB) *packetFuzzEnv {
	e := &packetFuzzEnv{hostEnv: newHostEnv(t), pols: fuzzPolicies()}
	d := e.d
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: bIP, Ifindex: hostPodIfidx, ID: fzEpB, Identity: idB, MAC: bMAC, NodeMAC: bNodeMAC}))
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: aIP, Ifindex: aIfindex, ID: fzEpA, Identity: idA, MAC: aMAC, NodeMAC: aNodeMAC}))
	for p, id := range fzPrefixIDs {
		require.NoError(t, d.IPCache().Upsert(p, uint32(id)))
	}
	for id, p := range e.pols {
		cfg, entries := policymgr.MapState(p, nil)
		_, _, err := d.Policy().Sync(id, cfg, entries)
		require.NoError(t, err)
	}
	require.NoError(t, d.LB().UpsertBackend(3, lbmap.Backend{Addr: bIP, Port: 5353, Proto: protoUDP}))
	e.service(t, lbmap.Frontend{Addr: fzVIP, Port: 80, Proto: protoTCP}, 0, beLocal)
	e.service(t, lbmap.Frontend{Addr: fzVIP, Port: 53, Proto: protoUDP}, lbmap.FlagAffinity, 3)
	e.service(t, lbmap.Frontend{Addr: fzVIP, Port: 54, Proto: protoUDP}, 0)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal, beRemote)
	e.service(t, nodePortFE(fzNodePortLocal), lbmap.FlagNodePort, beLocal)
	e.service(t, nodePortFE(fzNodePortRemote), lbmap.FlagNodePort, beRemote)
	e.service(t, lbmap.Frontend{Addr: hostExtIP2, Port: 80, Proto: protoTCP}, lbmap.FlagExternal, beRemote)
	// Both devices run the XDP program, so it may redirect between them.
	e.ns.Do(t, func() {
		for _, dev := range []string{"ext0", "rmt0"} {
			require.NoError(t, d.Devices().AttachXDP(dev, device.XDPNative))
		}
	})
	for _, name := range []string{"sluice_ct4_v1", "sluice_snat4_v1", "sluice_lb4_affinity_v1"} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(d.Root()), name), nil)
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		e.state = append(e.state, m)
	}
	return e
}

// stateEntries counts the per-flow state entries; clear empties them.
func (e *packetFuzzEnv) stateEntries(t *testing.T, clear bool) int {
	n := 0
	for _, m := range e.state {
		key, val := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
		var keys [][]byte
		it := m.Iterate()
		for it.Next(&key, &val) {
			keys = append(keys, append([]byte(nil), key...))
		}
		require.NoError(t, it.Err())
		n += len(keys)
		for _, k := range keys {
			if clear {
				if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					require.NoError(t, err)
				}
			}
		}
	}
	return n
}

// FuzzPacket builds a frame from the fuzzer's data (addresses, ports and
// protocol from the fixture's tables, mutated: VLAN tags, IP options,
// fragments, bad lengths, IHL or version, truncation, bad checksums, random
// L4 bytes, padding) and runs it through one of the pod programs
// (from_container, to_container) or host programs (from_netdev, to_netdev)
// with BPF_PROG_TEST_RUN, over a fixture of two local endpoints, IP cache
// prefixes, their policies and services (ClusterIP TCP and UDP with
// affinity, one without backends, NodePort, ExternalIP). Per-flow state is
// cleared before each frame, so every frame is a new flow. Invariants:
//   - from_container forwards nothing but IPv4 from the pod's own address
//     and MAC (the rejection it answers with ICMP goes back to the pod);
//   - a forwarded new flow is one the policies allow: the sender's egress
//     and, for local delivery, the receiver's ingress (from_container), the
//     receiver's ingress (to_container, and from_netdev delivering to a
//     local backend), checked in Go with
//     policy.LookupMostSpecific on the translated packet;
//   - an IPv4 frame that left a program (and had valid checksums) has a
//     valid IPv4 header checksum and, for unfragmented TCP and UDP, a valid
//     L4 checksum; an ICMP error the program built has a valid checksum;
//   - a dropped frame leaves no conntrack, NAT or affinity entry;
//   - the XDP program passes a frame unchanged, or sends it (XDP_TX,
//     XDP_REDIRECT) only when it was an unfragmented IPv4 TCP/UDP packet
//     without options and with a TTL above 1, translated to the remote
//     backend with the checksums as valid as they came; it never drops.
//
// Privileged (BPF): skipped unless SLUICE_PRIVILEGED_TESTS=1.
func FuzzPacket(f *testing.F) {
	e := newPacketFuzzEnv(f)
	// data: src, dst, sport, dport (table indexes; past the table: from
	// data), protocol, TTL, TCP flags, ICMP type, then mutation parameters.
	for _, s := range []struct {
		prog uint8
		mut  uint16
		data []byte
	}{
		{progFromContainer, 0, []byte{0, 10, 1, 0, 6, 64, 0x02}}, // a → ClusterIP:80 SYN
		{progFromContainer, 0, []byte{0, 1, 2, 1, 6, 64, 0x02}},  // a → b:8080 SYN
		{progFromContainer, 0, []byte{0, 10, 1, 2, 17, 64, 0}},   // a → ClusterIP:53 UDP (affinity)
		{progFromContainer, 0, []byte{0, 10, 1, 3, 17, 64, 0}},   // a → ClusterIP:54 UDP: no backend, ICMP back
		{progFromContainer, 0, []byte{1, 3, 1, 0, 6, 64, 0x02}},  // spoofed source b
		{progFromContainer, mutFragOff | mutMoreFrags, []byte{0, 4, 1, 1, 6, 64, 0x02, 0, 8, 3}},
		{progFromContainer, mutVLAN, []byte{0, 1, 2, 1, 6, 64, 0x02}},
		{progFromContainer, mutOptions, []byte{0, 1, 2, 1, 17, 64, 0, 0, 0, 3, 1, 1, 1, 1}},
		{progFromContainer, 0, []byte{0, 5, 1, 0, 1, 64, 0, 8}}, // ICMP echo to world
		{progToContainer, 0, []byte{1, 0, 1, 0, 6, 64, 0x02}},   // b → a:80
		{progToContainer, mutTotLen, []byte{5, 0, 1, 5, 6, 64, 0x02, 0, 0xff, 0xff}},
		{progFromNetdev, 0, []byte{8, 6, 1, 6, 6, 64, 0x02}},  // client → NodePort
		{progFromNetdev, 0, []byte{8, 11, 1, 0, 6, 64, 0x02}}, // client → ExternalIP
		{progFromNetdev, mutTruncate, []byte{8, 6, 1, 6, 6, 64, 0x02, 0, 0, 40}},
		{progToNetdev, 0, []byte{1, 8, 1, 6, 6, 64, 0x12}}, // reply leaving the node
		{progFromNetdev, mutQinQ | mutIHL, []byte{8, 6, 1, 6, 6, 64, 0x02, 0, 3}},
		{progXDP, 0, []byte{8, 6, 1, 10, 6, 64, 0x02}}, // client → NodePort, remote backend
		{progXDP, 0, []byte{8, 6, 1, 10, 17, 64, 0}},   // the same in UDP: no such service
		{progXDP, 0, []byte{8, 6, 1, 9, 6, 64, 0x02}},  // client → NodePort, local backend
		{progXDP, 0, []byte{8, 11, 1, 0, 6, 64, 0x02}}, // client → ExternalIP, remote backend
		{progXDP, mutTruncate, []byte{8, 6, 1, 10, 6, 64, 0x02, 0, 0, 40}},
		{progXDP, mutOptions, []byte{8, 6, 1, 10, 6, 64, 0x02, 0, 0, 3, 1, 1, 1, 1}},
		{progXDP, mutFragOff | mutMoreFrags, []byte{8, 6, 1, 10, 6, 64, 0x02, 0, 8, 3}},
	} {
		f.Add(s.prog, s.mut, s.data)
	}
	f.Fuzz(func(t *testing.T, prog uint8, mut uint16, data []byte) {
		e.stateEntries(t, true)
		r := &fuzzReader{b: data}
		prog %= numFuzzProgs
		spec := e.spec(prog, r)
		fr := buildFrame(spec, mut, r)
		res, ok := e.runFuzz(t, prog, fr.raw)
		if !ok {
			return
		}
		if prog == progXDP {
			e.checkXDP(t, fr, res)
			return
		}
		left := e.stateEntries(t, false)
		if res.Verdict == progtest.ActShot {
			require.Zero(t, left, "a dropped frame leaves no conntrack, NAT or affinity entry\n%s", describe(fr.raw))
			return
		}
		out := res.Packet
		icmpErr := isICMPError(out) && !(spec.proto == 1 && mut&mutRawL4 == 0 && spec.icmpType>>8 == 3)
		if prog == progFromContainer {
			require.True(t, isIPv4(fr.raw, 14) && fr.src == aIP && fr.srcMAC.String() == aMAC.String(),
				"from_container forwarded a frame not from the pod's address and MAC (verdict %d)\n%s", res.Verdict, describe(fr.raw))
		}
		e.checkChecksums(t, fr, out, icmpErr)
		if icmpErr && prog == progFromContainer {
			require.Equal(t, aIP, dstOf(out), "the rejection goes back to the sender")
			return
		}
		e.checkPolicy(t, prog, res.Verdict, fr, out)
	})
}

// spec chooses a frame from the fixture's tables.
func (e *packetFuzzEnv) spec(prog uint8, r *fuzzReader) frameSpec {
	addr := func() netip.Addr {
		i := int(r.byte())
		if i < len(fuzzAddrs) {
			return fuzzAddrs[i]
		}
		return netip.AddrFrom4([4]byte(r.bytes(4)))
	}
	port := func() uint16 {
		i := int(r.byte())
		if i < len(fuzzPorts) {
			return fuzzPorts[i]
		}
		return r.u16()
	}
	s := frameSpec{src: addr(), dst: addr(), sport: port(), dport: port()}
	switch p := r.byte(); p {
	case 6, 17, 1:
		s.proto = p
	default:
		s.proto = []uint8{6, 17, 1, p}[p%4]
	}
	s.ttl, s.tcpFlags = r.byte(), r.byte()
	s.icmpType, s.icmpID = uint16(r.byte())<<8|uint16(r.byte()), s.sport
	switch prog {
	case progFromContainer:
		s.srcMAC, s.dstMAC = aMAC, aNodeMAC
		if s.src == bIP {
			s.srcMAC = bMAC // another pod's address, and its MAC
		}
	case progToContainer:
		s.srcMAC, s.dstMAC = aNodeMAC, aMAC
	case progFromNetdev, progXDP:
		s.srcMAC, s.dstMAC = hostClientMA, e.extMAC
	default:
		s.srcMAC, s.dstMAC = e.extMAC, hostClientMA
	}
	return s
}

// runFuzz runs prog on frame as if it passed the program's device; ok is
// false for a frame BPF_PROG_TEST_RUN itself refuses.
func (e *packetFuzzEnv) runFuzz(t *testing.T, prog uint8, frame []byte) (progtest.Result, bool) {
	p, ifindex := map[uint8]*ebpf.Program{progFromContainer: e.d.FromContainer(), progToContainer: e.d.ToContainer(),
		progFromNetdev: e.d.FromNetdev(), progToNetdev: e.d.ToNetdev()}[prog], uint32(aIfindex)
	if prog >= progFromNetdev {
		ifindex = uint32(e.ext)
	}
	var (
		res progtest.Result
		err error
	)
	if prog == progXDP {
		e.ns.Do(t, func() { res, err = progtest.TryRunXDP(e.d.XDPNodePort(), frame, uint32(e.ext)) })
		if err != nil && len(frame) < 14 {
			return res, false
		}
		require.NoError(t, err, "BPF_PROG_TEST_RUN\n%s", describe(frame))
		return res, true
	}
	e.ns.Do(t, func() { res, err = progtest.TryRun(p, frame, ifindex) })
	if err != nil && len(frame) < 14+20 {
		return res, false
	}
	require.NoError(t, err, "BPF_PROG_TEST_RUN\n%s", describe(frame))
	return res, true
}

// checkXDP checks what the XDP program did with a frame.
func (e *packetFuzzEnv) checkXDP(t *testing.T, in fuzzFrame, res progtest.Result) {
	out := res.Packet[:len(in.raw)]
	switch res.Verdict {
	case progtest.XDPPass:
		require.Equal(t, describe(in.raw), describe(out), "XDP_PASS leaves the frame unchanged")
		return
	case progtest.XDPTx, progtest.XDPRedirect:
	default:
		t.Fatalf("XDP verdict %d\n%s", res.Verdict, describe(in.raw))
	}
	raw := in.raw
	require.True(t, isIPv4(raw, 14) && raw[14] == 0x45, "XDP sent a frame that is no IPv4 without options\n%s", describe(raw))
	require.Contains(t, []byte{6, 17}, raw[14+9], "XDP sent a frame that is no TCP/UDP\n%s", describe(raw))
	require.Zero(t, binary.BigEndian.Uint16(raw[14+6:])&0x3fff, "XDP sent a fragment\n%s", describe(raw))
	require.Greater(t, raw[14+8], uint8(1), "XDP sent a frame whose TTL expires\n%s", describe(raw))
	require.Equal(t, raw[14+8]-1, out[14+8], "TTL decremented")
	require.Equal(t, hostRemote, dstOf(out), "XDP sends only to the remote backend here\n%s", describe(out))
	require.Equal(t, hostExtIP, srcOf(out), "from the SNAT address")
	e.checkChecksums(t, in, out, false)
}

// checkChecksums checks the checksums of an output frame.
func (e *packetFuzzEnv) checkChecksums(t *testing.T, in fuzzFrame, out []byte, icmpErr bool) {
	if !isIPv4(out, 14) || !fitsTotal(out) {
		return
	}
	if in.ipCsumOK || icmpErr {
		require.True(t, progtest.IPv4HeaderChecksumOK(out), "IPv4 header checksum of the output\nin:  %s\nout: %s", describe(in.raw), describe(out))
	}
	proto, frag := out[14+9], binary.BigEndian.Uint16(out[14+6:])&0x3fff
	if in.l4CsumOK && in.l3 == 14 && (proto == 6 || proto == 17) && frag == 0 {
		require.True(t, progtest.L4ChecksumOK(out), "L4 checksum of the output\nin:  %s\nout: %s", describe(in.raw), describe(out))
	}
	if icmpErr {
		ihl := int(out[14]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(out[14+2:]))
		require.Zero(t, inetChecksum(out[14+ihl:14+total], 0), "ICMP checksum of the built error\nout: %s", describe(out))
	}
}

// checkPolicy checks that a forwarded new flow is allowed by the policies.
func (e *packetFuzzEnv) checkPolicy(t *testing.T, prog uint8, verdict uint32, in fuzzFrame, out []byte) {
	if prog == progToNetdev || !isIPv4(out, 14) {
		return // to_container passes what is not IPv4 unfiltered: its policy is IPv4 only
	}
	if prog == progFromNetdev && verdict != progtest.ActRedirect {
		return // to the stack, or to a remote backend: no local receiver
	}
	proto, port := policyPort(out)
	src, dst := srcOf(out), dstOf(out)
	if prog == progFromContainer {
		ok, _, _ := e.pols[fzEpA].LookupMostSpecific(policy.Egress, e.identityOf(dst), proto, port)
		require.True(t, ok, "a's egress policy denies %s → %s proto %d port %d, but from_container forwarded it (verdict %d)\nin:  %s\nout: %s",
			src, dst, proto, port, verdict, describe(in.raw), describe(out))
		if verdict != progtest.ActRedirect {
			return
		}
	}
	id, local := epOf(dst)
	if !local {
		return
	}
	ok, _, _ := e.pols[id].LookupMostSpecific(policy.Ingress, e.identityOf(src), proto, port)
	require.True(t, ok, "endpoint %d's ingress policy denies %s → %s proto %d port %d, but it was delivered (prog %d, verdict %d)\nin:  %s\nout: %s",
		id, src, dst, proto, port, prog, verdict, describe(in.raw), describe(out))
}

// identityOf is the identity the datapath gives an address: the endpoint
// map's, else the longest IP cache prefix's, else world.
func (e *packetFuzzEnv) identityOf(a netip.Addr) identity.NumericIdentity {
	if id, ok := fzEndpointIDs[a]; ok {
		return id
	}
	best, id := -1, identity.ReservedWorld
	for p, pid := range fzPrefixIDs {
		if p.Contains(a) && p.Bits() > best {
			best, id = p.Bits(), pid
		}
	}
	return id
}

func epOf(a netip.Addr) (uint16, bool) {
	switch a {
	case aIP:
		return fzEpA, true
	case bIP:
		return fzEpB, true
	}
	return 0, false
}

// policyPort is the protocol and port policy decides an IPv4 frame on: the
// destination port of an unfragmented TCP or UDP packet, the type of an
// unfragmented ICMP message, else 0.
func policyPort(pkt []byte) (uint8, uint16) {
	ihl := int(pkt[14]&0x0f) * 4
	proto, frag := pkt[14+9], binary.BigEndian.Uint16(pkt[14+6:])&0x3fff
	l4 := pkt[min(len(pkt), 14+ihl):]
	switch {
	case frag != 0:
		return proto, 0
	case (proto == 6 || proto == 17) && len(l4) >= 4:
		return proto, binary.BigEndian.Uint16(l4[2:])
	case proto == 1 && len(l4) >= 1:
		return proto, uint16(l4[0])
	}
	return proto, 0
}

func isIPv4(pkt []byte, l3 int) bool {
	return len(pkt) >= l3+20 && binary.BigEndian.Uint16(pkt[l3-2:]) == 0x0800 && pkt[l3]>>4 == 4 && pkt[l3]&0x0f >= 5
}

// fitsTotal: the IPv4 header and total length fit in the frame.
func fitsTotal(pkt []byte) bool {
	ihl := int(pkt[14]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[14+2:]))
	return total >= ihl && len(pkt) >= 14+total
}

func isICMPError(pkt []byte) bool {
	return isIPv4(pkt, 14) && pkt[14+9] == 1 && len(pkt) > 14+int(pkt[14]&0x0f)*4 && pkt[14+int(pkt[14]&0x0f)*4] == 3
}

func srcOf(pkt []byte) netip.Addr { return netip.AddrFrom4([4]byte(pkt[14+12 : 14+16])) }
func dstOf(pkt []byte) netip.Addr { return netip.AddrFrom4([4]byte(pkt[14+16 : 14+20])) }

func describe(pkt []byte) string { return fmt.Sprintf("%d bytes % x", len(pkt), pkt) }

// TestPrivilegedPolicyDropLeavesNoServiceState: a new flow to a service
// whose translation a policy denies (the sender's egress in from_container,
// a local backend's ingress in from_netdev) leaves no conntrack or NAT entry,
// while an allowed one keeps its (service and backend entries, and the
// NodePort's recorded frontend). Found by FuzzPacket: the service and
// backend entries stayed until they expired, so a pod or a client could fill
// the table with flows that policy forbids.
func TestPrivilegedPolicyDropLeavesNoServiceState(t *testing.T) {
	e := newPacketFuzzEnv(t)
	fromPod := func(dst netip.Addr, dport uint16) []byte {
		return progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: dst, SrcPort: 40000, DstPort: dport, TCPFlags: progtest.TCPSyn}.IPv4()
	}
	fromClient := func(src netip.Addr) []byte {
		return progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: src, Dst: hostExtIP, SrcPort: 40000,
			DstPort: fzNodePortLocal, TCPFlags: progtest.TCPSyn}.IPv4()
	}
	for _, c := range []struct {
		name    string
		prog    uint8
		pkt     []byte
		verdict uint32
		entries int
	}{
		{"pod to ExternalIP, remote backend denied", progFromContainer, fromPod(hostExtIP2, 80), progtest.ActShot, 0},
		{"pod to ClusterIP, local backend allowed", progFromContainer, fromPod(fzVIP, 80), progtest.ActRedirect, 2},
		{"pod to NodePort, remote backend denied", progFromContainer, fromPod(hostExtIP, fzNodePortRemote), progtest.ActShot, 0},
		{"NodePort, local backend denies the client", progFromNetdev, fromClient(polC2), progtest.ActShot, 0},
		{"NodePort, local backend allows the client", progFromNetdev, fromClient(hostClient), progtest.ActRedirect, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.stateEntries(t, true)
			res, ok := e.runFuzz(t, c.prog, c.pkt)
			require.True(t, ok)
			require.Equal(t, c.verdict, res.Verdict)
			require.Equal(t, c.entries, e.stateEntries(t, false))
		})
	}
}

// TestPrivilegedTruncatedL4LeavesNoState: a TCP packet to a service whose
// header ends before its checksum field is not load-balanced (found by
// FuzzPacket: the translation made the flow's conntrack entries, then could
// not rewrite the checksum and dropped the packet, leaving them): the host
// device leaves it to the stack, the pod program drops it as invalid.
func TestPrivilegedTruncatedL4LeavesNoState(t *testing.T) {
	e := newPacketFuzzEnv(t)
	cut := func(p progtest.Packet) []byte { return p.IPv4()[:14+20+15] }
	for _, c := range []struct {
		name    string
		prog    uint8
		pkt     []byte
		verdict uint32
	}{
		{"client to NodePort", progFromNetdev, cut(progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
			SrcPort: 40000, DstPort: fzNodePortLocal, TCPFlags: progtest.TCPSyn}), progtest.ActOK},
		{"pod to ClusterIP", progFromContainer, cut(progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: fzVIP,
			SrcPort: 40000, DstPort: 80, TCPFlags: progtest.TCPSyn}), progtest.ActShot},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.stateEntries(t, true)
			res, ok := e.runFuzz(t, c.prog, c.pkt)
			require.True(t, ok)
			require.Equal(t, c.verdict, res.Verdict)
			require.Zero(t, e.stateEntries(t, false))
		})
	}
}
