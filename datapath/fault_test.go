package datapath_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// The map pressure scenarios of the faults campaign (hack/faults.sh): each
// prints one RESULT line. SLUICE_FAULTS_QUICK=1 shrinks the floods.

// faultScale is n in a full run, n/8 (at least 1) in quick mode.
func faultScale(n int) int {
	if os.Getenv("SLUICE_FAULTS_QUICK") == "1" {
		return max(n/8, 1)
	}
	return n
}

// faultResult prints the scenario's RESULT line.
func faultResult(t *testing.T, scenario string, fields ...string) {
	t.Helper()
	line := "RESULT faults scenario=" + scenario + " " + strings.Join(fields, " ")
	t.Log(line)
	fmt.Println(line)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// established opens n client flows through the frontend with their
// backends' replies seen (established entries) and returns each flow's
// backend by client port.
func establishedFlows(t *testing.T, d *datapath.Datapath, first uint16, n int) map[uint16]netip.AddrPort {
	t.Helper()
	out := map[uint16]netip.AddrPort{}
	for p := first; p < first+uint16(n); p++ {
		res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, p, progtest.TCPSyn))
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		reply := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: dst.Addr(), Dst: lbClient, SrcPort: dst.Port(),
			DstPort: p, TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("x")}
		require.Equal(t, uint32(progtest.ActOK), progtest.Run(t, d.ToContainer(), reply.IPv4(), aIfindex).Verdict)
		out[p] = dst
	}
	return out
}

// With the conntrack map full, established flows that keep sending keep
// their backend, what happens to new flows is counted, and once the
// pressure ends (the flood's entries expired and collected) new flows get
// entries again. The map is an LRU hash: at capacity a new flow evicts the
// least recently used entries rather than being dropped (drop-ct-map-full
// counts only a failed insert), so established flows that stay idle
// through the flood may lose their entries: they are reported (idle_kept),
// not asserted.
func TestPrivilegedFaultCTFull(t *testing.T) {
	const capacity = 64
	d := loadLB(t, datapath.Options{MaxEntries: map[string]uint32{"sluice_ct4_v1": capacity}, CTLifetimeTCPSyn: time.Second})
	lbService(t, d, protoTCP, 0, 0, 10, 11, 12)
	est := establishedFlows(t, d, 40000, 8)
	idle := establishedFlows(t, d, 41000, 8)

	flood := faultScale(64 * capacity)
	dropped, moved := 0, map[uint16]bool{}
	for i := range flood {
		res, _ := runFwd(t, d, toVIP(lbClient2, protoTCP, uint16(20000+i), progtest.TCPSyn))
		if res.Verdict == progtest.ActShot {
			dropped++
		}
		if i%8 != 7 {
			continue
		}
		for p, want := range est { // the established flows keep sending
			res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, p, progtest.TCPAck))
			if res.Verdict != progtest.ActOK || dst != want {
				moved[p] = true
			}
		}
	}
	counted := counter(t, d, aIfindex, metricsmap.DropCTMapFull, metricsmap.DirEgress).Packets
	assert.EqualValues(t, dropped, counted, "every dropped new flow is counted as drop-ct-map-full")

	// Pressure ends: the flood's SYN entries expire and are collected.
	time.Sleep(2100 * time.Millisecond)
	_, err := d.CT().GC()
	require.NoError(t, err)
	res, dst := runFwd(t, d, toVIP(lbClient2, protoTCP, 61000, progtest.TCPSyn))
	recovered := res.Verdict == progtest.ActOK
	if recovered {
		flowEntries(t, d, netip.AddrPortFrom(lbClient2, 61000), dst)
	}
	kept := len(est) - len(moved)
	idleKept := 0
	for p, want := range idle {
		if res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, p, progtest.TCPAck)); res.Verdict == progtest.ActOK && dst == want {
			idleKept++
		}
	}
	faultResult(t, "ct_full", fmt.Sprintf("capacity=%d new_flows=%d new_dropped=%d drop_ct_map_full=%d established_kept=%d/%d idle_kept=%d/%d recovered=%s",
		capacity, flood, dropped, counted, kept, len(est), idleKept, len(idle), yesNo(recovered)))
	assert.Equal(t, len(est), kept, "established flows that keep sending keep their backend: moved %v", moved)
	assert.True(t, recovered)
}
