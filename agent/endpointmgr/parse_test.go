package endpointmgr

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func validEndpoint() api.Endpoint {
	return api.Endpoint{
		ContainerID: "c1", IfName: "eth0", NetNS: "/var/run/netns/p1",
		IPv4: "10.1.0.5", MAC: "02:00:00:00:00:05",
		HostIfName: "lxc1", HostIfIndex: 7, HostMAC: "02:00:00:00:01:07",
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*api.Endpoint)
		wantErr string // substring; "" means valid
	}{
		{"valid", func(*api.Endpoint) {}, ""},
		{"missing containerID", func(e *api.Endpoint) { e.ContainerID = "" }, "containerID is required"},
		{"missing ifName", func(e *api.Endpoint) { e.IfName = "" }, "ifName is required"},
		{"missing ipv4", func(e *api.Endpoint) { e.IPv4 = "" }, "ipv4 is required"},
		{"ipv6", func(e *api.Endpoint) { e.IPv4 = "fd00::1" }, `ipv4: "fd00::1" is not an IPv4 address`},
		{"cidr", func(e *api.Endpoint) { e.IPv4 = "10.1.0.5/24" }, "ipv4:"},
		{"garbage ipv4", func(e *api.Endpoint) { e.IPv4 = "ten" }, "ipv4:"},
		{"bad mac", func(e *api.Endpoint) { e.MAC = "zz:00" }, `mac: "zz:00" is not an Ethernet MAC address`},
		{"long mac", func(e *api.Endpoint) { e.MAC = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01" }, "mac:"},
		{"bad host mac", func(e *api.Endpoint) { e.HostMAC = "x" }, "hostMAC:"},
		{"zero ifindex", func(e *api.Endpoint) { e.HostIfIndex = 0 }, "hostIfIndex must be positive"},
		{"huge ifindex", func(e *api.Endpoint) { e.HostIfIndex = 1 << 40 }, "hostIfIndex: 1099511627776 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := validEndpoint()
			tt.mutate(&ep)
			e, err := parse(ep)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, "10.1.0.5", e.ip.String())
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestParseNormalises(t *testing.T) {
	ep := validEndpoint()
	ep.MAC = "02-00-00-00-00-AB"
	ep.HostMAC = "02:00:00:00:01:CD"
	ep.Counters = []api.Counter{{Packets: 1}}
	e, err := parse(ep)
	require.NoError(t, err)
	assert.Equal(t, "02:00:00:00:00:ab", e.ep.MAC)
	assert.Equal(t, "02:00:00:00:01:cd", e.ep.HostMAC)
	assert.Nil(t, e.ep.Counters)
	dp := e.datapath()
	assert.Equal(t, uint32(7), dp.Ifindex)
	assert.Equal(t, "02:00:00:00:00:ab", dp.MAC.String())
	assert.Equal(t, "02:00:00:00:01:cd", dp.NodeMAC.String())
}

func TestAllocateID(t *testing.T) {
	all := func(uint16) bool { return true }
	tests := []struct {
		name string
		used func(uint16) bool
		want uint16
		err  error
	}{
		{"empty", func(uint16) bool { return false }, 1, nil},
		{"first taken", func(id uint16) bool { return id == 1 }, 2, nil},
		{"hole", func(id uint16) bool { return id != 3 }, 3, nil},
		{"only last free", func(id uint16) bool { return id != MaxID }, MaxID, nil},
		{"full", all, 0, ErrNoFreeID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allocateID(tt.used)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
