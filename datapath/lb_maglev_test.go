package datapath_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/lb/maglev"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// A small prime keeps the tests quick; the programs index any size alike.
const testMaglevSize = 251

// maglevTable builds the table of the backends ids (named by addr:port as
// the agent names them) and returns it as backend IDs.
func maglevTable(t testing.TB, m uint32, addrOf func(uint32) netip.AddrPort, ids ...uint32) []uint32 {
	t.Helper()
	bes := make([]maglev.Backend, len(ids))
	for i, id := range ids {
		bes[i] = maglev.Backend{Name: addrOf(id).String()}
	}
	idx, err := maglev.Build(bes, m)
	require.NoError(t, err)
	out := make([]uint32, len(idx))
	for i, j := range idx {
		out[i] = ids[j]
	}
	return out
}

// setMaglev swaps table in as the Maglev table of service revNAT.
func setMaglev(t testing.TB, m *lbmap.Map, revNAT uint16, table []uint32) {
	t.Helper()
	_, err := m.SetMaglev(revNAT, table)
	require.NoError(t, err)
}

func lbRemoteAP(id uint32) netip.AddrPort { return netip.AddrPortFrom(lbBackendAddr(id), 8080) }

// A service packet through the pod program goes to the backend the Go table
// names at the flow's hash; an established flow keeps its conntrack backend
// when a new table is swapped in, while new flows follow the new table.
func TestPrivilegedLBMaglevPodService(t *testing.T) {
	d := loadLB(t, datapath.Options{MaglevTableSize: testMaglevSize})
	ids := []uint32{10, 11, 12}
	fe := lbService(t, d, protoTCP, lbmap.FlagMaglev, 0, ids...)
	table := maglevTable(t, testMaglevSize, lbRemoteAP, ids...)
	setMaglev(t, d.LB(), lbRevNAT, table)

	got, err := d.LB().Maglev(lbRevNAT)
	require.NoError(t, err)
	require.Equal(t, table, got, "table read back from the kernel")

	want := func(sport uint16) netip.AddrPort {
		h := maglev.FlowHash(lbClient, fe.Addr, sport, fe.Port, protoTCP)
		return lbRemoteAP(table[h%testMaglevSize])
	}
	seen := map[netip.AddrPort]int{}
	for sport := uint16(40000); sport < 40300; sport++ {
		res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPSyn))
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		require.Equal(t, want(sport), dst, "sport %d", sport)
		seen[dst]++
	}
	assert.Len(t, seen, 3, "every backend gets flows: %v", seen)

	// Backend 11 leaves: a new table without it is swapped in.
	newIDs := []uint32{10, 12}
	fe = lbService(t, d, protoTCP, lbmap.FlagMaglev, 0, newIDs...)
	newTable := maglevTable(t, testMaglevSize, lbRemoteAP, newIDs...)
	setMaglev(t, d.LB(), lbRevNAT, newTable)
	moved, kept := 0, 0
	for sport := uint16(40000); sport < 40300; sport++ {
		before := want(sport)
		// The established flow keeps its backend (its conntrack entry),
		// unless that backend is gone (not deleted here: 11 still exists
		// in the backends map, as for a backend another service uses).
		_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPAck))
		require.Equal(t, before, dst, "established flow sport %d keeps its backend", sport)
		// A new flow follows the new table.
		h := maglev.FlowHash(lbClient, fe.Addr, sport+1000, fe.Port, protoTCP)
		_, dst = runFwd(t, d, toVIP(lbClient, protoTCP, sport+1000, progtest.TCPSyn))
		require.Equal(t, lbRemoteAP(newTable[h%testMaglevSize]), dst)
		if lbRemoteAP(newTable[h%testMaglevSize]) != lbRemoteAP(table[h%testMaglevSize]) {
			moved++
		} else {
			kept++
		}
	}
	t.Logf("after removing 1 of 3 backends, %d of %d new flows map elsewhere than before", moved, moved+kept)
}

