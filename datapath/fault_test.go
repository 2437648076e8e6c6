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
	"github.com/sluicenet/sluice/datapath/lbmap"
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

// natFlow is a NodePort client flow to the remote backend with its SNAT
// port.
type natFlow struct {
	client uint16
	port   uint16
}

// openNATFlows opens n established NodePort flows to the remote backend
// (the SYN SNATed, the backend's SYN-ACK reverse-SNATed).
func openNATFlows(t *testing.T, e *hostEnv, first uint16, n int) []natFlow {
	t.Helper()
	var out []natFlow
	for p := first; p < first+uint16(n); p++ {
		res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, p, progtest.TCPSyn), e.ext)
		require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
		src, _, _ := addrPorts(t, res.Packet)
		f := natFlow{client: p, port: src.Port()}
		require.True(t, natFlowWorks(t, e, f, progtest.TCPSyn|progtest.TCPAck))
		out = append(out, f)
	}
	return out
}

// natFlowWorks sends a packet of f both ways and reports whether the
// client's kept its SNAT port and the backend's reached the client from
// the frontend.
func natFlowWorks(t *testing.T, e *hostEnv, f natFlow, replyFlags uint8) bool {
	t.Helper()
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, f.client, progtest.TCPAck), e.ext)
	if res.Verdict != progtest.ActRedirect {
		return false
	}
	if src, _, _ := addrPorts(t, res.Packet); src.Port() != f.port {
		return false
	}
	reply := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP,
		SrcPort: 8080, DstPort: f.port, TCPFlags: replyFlags, Payload: []byte("r")}.IPv4()
	res = e.run(t, false, reply, e.rmt)
	if res.Verdict != progtest.ActRedirect {
		return false
	}
	src, dst, _ := addrPorts(t, res.Packet)
	return src == netip.AddrPortFrom(hostExtIP, hostNodePort) && dst == netip.AddrPortFrom(hostClient, f.client)
}

// natFlood sends new NodePort flows from client ports first.. and, after
// every 8, a packet each way of every flow in est; it returns the new flows
// dropped and the established flows that broke.
func natFlood(t *testing.T, e *hostEnv, first uint16, n int, est []natFlow) (dropped int, broken map[uint16]bool) {
	t.Helper()
	broken = map[uint16]bool{}
	for i := range n {
		if e.run(t, false, e.fromClient(hostExtIP, hostNodePort, first+uint16(i), progtest.TCPSyn), e.ext).Verdict == progtest.ActShot {
			dropped++
		}
		if i%8 != 7 {
			continue
		}
		for _, f := range est {
			if !natFlowWorks(t, e, f, progtest.TCPAck) {
				broken[f.client] = true
			}
		}
	}
	return dropped, broken
}

// NAT port exhaustion: with 16 SNAT ports, flows past them are dropped
// and counted as drop-nat-no-port, established flows keep their ports, and
// once the flood's flows expire their ports serve new flows.
func TestPrivilegedFaultNATPortExhaustion(t *testing.T) {
	const ports = 16
	e := newHostEnvWith(t, datapath.Options{CTLifetimeTCPSyn: time.Second,
		Host: datapath.HostOptions{SNATAddr: hostExtIP, SNATPortMin: 61000, SNATPortMax: 61000 + ports - 1}})
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	est := openNATFlows(t, e, 40000, 4)

	flood := faultScale(64 * ports)
	dropped, broken := natFlood(t, e, 20000, flood, est)
	counted := counter(t, e.d, uint32(e.ext), metricsmap.DropNATNoPort, metricsmap.DirIngress).Packets
	assert.EqualValues(t, dropped, counted, "every dropped new flow is counted as drop-nat-no-port")
	assert.GreaterOrEqual(t, dropped, flood-ports, "no more flows than ports")

	time.Sleep(2100 * time.Millisecond) // the flood's SYN-only flows expire
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 62000, progtest.TCPSyn), e.ext)
	recovered := res.Verdict == progtest.ActRedirect
	kept := len(est) - len(broken)
	faultResult(t, "nat_port_exhaustion", fmt.Sprintf("ports=%d new_flows=%d new_dropped=%d drop_nat_no_port=%d established_kept=%d/%d recovered=%s",
		ports, flood, dropped, counted, kept, len(est), yesNo(recovered)))
	assert.Equal(t, len(est), kept, "established flows keep their SNAT ports: broken %v", broken)
	assert.True(t, recovered)
}

// A full NAT map (an LRU hash, as conntrack): new flows evict the least
// recently used entries; established flows that keep sending both ways
// keep their translation, and new flows work once the pressure ends.
func TestPrivilegedFaultNATFull(t *testing.T) {
	const capacity = 64
	e := newHostEnvWith(t, datapath.Options{CTLifetimeTCPSyn: time.Second,
		MaxEntries: map[string]uint32{"sluice_snat4_v1": capacity},
		Host:       datapath.HostOptions{SNATAddr: hostExtIP}})
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	est := openNATFlows(t, e, 40000, 4)

	flood := faultScale(64 * capacity)
	dropped, broken := natFlood(t, e, 20000, flood, est)
	failed := counter(t, e.d, uint32(e.ext), metricsmap.DropNATFailed, metricsmap.DirIngress).Packets
	noPort := counter(t, e.d, uint32(e.ext), metricsmap.DropNATNoPort, metricsmap.DirIngress).Packets
	assert.EqualValues(t, dropped, failed+noPort, "every dropped new flow is counted with a NAT reason")

	time.Sleep(2100 * time.Millisecond)
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 62000, progtest.TCPSyn), e.ext)
	recovered := res.Verdict == progtest.ActRedirect
	kept := len(est) - len(broken)
	faultResult(t, "nat_full", fmt.Sprintf("capacity=%d new_flows=%d new_dropped=%d drop_nat_failed=%d drop_nat_no_port=%d established_kept=%d/%d recovered=%s",
		capacity, flood, dropped, failed, noPort, kept, len(est), yesNo(recovered)))
	assert.Equal(t, len(est), kept, "established flows keep their translation: broken %v", broken)
	assert.True(t, recovered)
}
