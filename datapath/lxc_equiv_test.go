package datapath_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/ipcachemap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
)

// beforeObject is the pod programs' object as it was before the per-packet
// work of issue 17 (datapath/bpfgen/lxc_x86_bpfel.o at b92ee0b): the
// reference the current programs are compared with. Work that only makes
// the programs faster keeps it; a deliberate change of behaviour replaces it
// with the object of the commit before that change, and says so.
//
// Replaced for issue 13: the object is b92ee0b's bpf/ with two deliberate
// changes applied (testdata/lxc_before_issue17.patch, `git apply` in a
// checkout of b92ee0b, then hack/bpf-generate.sh: byte for byte this file):
// a new service flow that policy drops leaves no conntrack entry
// (policy_forget_denied; without it a denied flow's next packet found the
// backend the dropped one had been given, where the current programs choose
// again), and a direct TCP connection reusing the tuple of a load-balanced
// flow that is over gets no reverse NAT (lb4_ct_reopen_direct; without it the
// backend's SYN-ACK was rewritten to the old frontend).
const beforeObject = "testdata/lxc_before_issue17.o"

// podProgs is one copy of the pod programs with its own maps.
type podProgs struct {
	from, to *ebpf.Program
	eps      *endpointmap.Map
	ipc      *ipcachemap.Map
	pol      *policymap.Map
	lb       *lbmap.Map
	metrics  *metricsmap.Map
	flows    *monitor.Reader
}

// loadBefore loads beforeObject with fresh, unpinned maps.
func loadBefore(t *testing.T) *podProgs {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(beforeObject)
	require.NoError(t, err)
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	coll, err := ebpf.NewCollection(spec)
	require.NoError(t, err)
	t.Cleanup(coll.Close)
	m := func(name string) *ebpf.Map {
		require.Contains(t, coll.Maps, name)
		return coll.Maps[name]
	}
	r, err := monitor.New(m(bpfgen.LxcMapSluiceFlowsV1), m(bpfgen.LxcMapSluiceFlowConfigV1), m(bpfgen.LxcMapSluiceFlowsLostV1)).NewReader()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return &podProgs{
		from: coll.Programs["from_container"], to: coll.Programs["to_container"],
		eps: endpointmap.New(m(bpfgen.LxcMapSluiceEndpointsV1)), ipc: ipcachemap.New(m(bpfgen.LxcMapSluiceIpcache4V1)),
		pol: policymap.New(m(bpfgen.LxcMapSluicePolicyV1), m(bpfgen.LxcMapSluicePolicyAddrV1), m(bpfgen.LxcMapSluicePolicyConfigV1)),
		lb: lbmap.New(m(bpfgen.LxcMapSluiceLb4ServicesV1), m(bpfgen.LxcMapSluiceLb4BackendsV1),
			m(bpfgen.LxcMapSluiceLb4ReverseNatV1), m(bpfgen.LxcMapSluiceNodeAddrsV1)),
		metrics: metricsmap.New(m(bpfgen.LxcMapSluiceMetricsV1), nil), // before the fast slots
		flows:   r,
	}
}

// loadCurrent loads the current pod programs through the datapath loader.
func loadCurrent(t *testing.T) *podProgs {
	t.Helper()
	e := loadPolicy(t) // endpoints a, b and the IP cache of the policy tests
	r, err := e.d.Flows().NewReader()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return &podProgs{from: e.d.FromContainer(), to: e.d.ToContainer(), eps: e.d.Endpoints(), ipc: e.d.IPCache(),
		pol: e.d.Policy(), lb: e.d.LB(), metrics: e.d.Metrics(), flows: r}
}

// Equivalence topology on top of the policy tests' (a, b local on ifindex
// 1; c, c2 remote; the host; world): e (and f for a while), local pods that
// only receive (ifindex 4242), and services whose single backend is a, b, e,
// c or nobody, plus a NodePort on the host address. Single backends keep
// the two copies' choices the same (selection is random).
var (
	eqE       = netip.MustParseAddr("10.244.1.13")
	eqF       = netip.MustParseAddr("10.244.1.14")
	eqEMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0d}
	eqVIPs    = []netip.Addr{netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("10.96.0.2"), netip.MustParseAddr("10.96.0.3"), netip.MustParseAddr("10.96.0.4"), netip.MustParseAddr("10.96.0.5")}
	eqBackend = []netip.Addr{polA, polB, eqE, polC, {}}
	eqPorts   = []uint16{80, 53, 8080, 30080, 443, 22}
)