// With affinity the hash leaves the source port out: every connection of a
// client goes to the backend its address hashes to.
func TestPrivilegedLBMaglevAffinity(t *testing.T) {
	d := loadLB(t, datapath.Options{MaglevTableSize: testMaglevSize})
	ids := []uint32{10, 11, 12}
	fe := lbService(t, d, protoTCP, lbmap.FlagMaglev|lbmap.FlagAffinity, 600e9, ids...)
	table := maglevTable(t, testMaglevSize, lbRemoteAP, ids...)
	setMaglev(t, d.LB(), lbRevNAT, table)
	for _, c := range []netip.Addr{lbClient, lbClient2} {
		want := lbRemoteAP(table[maglev.FlowHash(c, fe.Addr, 0, fe.Port, protoTCP)%testMaglevSize])
		for sport := uint16(41000); sport < 41020; sport++ {
			_, dst := runFwd(t, d, toVIP(c, protoTCP, sport, progtest.TCPSyn))
			require.Equal(t, want, dst, "client %s sport %d", c, sport)
		}
	}
}

// Maglev off (table size 0) the program ignores tables and flags and picks at
// random; with it on, a service without the flag picks at random too.
func TestPrivilegedLBMaglevOffIsRandom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  uint32
		flags lbmap.Flags
	}{
		{"off", 0, lbmap.FlagMaglev},
		{"service-not-flagged", testMaglevSize, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := loadLB(t, datapath.Options{MaglevTableSize: tc.size})
			ids := []uint32{10, 11, 12}
			fe := lbService(t, d, protoTCP, tc.flags, 0, ids...)
			table := maglevTable(t, testMaglevSize, lbRemoteAP, ids...)
			setMaglev(t, d.LB(), lbRevNAT, table)
			agree, n := 0, 300
			seen := map[netip.AddrPort]int{}
			for sport := uint16(42000); sport < 42000+uint16(n); sport++ {
				res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPSyn))
				require.Equal(t, uint32(progtest.ActOK), res.Verdict)
				seen[dst]++
				if dst == lbRemoteAP(table[maglev.FlowHash(lbClient, fe.Addr, sport, fe.Port, protoTCP)%testMaglevSize]) {
					agree++
				}
			}
			t.Logf("random picks agreeing with the table: %d of %d (chance: 1/3); per backend %v", agree, n, seen)
			assert.Less(t, agree, n*2/3, "random selection does not follow the table")
			assert.Len(t, seen, 3)
		})
	}
}

// A NodePort packet from outside, at the host device, goes to the remote
// backend the Go table names for its flow hash.
func TestPrivilegedHostNodePortMaglev(t *testing.T) {
	e := newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{SNATAddr: hostExtIP}, MaglevTableSize: testMaglevSize})
	addrs := map[uint32]netip.AddrPort{beRemote: netip.AddrPortFrom(hostRemote, 8080)}
	ids := []uint32{beRemote}
	for i := uint32(0); i < 4; i++ {
		id := 10 + i
		a := netip.AddrFrom4([4]byte{192, 168, 251, byte(3 + i)})
		require.NoError(t, e.d.LB().UpsertBackend(id, lbmap.Backend{Addr: a, Port: 8080, Proto: protoTCP}))
		addrs[id] = netip.AddrPortFrom(a, 8080)
		ids = append(ids, id)
	}
	fe := nodePortFE(hostNodePort)
	e.service(t, fe, lbmap.FlagNodePort|lbmap.FlagMaglev, ids...)
	revNAT := e.nextRevNAT - 1
	table := maglevTable(t, testMaglevSize, func(id uint32) netip.AddrPort { return addrs[id] }, ids...)
	setMaglev(t, e.d.LB(), revNAT, table)

	seen := map[netip.AddrPort]int{}
	for sport := uint16(40000); sport < 40200; sport++ {
		res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, sport, progtest.TCPSyn), e.ext)
		require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "forwarded to rmt0")
		_, dst, _ := addrPorts(t, res.Packet)
		h := maglev.FlowHash(hostClient, hostExtIP, sport, hostNodePort, protoTCP)
		require.Equal(t, addrs[table[h%testMaglevSize]], dst, "sport %d", sport)
		checkSums(t, res.Packet)
		seen[dst]++
	}
	assert.Len(t, seen, len(ids), fmt.Sprint(seen))
}

