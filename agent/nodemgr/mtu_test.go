package nodemgr

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestComputeMTUs(t *testing.T) {
	tests := []struct {
		name          string
		mode          Mode
		underlay, pod int
		want          MTUs
		err           string
	}{
		{name: "vxlan on 1500", mode: ModeVXLAN, underlay: 1500, want: MTUs{Underlay: 1500, Pod: 1450, VXLAN: 1450}},
		{name: "vxlan on jumbo frames", mode: ModeVXLAN, underlay: 9000, want: MTUs{Underlay: 9000, Pod: 8950, VXLAN: 8950}},
		{name: "vxlan on 1400", mode: ModeVXLAN, underlay: 1400, want: MTUs{Underlay: 1400, Pod: 1350, VXLAN: 1350}},
		{name: "vxlan, underlay unknown", mode: ModeVXLAN, want: MTUs{Underlay: 1500, Pod: 1450, VXLAN: 1450}},
		{name: "native takes the underlay's", mode: ModeNative, underlay: 9000, want: MTUs{Underlay: 9000, Pod: 9000, VXLAN: 8950}},
		{name: "native, underlay unknown", mode: ModeNative, want: MTUs{Underlay: 1500, Pod: 1500, VXLAN: 1450}},
		{name: "none takes the underlay's", mode: ModeNone, underlay: 1400, want: MTUs{Underlay: 1400, Pod: 1400, VXLAN: 1350}},
		{name: "loopback's 65536 is clamped", mode: ModeNative, underlay: 65536, want: MTUs{Underlay: 65535, Pod: 65535, VXLAN: 65485}},
		{name: "--mtu wins in vxlan mode", mode: ModeVXLAN, underlay: 1500, pod: 1400, want: MTUs{Underlay: 1500, Pod: 1400, VXLAN: 1450}},
		{name: "--mtu wins in native mode", mode: ModeNative, underlay: 9000, pod: 1500, want: MTUs{Underlay: 9000, Pod: 1500, VXLAN: 8950}},
		{name: "underlay too small", mode: ModeVXLAN, underlay: 100, err: "underlay MTU 100 is below 118"},
		{name: "pod too small", mode: ModeVXLAN, underlay: 1500, pod: 67, err: "pod MTU 67 is out of range (68-65535)"},
		{name: "pod negative", mode: ModeNative, underlay: 1500, pod: -1, err: "pod MTU -1 is out of range"},
		{name: "pod too large", mode: ModeNative, underlay: 1500, pod: 65536, err: "pod MTU 65536 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ComputeMTUs(tt.mode, tt.underlay, tt.pod)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestNewDefaultsVXLANMTU(t *testing.T) {
	m, err := New(Config{Mode: ModeVXLAN}, nil)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, 1450, m.cfg.VXLANMTU)
	_, err = New(Config{Mode: ModeVXLAN, VXLANMTU: 40}, nil)
	require.ErrorContains(t, err, "VXLAN MTU 40 is out of range")
}