const idE = 5000

func (p *podProgs) setUp(t *testing.T) {
	t.Helper()
	require.NoError(t, p.eps.Upsert(endpointmap.Endpoint{IP: polA, Ifindex: aIfindex, ID: epA, Identity: idA, MAC: aMAC, NodeMAC: aNodeMAC}))
	require.NoError(t, p.eps.Upsert(endpointmap.Endpoint{IP: polB, Ifindex: aIfindex, ID: epB, Identity: idB, MAC: bMAC, NodeMAC: bNodeMAC}))
	require.NoError(t, p.eps.Upsert(endpointmap.Endpoint{IP: eqE, Ifindex: bIfindex, ID: 3, Identity: idE, MAC: eqEMAC, NodeMAC: bNodeMAC}))
	for pfx, id := range map[string]uint32{
		"10.244.1.10/32": idA, "10.244.1.11/32": idB, "10.244.1.13/32": idE, "10.244.2.5/32": idC,
		"10.244.2.0/24": idNode2, "10.244.1.1/32": uint32(identity.ReservedHost),
	} {
		require.NoError(t, p.ipc.Upsert(netip.MustParsePrefix(pfx), id))
	}
	require.NoError(t, p.lb.SetNodeAddrs([]netip.Addr{polHostIP}))
	for i, vip := range eqVIPs {
		var backends []uint32
		if be := eqBackend[i]; be.IsValid() {
			require.NoError(t, p.lb.UpsertBackend(uint32(100+i), lbmap.Backend{Addr: be, Port: 8080, Proto: protoTCP}))
			require.NoError(t, p.lb.UpsertBackend(uint32(200+i), lbmap.Backend{Addr: be, Port: 5353, Proto: protoUDP}))
			backends = []uint32{uint32(100 + i)}
		}
		for j, fe := range []lbmap.Frontend{{Addr: vip, Port: 80, Proto: protoTCP}, {Addr: vip, Port: 53, Proto: protoUDP}} {
			id := uint16(10 + 2*i + j)
			if j == 1 && backends != nil {
				backends = []uint32{uint32(200 + i)}
			}
			require.NoError(t, p.lb.UpsertRevNAT(id, fe))
			require.NoError(t, p.lb.UpsertService(fe, lbmap.Service{RevNATID: id, Backends: backends}))
		}
	}
	np := lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: protoTCP}
	require.NoError(t, p.lb.UpsertRevNAT(30, np))
	require.NoError(t, p.lb.UpsertService(np, lbmap.Service{RevNATID: 30, Flags: lbmap.FlagNodePort, Backends: []uint32{101}}))
}

// churn deletes the TCP frontend of eqVIPs[k] (and re-adds the one the
// previous round deleted), adds endpoint f in round 1 and deletes it in
// round 3, and in round 2 makes c2:80 a frontend.
func (p *podProgs) churn(t *testing.T, k, round int) {
	t.Helper()
	if round > 0 {
		prev := (k + len(eqVIPs) - 1) % len(eqVIPs)
		fe := lbmap.Frontend{Addr: eqVIPs[prev], Port: 80, Proto: protoTCP}
		var backends []uint32
		if eqBackend[prev].IsValid() {
			backends = []uint32{uint32(100 + prev)}
		}
		require.NoError(t, p.lb.UpsertService(fe, lbmap.Service{RevNATID: uint16(10 + 2*prev), Backends: backends}))
	}
	require.NoError(t, p.lb.DeleteService(lbmap.Frontend{Addr: eqVIPs[k], Port: 80, Proto: protoTCP}))
	switch round {
	case 1: // a pod comes up on the node
		require.NoError(t, p.eps.Upsert(endpointmap.Endpoint{IP: eqF, Ifindex: bIfindex, ID: 4, Identity: idE, MAC: eqEMAC, NodeMAC: bNodeMAC}))
	case 2:
		fe := lbmap.Frontend{Addr: polC2, Port: 80, Proto: protoTCP}
		require.NoError(t, p.lb.UpsertRevNAT(40, fe))
		require.NoError(t, p.lb.UpsertService(fe, lbmap.Service{RevNATID: 40, Backends: []uint32{100}}))
	case 3: // and goes
		require.NoError(t, p.eps.Delete(eqF))
	}
}

// eqPacket is one packet of the sequence and the program it goes through.
type eqPacket struct {
	pkt []byte
	to  bool // to_container (the stack delivers), else from_container
}