// A Maglev service whose table is missing, or names a backend that is gone,
// still gets a backend: random selection among its slots.
func TestPrivilegedLBMaglevFallback(t *testing.T) {
	d := loadLB(t, datapath.Options{MaglevTableSize: testMaglevSize})
	ids := []uint32{10, 11, 12}
	lbService(t, d, protoTCP, lbmap.FlagMaglev, 0, ids...)
	members := map[netip.AddrPort]bool{lbRemoteAP(10): true, lbRemoteAP(11): true, lbRemoteAP(12): true}
	// No table.
	for sport := uint16(43000); sport < 43030; sport++ {
		res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPSyn))
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		require.True(t, members[dst], "%s", dst)
	}
	// A table of a backend id the backends map does not hold.
	stale := make([]uint32, testMaglevSize)
	for i := range stale {
		stale[i] = 4242
	}
	setMaglev(t, d.LB(), lbRevNAT, stale)
	for sport := uint16(43100); sport < 43130; sport++ {
		res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPSyn))
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		require.True(t, members[dst], "%s", dst)
	}
	// A table of the wrong size (smaller): indices past its end find
	// nothing and fall back too.
	setMaglev(t, d.LB(), lbRevNAT, maglevTable(t, 3, lbRemoteAP, ids...))
	for sport := uint16(43200); sport < 43230; sport++ {
		res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPSyn))
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		require.True(t, members[dst], "%s", dst)
	}
}

// The XDP program picks from the same table as tc: a NodePort flow to a
// remote backend, translated in XDP, goes to the backend the Go table names
// for its flow hash (the tc test above expects the same of from_netdev).
func TestPrivilegedXDPNodePortMaglev(t *testing.T) {
	e := newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{SNATAddr: hostExtIP}, MaglevTableSize: testMaglevSize})
	addrs := map[uint32]netip.AddrPort{beRemote: netip.AddrPortFrom(hostRemote, 8080)}
	ids := []uint32{beRemote}
	for i := uint32(0); i < 4; i++ {
		id := 10 + i
		a := netip.AddrFrom4([4]byte{192, 168, 251, byte(3 + i)})
		// XDP forwards only to resolved neighbours.
		e.ns.Run(t, "ip", "neigh", "replace", a.String(), "lladdr", fmt.Sprintf("02:00:00:00:fb:%02x", 3+i), "nud", "permanent", "dev", "rmt0")
		require.NoError(t, e.d.LB().UpsertBackend(id, lbmap.Backend{Addr: a, Port: 8080, Proto: protoTCP}))
		addrs[id] = netip.AddrPortFrom(a, 8080)
		ids = append(ids, id)
	}
	e.ns.Do(t, func() {
		for _, dev := range []string{"ext0", "rmt0"} {
			require.NoError(t, e.d.Devices().AttachXDP(dev, device.XDPNative))
		}
	})
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort|lbmap.FlagMaglev, ids...)
	table := maglevTable(t, testMaglevSize, func(id uint32) netip.AddrPort { return addrs[id] }, ids...)
	setMaglev(t, e.d.LB(), e.nextRevNAT-1, table)

	seen := map[netip.AddrPort]int{}
	for sport := uint16(40000); sport < 40100; sport++ {
		res := e.runXDP(t, e.clientPkt(layers.IPProtocolTCP, hostNodePort, sport, progtest.TCPSyn), e.ext)
		require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict, "sport %d: translated in XDP, redirected to rmt0", sport)
		_, dst, _ := parsed(t, res.Packet)
		h := maglev.FlowHash(hostClient, hostExtIP, sport, hostNodePort, protoTCP)
		require.Equal(t, addrs[table[h%testMaglevSize]], dst, "sport %d", sport)
		seen[dst]++
	}
	assert.Len(t, seen, len(ids), fmt.Sprint(seen))
	assert.Equal(t, uint64(100), counter(t, e.d, uint32(e.ext), metricsmap.ReasonXDPLBSNAT, metricsmap.DirIngress).Packets)
}
