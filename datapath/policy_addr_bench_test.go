package datapath_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// BenchmarkFromContainerPolicyAddr measures the per-packet cost of a policy
// decision with address rules next to the identity-only path
// (BenchmarkFromContainerPolicy's lookup-untracked): a's egress is enforced,
// with 1 000 identity entries and, in the addr cases, 1 000 address entries
// (prefixes /8 to /32, 250 address sets of 4 entries each). The packet is an
// ICMP timestamp request a → c, which conntrack does not track, so every
// in-kernel repeat runs the whole decision of a new flow (config, identity
// stage, address stage, IP cache), no event:
//   - identity-only: allowed by c's identity, no address flag;
//   - addr-allow: allowed by c's address entry (identity stage misses);
//   - addr-miss: the address flag set but no address entry holds c
//     (allowed by identity): the cost the flag adds to a pod's other peers.
func BenchmarkFromContainerPolicyAddr(b *testing.B) {
	e := loadPolicy(b)
	rng := rand.New(rand.NewPCG(3, 4))
	pm := e.d.Policy()
	for i := 0; i < 1000; i++ {
		k := policymap.Key{Identity: 10000 + uint32(rng.IntN(5000)), Proto: protoTCP, Port: uint16(rng.IntN(65536)), PortPrefixLen: 16}
		require.NoError(b, pm.Upsert(epA, k, policymap.Entry{RuleID: uint32(i)}))
	}
	for s := uint32(1); s <= 250; s++ {
		for j := 0; j < 4; j++ {
			k := policymap.Key{Identity: setBase | s, Proto: protoTCP, Port: uint16(rng.IntN(65536)), PortPrefixLen: 16}
			require.NoError(b, pm.Upsert(epA, k, policymap.Entry{RuleID: s}))
		}
	}
	for n := 0; n < 999; {
		// Random prefixes in 11.0.0.0-126.255.255.255 (c is 10.244.2.5).
		a := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(116)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p, err := a.Prefix(8 + rng.IntN(25))
		require.NoError(b, err)
		if err := pm.UpsertAddr(epA, policymap.AddrKey{Prefix: p}, setBase|uint32(1+rng.IntN(250))); err != nil {
			b.Fatal(err)
		}
		got, err := pm.Addrs(epA)
		require.NoError(b, err)
		n = len(got)
	}
	icmpTS := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polC, Proto: icmp}.IPv4()
	icmpTS[14+20] = 13
	ts := policymap.Key{Proto: 1, Port: 13, PortPrefixLen: 16}
	cAddr := policymap.AddrKey{Prefix: netip.MustParsePrefix("10.244.2.0/24")}

	cases := []struct {
		name     string
		cfg      policymap.Config
		identity bool // c's identity allows
		addr     bool // c's address entry allows
	}{
		{"identity-only", policymap.Config{EgressEnforced: true}, true, false},
		{"addr-allow", policymap.Config{EgressEnforced: true, EgressAddr: true}, false, true},
		{"addr-miss", policymap.Config{EgressEnforced: true, EgressAddr: true}, true, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e.enforce(epA, c.cfg)
			require.NoError(b, pm.Delete(epA, with(ts, false, idC)))
			require.NoError(b, pm.DeleteAddr(epA, cAddr))
			if c.identity {
				e.allow(epA, with(ts, false, idC), 1)
			}
			if c.addr {
				e.addr(epA, false, cAddr.Prefix.String(), set1)
				e.allow(epA, with(ts, false, set1), 2)
			}
			used, _, err := pm.AddrPressure()
			require.NoError(b, err)
			require.GreaterOrEqual(b, used, 999)
			ret, per, err := e.d.FromContainer().Benchmark(icmpTS, b.N, nil)
			require.NoError(b, err)
			require.EqualValues(b, progtest.ActOK, ret)
			b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
		})
	}
}