// eqGen generates random packets over the topology: mostly new and repeated
// flows of a few tuples (so that flows become established), and replies to
// what the programs let through earlier.
type eqGen struct {
	rng  *rand.Rand
	sent [][]byte // output packets of earlier runs, for replies
}

var eqSenders = []struct {
	ip  netip.Addr
	mac net.HardwareAddr
}{{polA, aMAC}, {polB, bMAC}}

func (g *eqGen) next() eqPacket {
	r := g.rng
	if len(g.sent) > 0 && r.IntN(4) == 0 {
		if p, ok := g.reply(g.sent[r.IntN(len(g.sent))]); ok {
			return p
		}
	}
	dsts := []netip.Addr{polA, polB, eqE, eqF, polC, polC2, polWorld, polHostIP}
	dsts = append(dsts, eqVIPs...)
	p := progtest.Packet{Dst: dsts[r.IntN(len(dsts))], SrcPort: uint16(40000 + r.IntN(6)), DstPort: eqPorts[r.IntN(len(eqPorts))],
		Proto: []layers.IPProtocol{tcp, tcp, udp, icmp, 47}[r.IntN(5)], TCPFlags: []uint8{progtest.TCPSyn, progtest.TCPAck, progtest.TCPAck | progtest.TCPPsh,
			progtest.TCPFin | progtest.TCPAck, progtest.TCPRst, progtest.TCPSyn | progtest.TCPAck}[r.IntN(6)], Payload: []byte("eq")}
	if r.IntN(40) == 0 {
		p.TTL = 1
	}
	to := r.IntN(4) == 0
	if to {
		// The stack delivers from outside the node into a or b.
		p.Src = []netip.Addr{polC, polC2, polWorld, polHostIP}[r.IntN(4)]
		s := eqSenders[r.IntN(len(eqSenders))]
		p.Dst, p.SrcMAC, p.DstMAC = s.ip, aNodeMAC, s.mac
	} else {
		s := eqSenders[r.IntN(len(eqSenders))]
		p.Src, p.SrcMAC, p.DstMAC = s.ip, s.mac, aNodeMAC
		if r.IntN(50) == 0 {
			p.SrcMAC = eqEMAC // spoofed
		}
	}
	return g.finish(p, to)
}

// finish serializes p, with a random ICMP type and echo id.
func (g *eqGen) finish(p progtest.Packet, to bool) eqPacket {
	raw := p.IPv4()
	if p.Proto == icmp {
		raw[14+20] = []uint8{0, 8, 8, 3, 13}[g.rng.IntN(5)]
		raw[14+20+4], raw[14+20+5] = 0, uint8(g.rng.IntN(4)) // the echo id
	}
	return eqPacket{pkt: raw, to: to}
}

// reply answers an earlier output packet: its destination sends back to its
// source, from a local pod (from_container) or through the stack into one.
func (g *eqGen) reply(out []byte) (eqPacket, bool) {
	d := decodeQuiet(out)
	if d == nil {
		return eqPacket{}, false
	}
	p := progtest.Packet{Src: d.dst.Addr(), Dst: d.src.Addr(), SrcPort: d.dst.Port(), DstPort: d.src.Port(), Proto: d.proto,
		TCPFlags: progtest.TCPAck, Payload: []byte("re")}
	for _, s := range eqSenders {
		if s.ip == p.Src {
			p.SrcMAC, p.DstMAC = s.mac, aNodeMAC
			return eqPacket{pkt: p.IPv4(), to: false}, true
		}
	}
	for _, s := range eqSenders {
		if s.ip == p.Dst {
			p.SrcMAC, p.DstMAC = aNodeMAC, s.mac
			return eqPacket{pkt: p.IPv4(), to: true}, true
		}
	}
	return eqPacket{}, false
}

type decoded struct {
	src, dst netip.AddrPort
	proto    layers.IPProtocol
}

// decodeQuiet returns the addresses of a TCP or UDP packet, or nil.
func decodeQuiet(pkt []byte) *decoded {
	if len(pkt) < 14+20+4 || pkt[12] != 0x08 || pkt[13] != 0 || pkt[14] != 0x45 {
		return nil
	}
	proto := layers.IPProtocol(pkt[14+9])
	if proto != tcp && proto != udp {
		return nil
	}
	src, _ := netip.AddrFromSlice(pkt[14+12 : 14+16])
	dst, _ := netip.AddrFromSlice(pkt[14+16 : 14+20])
	l4 := pkt[14+20:]
	return &decoded{
		src:   netip.AddrPortFrom(src, uint16(l4[0])<<8|uint16(l4[1])),
		dst:   netip.AddrPortFrom(dst, uint16(l4[2])<<8|uint16(l4[3])),
		proto: proto,
	}
}

