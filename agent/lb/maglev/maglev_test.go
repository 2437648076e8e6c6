package maglev

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func backends(n int) []Backend {
	out := make([]Backend, n)
	for i := range out {
		out[i] = Backend{Name: fmt.Sprintf("10.244.%d.%d:8080", 1+i/200, 10+i%200)}
	}
	return out
}

// names maps a table of indices to backend names.
func names(t *testing.T, bes []Backend, table []int) []string {
	t.Helper()
	out := make([]string, len(table))
	for i, idx := range table {
		require.GreaterOrEqual(t, idx, 0, "entry %d not filled", i)
		out[i] = bes[idx].Name
	}
	return out
}

// syntheticFlows returns n flows from clients in 198.18.0.0/15 (benchmark
// range) to one frontend, as their FlowHash.
func syntheticFlows(n int) []uint32 {
	r := rand.New(rand.NewPCG(1, 2))
	fe := netip.MustParseAddr("10.96.0.10")
	out := make([]uint32, n)
	for i := range out {
		c := netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(256)), byte(r.IntN(256))})
		out[i] = FlowHash(c, fe, uint16(1024+r.IntN(60000)), 80, 6)
	}
	return out
}

func TestValidateTableSize(t *testing.T) {
	for _, m := range []uint32{2, 3, 251, 1021, 4093, DefaultTableSize, 65521} {
		assert.NoError(t, ValidateTableSize(m), m)
	}
	for _, m := range []uint32{0, 1, 4, 16380, 16383, 65535, 65536, 65537, 131071} {
		assert.Error(t, ValidateTableSize(m), m)
	}
	assert.ErrorContains(t, ValidateTableSize(16383), "not a prime")
	assert.ErrorContains(t, ValidateTableSize(131071), "above the maximum 65521")
}

// Two tables built independently for the same backends, given in different
// orders (as two nodes learn them), name the same backend in every entry.
func TestTableIdenticalAnyOrder(t *testing.T) {
	bes := backends(10)
	a, err := Build(bes, DefaultTableSize)
	require.NoError(t, err)
	for seed := range uint64(5) {
		shuffled := slices.Clone(bes)
		rand.New(rand.NewPCG(seed, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b, err := Build(shuffled, DefaultTableSize)
		require.NoError(t, err)
		require.Equal(t, names(t, bes, a), names(t, shuffled, b), "shuffle %d", seed)
	}
	// And not the same for another backend set.
	c, err := Build(backends(11)[1:], DefaultTableSize)
	require.NoError(t, err)
	assert.NotEqual(t, names(t, bes, a), names(t, backends(11)[1:], c))
}

// Removing one backend of 10 moves few flows besides its own: at most 12 %
// of 100 000 flows change backend (ideal: the removed backend's 10 %).
func TestDisruptionOneOfTen(t *testing.T) {
	for _, m := range []uint32{DefaultTableSize, MaxTableSize} {
		bes := backends(10)
		before, err := Build(bes, m)
		require.NoError(t, err)
		removed := 3
		rest := slices.Delete(slices.Clone(bes), removed, removed+1)
		after, err := Build(rest, m)
		require.NoError(t, err)
		flows := syntheticFlows(100000)
		moved, onRemoved := 0, 0
		for _, h := range flows {
			b := bes[before[h%m]].Name
			a := rest[after[h%m]].Name
			if a != b {
				moved++
				if b == bes[removed].Name {
					onRemoved++
				}
			}
		}
		pct := 100 * float64(moved) / float64(len(flows))
		t.Logf("M=%d: removing 1 of 10 backends moved %d of %d flows (%.2f %%; %.2f %% were on the removed backend)",
			m, moved, len(flows), pct, 100*float64(onRemoved)/float64(len(flows)))
		assert.LessOrEqual(t, pct, 12.0)
		assert.GreaterOrEqual(t, pct, 9.0, "the removed backend's flows must move")
	}
}

// Every backend's share of the table is within ±2 % of 1/N relative to 1/N
// (the table is what Maglev balances), and its share of 100 000 synthetic
// flows within ±2 percentage points of 1/N: over 10 backends a share of
// 10 000 flows has a sampling noise of about 1 % of 1/N by itself, so the
// flows cannot show the table's balance to better than a few per cent.
func TestBalance(t *testing.T) {
	flows := syntheticFlows(100000)
	for _, n := range []int{2, 3, 10, 100} {
		bes := backends(n)
		table, err := Build(bes, DefaultTableSize)
		require.NoError(t, err)
		entries := make([]int, n)
		for _, idx := range table {
			entries[idx]++
		}
		hits := make([]int, n)
		for _, h := range flows {
			hits[table[h%DefaultTableSize]]++
		}
		ideal := 1 / float64(n)
		worstT, worstF := 0.0, 0.0
		for i := range n {
			dt := float64(entries[i])/DefaultTableSize/ideal - 1
			df := float64(hits[i])/float64(len(flows))/ideal - 1
			worstT = max(worstT, abs(dt))
			worstF = max(worstF, abs(df))
			assert.InDelta(t, 0, dt, 0.02, "n=%d backend %d: %d entries", n, i, entries[i])
			assert.InDelta(t, ideal, float64(hits[i])/float64(len(flows)), 0.02, "n=%d backend %d: %d flows", n, i, hits[i])
		}
		t.Logf("N=%d: worst table share %.3f %% off 1/N, worst flow share %.3f %% off 1/N (relative)", n, 100*worstT, 100*worstF)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestWeights(t *testing.T) {
	bes := []Backend{{Name: "a:1", Weight: 1}, {Name: "b:1", Weight: 3}}
	table, err := Build(bes, 1021)
	require.NoError(t, err)
	n := [2]int{}
	for _, idx := range table {
		n[idx]++
	}
	assert.InDelta(t, 0.75, float64(n[1])/1021, 0.01, "%v", n)
}

func TestBuildErrors(t *testing.T) {
	_, err := Build(backends(4), 4)
	assert.Error(t, err)
	_, err = Build(backends(5), 3)
	assert.ErrorIs(t, err, ErrTooManyBackends)
	_, err = Build([]Backend{{Name: "a"}, {Name: "a"}}, 251)
	assert.ErrorContains(t, err, "given twice")
	tbl, err := Build(nil, 251)
	assert.NoError(t, err)
	assert.Nil(t, tbl)
}

// FlowHash is the kernel's jhash_3words: known values of the kernel's
// function (computed from include/linux/jhash.h).
func TestFlowHashStable(t *testing.T) {
	assert.Equal(t, jhash3(0, 0, 0, 0), jhash3(0, 0, 0, 0))
	h1 := FlowHash(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.96.0.10"), 40000, 80, 6)
	h2 := FlowHash(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.96.0.10"), 40001, 80, 6)
	assert.NotEqual(t, h1, h2)
}

// BenchmarkBuild: one table of the default size (about 1-1.5 ms on the CI
// machine), rebuilt on every change of a service's backends.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		bes := backends(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Build(bes, DefaultTableSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
