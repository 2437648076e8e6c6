package datapath_test

import (
	"net"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// The XDP link of a device: pinned per mode, switched between modes,
// adopted by the next datapath load, detached; a device without native XDP
// (a bridge) is refused with ErrXDPUnsupported and left without XDP.
func TestPrivilegedXDPAttachModes(t *testing.T) {
	harness.RequirePrivileged(t)
	bpffs := harness.BPFFS(t)
	d := progtest.Load(t, bpffs, datapath.Options{})
	root := d.Root()
	ns := harness.NewNetNS(t, "sl-xdpa-")
	ns.Run(t, "ip", "link", "add", "ext0", "type", "veth", "peer", "name", "extp")
	ns.Run(t, "ip", "link", "add", "dum0", "type", "bridge")
	ns.Run(t, "ip", "link", "set", "ext0", "up")
	ns.Run(t, "ip", "link", "set", "dum0", "up")

	// xdpLink returns the XDP link pinned for ifname in mode: its ifindex
	// and program id.
	xdpLink := func(ifname string, mode device.XDPMode) (int, uint32) {
		l, err := link.LoadPinnedLink(pin.DeviceLinkPath(root, ifname, pin.XDPHook(string(mode))), nil)
		require.NoError(t, err)
		defer l.Close()
		info, err := l.Info()
		require.NoError(t, err)
		require.NotNil(t, info.XDP())
		return int(info.XDP().Ifindex), uint32(info.Program)
	}
	progID := func(d *datapath.Datapath) uint32 {
		info, err := d.XDPNodePort().Info()
		require.NoError(t, err)
		id, _ := info.ID()
		return uint32(id)
	}

	ns.Do(t, func() {
		ext, err := net.InterfaceByName("ext0")
		require.NoError(t, err)
		devs := d.Devices()
		require.NoError(t, devs.Set([]string{"ext0", "dum0"}))

		errs := devs.SetXDP([]string{"ext0", "dum0"}, device.XDPNative)
		assert.NoError(t, errs["ext0"])
		assert.ErrorIs(t, errs["dum0"], device.ErrXDPUnsupported, "a bridge has no native XDP")
		assert.Equal(t, device.XDPNative, devs.XDPModeOf("ext0"))
		assert.Equal(t, device.XDPDisabled, devs.XDPModeOf("dum0"))
		idx, prog := xdpLink("ext0", device.XDPNative)
		assert.Equal(t, ext.Index, idx)
		assert.Equal(t, progID(d), prog)

		// Again: the same link stays.
		assert.Empty(t, devs.SetXDP([]string{"ext0"}, device.XDPNative))

		// generic works on any device.
		assert.Empty(t, devs.SetXDP([]string{"ext0", "dum0"}, device.XDPGeneric))
		assert.Equal(t, device.XDPGeneric, devs.XDPModeOf("ext0"))
		assert.Equal(t, device.XDPGeneric, devs.XDPModeOf("dum0"))
		xdpLink("ext0", device.XDPGeneric)
	})

	// The next load adopts the pinned XDP links (pointing them at its
	// program in place).
	d2 := progtest.Load(t, bpffs, datapath.Options{})
	require.NotEqual(t, progID(d), progID(d2))
	ns.Do(t, func() {
		_, prog := xdpLink("ext0", device.XDPGeneric)
		assert.Equal(t, progID(d2), prog, "adopted")

		assert.Empty(t, d2.Devices().SetXDP([]string{"ext0", "dum0"}, device.XDPDisabled))
		assert.Equal(t, device.XDPDisabled, d2.Devices().XDPModeOf("ext0"))
		assert.Equal(t, device.XDPDisabled, d2.Devices().XDPModeOf("dum0"))
		out := ns.Run(t, "ip", "link", "show", "ext0")
		assert.NotContains(t, out, "xdp", "detached")
	})
}