// eqOutcome is everything a run is compared by.
type eqOutcome struct {
	Verdict uint32
	Packet  []byte
	Flows   []monitor.Flow    // events of the run, times zeroed
	Counts  map[string]uint64 // metric counters the run changed: reason/dir/ifindex → packets
	Bytes   map[string]uint64 // and bytes
}

func (p *podProgs) run(t *testing.T, in eqPacket, before map[string][2]uint64) (eqOutcome, map[string][2]uint64) {
	t.Helper()
	prog := p.from
	if in.to {
		prog = p.to
	}
	res := progtest.Run(t, prog, in.pkt, aIfindex)
	o := eqOutcome{Verdict: res.Verdict, Packet: res.Packet, Counts: map[string]uint64{}, Bytes: map[string]uint64{}}
	for {
		p.flows.SetDeadline(time.Now())
		f, err := p.flows.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		f.Time = time.Time{}
		o.Flows = append(o.Flows, f)
	}
	cs, err := p.metrics.Counters()
	require.NoError(t, err)
	now := make(map[string][2]uint64, len(cs))
	for _, c := range cs {
		k := fmt.Sprintf("%s/%s/%d", c.Reason, c.Direction, c.Ifindex)
		now[k] = [2]uint64{c.Packets, c.Bytes}
		if d := c.Packets - before[k][0]; d != 0 {
			o.Counts[k] = d
		}
		if d := c.Bytes - before[k][1]; d != 0 {
			o.Bytes[k] = d
		}
	}
	return o, now
}

// TestPrivilegedPodProgramsSameAsBefore runs 10 000 random packets (new and
// established flows, replies, service and non-service destinations, random
// policies that change along the way) through the current pod programs and
// through the programs as they were before issue 17's per-packet work, each
// with its own maps set up the same way, and requires the same outcome for
// every packet: verdict, output packet (addresses, MACs of a redirect, TTL),
// flow events and the counters (drop reasons) the run changed.
func TestPrivilegedPodProgramsSameAsBefore(t *testing.T) {
	cur := loadCurrent(t)
	old := loadBefore(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	progs := []*podProgs{cur, old}
	for _, p := range progs {
		p.setUp(t)
	}
	polRng := rand.New(rand.NewPCG(seed, 2))
	gen := &eqGen{rng: rand.New(rand.NewPCG(seed, 1))}
	counters := make([]map[string][2]uint64, len(progs))
	verdicts := map[uint32]int{}
	events := 0
	for i := 0; i < 10000; i++ {
		if i%2000 == 0 {
			// New random policies for a and b (flows already allowed stay).
			for _, ep := range []uint16{epA, epB} {
				cfg, entries := policymgr.MapState(randPolicy(polRng), nil)
				for _, p := range progs {
					_, _, err := p.pol.Sync(ep, cfg, entries)
					require.NoError(t, err)
				}
			}
		}
		if i%2000 == 1000 {
			// Services and endpoints change too: a service goes and
			// comes back with the next change; a new frontend for an
			// address pods talk to directly (remote pod c2, TCP 80 →
			// backend a); a pod comes and goes.
			k := (i / 2000) % len(eqVIPs)
			for _, p := range progs {
				p.churn(t, k, i/2000)
			}
		}
		in := gen.next()
		var outs [2]eqOutcome
		for j, p := range progs {
			outs[j], counters[j] = p.run(t, in, counters[j])
		}
		if !reflect.DeepEqual(outs[0], outs[1]) {
			t.Fatalf("packet %d (to_container %v) % x:\ncurrent %+v\nbefore  %+v", i, in.to, in.pkt, outs[0], outs[1])
		}
		verdicts[outs[0].Verdict]++
		events += len(outs[0].Flows)
		if outs[0].Verdict != progtest.ActShot {
			gen.sent = append(gen.sent, outs[0].Packet)
		}
	}
	t.Logf("verdicts %v, flow events %d", verdicts, events)
	for _, v := range []uint32{progtest.ActOK, progtest.ActShot, progtest.ActRedirect} {
		require.NotZero(t, verdicts[v], "verdict %d never seen", v)
	}
	require.NotZero(t, events)
}
