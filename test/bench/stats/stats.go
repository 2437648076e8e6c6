// Package stats computes the order statistics the benchmarks report:
// percentiles of latency samples and median/min/max across rounds.
package stats

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 <= p <= 100) of samples by the
// nearest-rank method: the smallest sample such that at least p% of the
// samples are less than or equal to it. samples is sorted in place. It
// returns 0 for no samples.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[rank(len(samples), p)]
}

// Percentiles is Percentile for several p at once (one sort).
func Percentiles(samples []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(samples) == 0 {
		return out
	}
	slices.Sort(samples)
	for i, p := range ps {
		out[i] = samples[rank(len(samples), p)]
	}
	return out
}

func rank(n int, p float64) int {
	switch {
	case p <= 0:
		return 0
	case p >= 100:
		return n - 1
	}
	r := int(math.Ceil(p / 100 * float64(n)))
	if r < 1 {
		r = 1
	}
	return r - 1
}

// Summary is the median and range of a set of values (one per round).
type Summary struct {
	N      int
	Median float64
	Min    float64
	Max    float64
}

// Summarize returns the median (mean of the two middle values for an even
// count), minimum and maximum of values; all zero for none. values is not
// modified.
func Summarize(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Summary{N: n, Median: med, Min: v[0], Max: v[n-1]}
}

// Ratio returns a/b, or NaN when b is zero.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}
