package policy

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPortRangeToPrefixesEdges(t *testing.T) {
	for _, tc := range []struct {
		lo, hi uint16
		want   []PortPrefix
	}{
		{0, 0, []PortPrefix{{0, 16}}},
		{1, 1, []PortPrefix{{1, 16}}},
		{65535, 65535, []PortPrefix{{65535, 16}}},
		{0, 65535, []PortPrefix{{0, 0}}},
		{1, 65535, []PortPrefix{{1, 16}, {2, 15}, {4, 14}, {8, 13}, {16, 12}, {32, 11}, {64, 10}, {128, 9},
			{256, 8}, {512, 7}, {1024, 6}, {2048, 5}, {4096, 4}, {8192, 3}, {16384, 2}, {32768, 1}}},
		{0, 65534, []PortPrefix{{0, 1}, {32768, 2}, {49152, 3}, {57344, 4}, {61440, 5}, {63488, 6}, {64512, 7},
			{65024, 8}, {65280, 9}, {65408, 10}, {65472, 11}, {65504, 12}, {65520, 13}, {65528, 14}, {65532, 15}, {65534, 16}}},
		{1023, 1025, []PortPrefix{{1023, 16}, {1024, 15}}},
		{1024, 2047, []PortPrefix{{1024, 6}}},
		{80, 81, []PortPrefix{{80, 15}}},
		{79, 80, []PortPrefix{{79, 16}, {80, 16}}},
		{32768, 65535, []PortPrefix{{32768, 1}}},
		{65534, 65535, []PortPrefix{{65534, 15}}},
		{8000, 8080, []PortPrefix{{8000, 10}, {8064, 12}, {8080, 16}}},
	} {
		got := PortRangeToPrefixes(tc.lo, tc.hi)
		assert.Equal(t, tc.want, got, "%d-%d", tc.lo, tc.hi)
		checkCover(t, tc.lo, tc.hi, got)
	}
	assert.Nil(t, PortRangeToPrefixes(2, 1))
}

// checkCover verifies the blocks are aligned, ascending, disjoint and cover
// exactly lo..hi.
func checkCover(t *testing.T, lo, hi uint16, ps []PortPrefix) {
	t.Helper()
	next := uint32(lo)
	for _, p := range ps {
		size := uint32(1) << (16 - p.PrefixLen)
		require.Zero(t, uint32(p.Port)%size, "%d-%d: block %v not aligned", lo, hi, p)
		require.Equal(t, next, uint32(p.Port), "%d-%d: gap or overlap at %v", lo, hi, p)
		next += size
		require.Equal(t, uint32(p.Last())+1, next)
	}
	require.Equal(t, uint32(hi)+1, next, "%d-%d: does not end at hi", lo, hi)
	require.LessOrEqual(t, len(ps), 30, "at most 2*16-2 blocks")
}

func TestPortRangeToPrefixesExhaustiveSmall(t *testing.T) {
	// Every range within the first 1100 ports and the last 300, plus random ones.
	for lo := 0; lo < 1100; lo++ {
		for hi := lo; hi < 1100; hi += 1 + hi/64 {
			checkCover(t, uint16(lo), uint16(hi), PortRangeToPrefixes(uint16(lo), uint16(hi)))
		}
	}
	for lo := 65235; lo <= 65535; lo++ {
		for hi := lo; hi <= 65535; hi++ {
			checkCover(t, uint16(lo), uint16(hi), PortRangeToPrefixes(uint16(lo), uint16(hi)))
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		a, b := uint16(rng.Intn(65536)), uint16(rng.Intn(65536))
		if a > b {
			a, b = b, a
		}
		checkCover(t, a, b, PortRangeToPrefixes(a, b))
	}
}

func TestCompilePortProtocol(t *testing.T) {
	for _, tc := range []struct {
		pp    PortProtocol
		want  []l4
		field string
	}{
		{PortProtocol{Port: intstr.FromString("80"), Protocol: "TCP"}, []l4{{proto: ProtoTCP, lo: 80, hi: 80}}, ""},
		{PortProtocol{Port: intstr.FromInt32(80)}, []l4{{proto: ProtoTCP, lo: 80, hi: 80}, {proto: ProtoUDP, lo: 80, hi: 80}}, ""},
		{PortProtocol{Port: intstr.FromString("0"), Protocol: "ANY"}, []l4{{proto: ProtoAny}}, ""},
		{PortProtocol{Port: intstr.FromString(""), Protocol: "UDP"}, []l4{{proto: ProtoUDP}}, ""},
		{PortProtocol{Port: intstr.FromInt32(1), EndPort: 65535, Protocol: "udp"}, []l4{{proto: ProtoUDP, lo: 1, hi: 65535}}, ""},
		{PortProtocol{Port: intstr.FromString("http-alt"), Protocol: "TCP"}, []l4{{proto: ProtoTCP, name: "http-alt"}}, ""},
		{PortProtocol{Port: intstr.FromString("HTTP"), Protocol: "TCP"}, nil, "port"},
		{PortProtocol{Port: intstr.FromString("a--b"), Protocol: "TCP"}, nil, "port"},
		{PortProtocol{Port: intstr.FromString("1234567890abcdef"), Protocol: "TCP"}, nil, "port"},
		{PortProtocol{Port: intstr.FromInt32(65536)}, nil, "port"},
		{PortProtocol{Port: intstr.FromInt32(-1)}, nil, "port"},
		{PortProtocol{Port: intstr.FromInt32(80), Protocol: "SCTP"}, nil, "protocol"},
		{PortProtocol{Port: intstr.FromInt32(0), EndPort: 10}, nil, "endPort"},
		{PortProtocol{Port: intstr.FromInt32(100), EndPort: 99}, nil, "endPort"},
		{PortProtocol{Port: intstr.FromInt32(100), EndPort: 65536}, nil, "endPort"},
	} {
		got, field, err := compilePortProtocol(tc.pp)
		if tc.field != "" {
			assert.Error(t, err, "%+v", tc.pp)
			assert.Equal(t, tc.field, field, "%+v", tc.pp)
			continue
		}
		require.NoError(t, err, "%+v", tc.pp)
		assert.Equal(t, tc.want, got, "%+v", tc.pp)
	}
}
