package servicemgr

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/datapath/lbmap"
)

// A Service's own mode is written into its external frontends' entries,
// resolved for their protocol (hybrid: DSR for TCP only); without one, or
// on a ClusterIP frontend, no mode flag: the node's --lb-mode applies.
func TestFlagsServiceMode(t *testing.T) {
	np := func(proto lb.Proto, mode lb.Mode) lb.Service {
		return lb.Service{Kind: lb.NodePort, Mode: mode, Frontend: lb.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: proto}}
	}
	for _, c := range []struct {
		s    lb.Service
		want lbmap.Flags
	}{
		{np(lb.TCP, ""), lbmap.FlagNodePort},
		{np(lb.TCP, lb.ModeDSR), lbmap.FlagNodePort | lbmap.FlagModeSet | lbmap.FlagDSR},
		{np(lb.UDP, lb.ModeDSR), lbmap.FlagNodePort | lbmap.FlagModeSet | lbmap.FlagDSR},
		{np(lb.TCP, lb.ModeSNAT), lbmap.FlagNodePort | lbmap.FlagModeSet},
		{np(lb.TCP, lb.ModeHybrid), lbmap.FlagNodePort | lbmap.FlagModeSet | lbmap.FlagDSR},
		{np(lb.UDP, lb.ModeHybrid), lbmap.FlagNodePort | lbmap.FlagModeSet},
		{lb.Service{Kind: lb.LoadBalancer, Mode: lb.ModeDSR, Frontend: lb.Frontend{Addr: netip.MustParseAddr("192.0.2.7"), Port: 443, Proto: lb.TCP}},
			lbmap.FlagExternal | lbmap.FlagModeSet | lbmap.FlagDSR},
		{lb.Service{Kind: lb.ClusterIP, Mode: lb.ModeDSR, Frontend: lb.Frontend{Addr: netip.MustParseAddr("10.96.0.1"), Port: 80, Proto: lb.TCP}}, 0},
	} {
		assert.Equal(t, c.want, flags(c.s), "%s %s %s", c.s.Kind, c.s.Frontend.Proto, c.s.Mode)
	}
}
