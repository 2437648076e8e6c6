package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// A direct connection (to the backend's pod IP, no service) that reuses the
// tuple of a load-balanced flow that is over is a new flow: its SYN-ACK is not
// reverse-NATed to the old frontend (which made the client drop it and the
// connect hang), and it is no longer treated as the old flow. The old flow is
// over when it is closing, or when its entry expired and the GC has not run.
func TestPrivilegedLBCTDirectConnectionReusesTuple(t *testing.T) {
	for _, over := range []string{"closing", "expired"} {
		t.Run(over, func(t *testing.T) {
			d := loadLB(t, datapath.Options{})
			fe := lbService(t, d, protoTCP, 0, 0, 10)
			client := netip.AddrPortFrom(lbClient, 40000)
			_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPSyn))
			require.Equal(t, lbRemote[0], dst.Addr())
			reply := func(flags uint8) netip.AddrPort {
				p := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: dst.Addr(), Dst: lbClient, SrcPort: dst.Port(),
					DstPort: client.Port(), TCPFlags: flags}
				res := progtest.Run(t, d.ToContainer(), p.IPv4(), aIfindex)
				require.Equal(t, uint32(progtest.ActOK), res.Verdict)
				src, _ := addrPortsOf(t, res.Packet)
				return src
			}
			require.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), reply(progtest.TCPSyn|progtest.TCPAck), "the service flow is reverse-NATed")
			switch over {
			case "closing":
				runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPRst|progtest.TCPAck))
			case "expired":
				expireBackendEntry(t, d, client, dst)
			}

			direct := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: lbClient, Dst: dst.Addr(), SrcPort: client.Port(),
				DstPort: dst.Port(), TCPFlags: progtest.TCPSyn}
			res, to := runFwd(t, d, direct)
			require.Equal(t, uint32(progtest.ActOK), res.Verdict)
			require.Equal(t, dst, to, "the direct SYN is not translated")
			assert.Equal(t, dst, reply(progtest.TCPSyn|progtest.TCPAck), "the direct connection's SYN-ACK keeps the backend's address")
			cts, err := d.CT().Entries()
			require.NoError(t, err)
			for _, c := range cts {
				if !c.Service && c.Src == client && c.Dst == dst {
					assert.Zero(t, c.RevNATID, "the direct flow's entry carries no reverse NAT")
					assert.Zero(t, c.BackendID)
				}
			}
		})
	}
}

// UDP has no connection to start: a direct packet on the tuple of a
// load-balanced flow whose entry expired (and the GC has not run) starts a
// direct flow, whose replies keep the backend's address; while the flow is
// live, a reply is still reverse-NATed.
func TestPrivilegedLBCTDirectUDPReusesExpiredTuple(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	fe := lbService(t, d, protoUDP, 0, 0, 10)
	client := netip.AddrPortFrom(lbClient, 40000)
	_, dst := runFwd(t, d, toVIP(lbClient, protoUDP, client.Port(), 0))
	require.Equal(t, lbRemote[0], dst.Addr())
	reply := func() netip.AddrPort {
		p := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: dst.Addr(), Dst: lbClient, Proto: l4(protoUDP),
			SrcPort: dst.Port(), DstPort: client.Port(), Payload: []byte("r")}
		res := progtest.Run(t, d.ToContainer(), p.IPv4(), aIfindex)
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		src, _ := addrPortsOf(t, res.Packet)
		return src
	}
	direct := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: lbClient, Dst: dst.Addr(), Proto: l4(protoUDP),
		SrcPort: client.Port(), DstPort: dst.Port(), Payload: []byte("d")}

	require.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), reply(), "the service flow is reverse-NATed")
	_, to := runFwd(t, d, direct)
	require.Equal(t, dst, to)
	assert.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), reply(), "a live flow keeps its translation")

	expireBackendEntry(t, d, client, dst)
	_, to = runFwd(t, d, direct)
	require.Equal(t, dst, to, "the direct packet is not translated")
	assert.Equal(t, dst, reply(), "the direct flow's reply keeps the backend's address")
}

// expireBackendEntry sets the lifetime of the flow's backend entry to the
// past, as if it had idled out and the agent's GC had not run yet.
func expireBackendEntry(t *testing.T, d *datapath.Datapath, client, backend netip.AddrPort) {
	t.Helper()
	ct := openPinned(t, d.Root(), "sluice_ct4_v1")
	var (
		key  bpfgen.LxcCt4Tuple
		val  bpfgen.LxcCt4Entry
		keys []bpfgen.LxcCt4Tuple
	)
	it := ct.Iterate()
	for it.Next(&key, &val) {
		if key.Flags == 0 && val.RevNatId != 0 {
			keys = append(keys, key)
		}
	}
	require.NoError(t, it.Err())
	require.Len(t, keys, 1, "one backend entry (%s -> %s)", client, backend)
	require.NoError(t, ct.Lookup(&keys[0], &val))
	val.Lifetime = 1
	require.NoError(t, ct.Put(&keys[0], &val))
}
