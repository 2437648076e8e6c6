package datapath_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// A service's own forwarding mode (lbmap.FlagModeSet, from its
// service.sluice.io/lb-mode annotation) beats the node's --lb-mode at tc and
// at XDP alike: FlagDSR encapsulates on an snat node, FlagModeSet without
// FlagDSR SNATs on a dsr node (and UDP goes DSR on a hybrid node), while
// services without FlagModeSet keep the node's mode. For every case the
// XDP program sends the frame the tc program sends, byte for byte.
func TestPrivilegedServiceModeOverride(t *testing.T) {
	const (
		portDefault = hostNodePort     // no FlagModeSet: the node's mode
		portDSR     = hostNodePort + 1 // FlagModeSet|FlagDSR
		portSNAT    = hostNodePort + 2 // FlagModeSet
	)
	type want struct {
		port  uint16
		proto layers.IPProtocol
		dsr   bool
	}
	for _, c := range []struct {
		node  datapath.LBMode
		wants []want
	}{
		{datapath.LBModeSNAT, []want{
			{portDefault, layers.IPProtocolTCP, false}, {portDSR, layers.IPProtocolTCP, true}, {portSNAT, layers.IPProtocolTCP, false},
			{portDefault, layers.IPProtocolUDP, false}, {portDSR, layers.IPProtocolUDP, true},
		}},
		{datapath.LBModeDSR, []want{
			{portDefault, layers.IPProtocolTCP, true}, {portDSR, layers.IPProtocolTCP, true}, {portSNAT, layers.IPProtocolTCP, false},
			{portDefault, layers.IPProtocolUDP, true}, {portSNAT, layers.IPProtocolUDP, false},
		}},
		{datapath.LBModeHybrid, []want{
			{portDefault, layers.IPProtocolTCP, true}, {portSNAT, layers.IPProtocolTCP, false},
			{portDefault, layers.IPProtocolUDP, false}, {portDSR, layers.IPProtocolUDP, true},
		}},
	} {
		t.Run(string(c.node), func(t *testing.T) {
			e := newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{
				SNATAddr: hostExtIP, SNATPortMin: xdpNATPort, SNATPortMax: xdpNATPort, LBMode: c.node,
			}})
			require.NoError(t, e.d.LB().UpsertBackend(beRemoteUDP, lbmap.Backend{Addr: hostRemote, Port: 8053, Proto: protoUDP}))
			e.ns.Do(t, func() {
				for _, dev := range []string{"ext0", "rmt0"} {
					require.NoError(t, e.d.Devices().AttachXDP(dev, device.XDPNative))
				}
			})
			for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
				be := uint32(beRemote)
				if proto == layers.IPProtocolUDP {
					be = beRemoteUDP
				}
				for port, fl := range map[uint16]lbmap.Flags{
					portDefault: 0, portDSR: lbmap.FlagModeSet | lbmap.FlagDSR, portSNAT: lbmap.FlagModeSet,
				} {
					e.service(t, lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: port, Proto: uint8(proto)}, lbmap.FlagNodePort|fl, be)
				}
			}
			for _, w := range c.wants {
				name := fmt.Sprintf("%s port %d", w.proto, w.port)
				pkt := e.clientPkt(w.proto, w.port, 40000, progtest.TCPSyn)

				clearRaw(t, e.d, "sluice_ct4_v1", "sluice_snat4_v1")
				dsr0 := counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSR, metricsmap.DirIngress).Packets
				tc := e.run(t, false, pkt, e.ext)
				require.Equal(t, uint32(progtest.ActRedirect), tc.Verdict, "%s: tc forwards", name)
				d := progtest.Decode(t, tc.Packet)
				require.NotNil(t, d.IP, name)
				if w.dsr {
					require.Len(t, tc.Packet, len(pkt)+20, name)
					assert.Equal(t, layers.IPProtocolIPv4, d.IP.Protocol, "%s: IP-in-IP", name)
					assert.Equal(t, hostRemote.AsSlice(), []byte(d.IP.DstIP.To4()), "%s: outer destination the backend", name)
					src, dst, _ := parsed(t, decapped(tc.Packet))
					assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), src, "%s: client kept", name)
					assert.Equal(t, netip.AddrPortFrom(hostExtIP, w.port), dst, "%s: frontend kept", name)
					assert.Empty(t, natEntries(t, e.d, ctmap.NATIn), "%s: no SNAT", name)
					assert.Equal(t, dsr0+1, counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSR, metricsmap.DirIngress).Packets, name)
				} else {
					require.Len(t, tc.Packet, len(pkt), name)
					assert.Equal(t, w.proto, d.IP.Protocol, "%s: not encapsulated", name)
					src, dst, _ := parsed(t, tc.Packet)
					assert.Equal(t, netip.AddrPortFrom(hostExtIP, xdpNATPort), src, "%s: SNAT to the node", name)
					assert.Equal(t, hostRemote, dst.Addr(), "%s: DNAT to the backend", name)
					assert.Equal(t, dsr0, counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSR, metricsmap.DirIngress).Packets, name)
				}

				clearRaw(t, e.d, "sluice_ct4_v1", "sluice_snat4_v1")
				var x progtest.Result
				e.ns.Do(t, func() { x = progtest.RunXDP(t, e.d.XDPNodePort(), pkt, uint32(e.ext)) })
				require.Equal(t, uint32(progtest.XDPRedirect), x.Verdict, "%s: XDP forwards", name)
				n := len(pkt)
				if w.dsr {
					n += 20
				}
				assert.Equal(t, fmt.Sprintf("%x", tc.Packet[:n]), fmt.Sprintf("%x", x.Packet[:n]), "%s: XDP sends tc's frame", name)
			}
		})
	}
}
