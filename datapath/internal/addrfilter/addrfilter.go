// Package addrfilter maintains the filters of the pod programs
// (bpf/lib/addr_filter.h): one-hash Bloom filters over a set of IPv4
// addresses (and an exact bitmap over a set of ports), arrays of 64-bit
// words in which a clear bit proves a value is not in the set, so the
// programs skip a hash lookup that cannot match. The agent is the filters'
// only writer and keeps a Go copy.
//
// The invariant the programs rely on: a value in the set always has its
// bit. So the owner of the set (lbmap for frontends, NodePorts and
// backends, endpointmap for local pods) calls Add before the map write that
// puts a value in the set, and clears bits only with Rebuild from what its
// maps hold, holding one lock over both so that no write slips in between.
package addrfilter

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

const (
	// BitsLog is ADDR_FILTER_BITS_LOG: 2^20 bits (16 384 words, 128 KiB),
	// so at 10 000 addresses about 1 % of other addresses share a bit.
	BitsLog = 20
	words   = 1 << (BitsLog - 6)
	// portWords is PORT_FILTER_WORDS: a bit for each of the 65 536 ports.
	portWords = 65536 / 64
	// rebuildMin: a rebuild (which reads the owner's whole map) drops the
	// bits of removed addresses once this many were removed, or as many as
	// the set had at the last rebuild if that is more.
	rebuildMin = 1024
)

// Bit is addr_filter_bit: the top bits of a multiplicative (Fibonacci)
// hash of the address v as the C side loads it (maputil.Be32).
func Bit(v uint32) uint32 {
	return (v * 0x9e3779b1) >> (32 - BitsLog)
}

// Filter is one filter map and its Go copy. Not safe for concurrent use:
// its owner serializes calls with the writes of its own maps.
type Filter struct {
	m        *ebpf.Map
	name     string
	bit      func(uint32) uint32
	nwords   int
	show     func(uint32) string
	words    []uint64
	removed  int
	rebuildN int
}

// New returns the address filter in m (name: the map's, for errors), whose
// values are addresses as maputil.Be32 gives them. Its content is unknown
// until the first Rebuild, which writes every word.
func New(m *ebpf.Map, name string) *Filter {
	return &Filter{m: m, name: name, bit: Bit, nwords: words, show: func(v uint32) string { return maputil.AddrFromBe32(v).String() }}
}

// NewPorts returns the port bitmap in m (port_filter_maybe), whose values
// are ports in host byte order; otherwise as New.
func NewPorts(m *ebpf.Map, name string) *Filter {
	return &Filter{m: m, name: name, bit: func(v uint32) uint32 { return v & 0xffff }, nwords: portWords,
		show: func(v uint32) string { return fmt.Sprintf("port %d", v) }}
}

// Add sets the bit of the value v before it joins the set.
func (f *Filter) Add(v uint32) error {
	bit := f.bit(v)
	word, mask := bit/64, uint64(1)<<(bit%64)
	if f.words == nil {
		return fmt.Errorf("%s: add %s before the first rebuild", f.name, f.show(v))
	}
	if f.words[word]&mask != 0 {
		return nil
	}
	w := f.words[word] | mask
	if err := f.m.Update(&word, &w, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("%s: set the bit of %s: %w", f.name, f.show(v), err)
	}
	f.words[word] = w
	return nil
}

// Removed counts an address that left the set and reports whether the
// owner should rebuild now.
func (f *Filter) Removed() bool {
	f.removed++
	return f.removed >= max(rebuildMin, f.rebuildN)
}

// Rebuild makes the filter hold exactly the bits of set, writing the words
// that changed.
func (f *Filter) Rebuild(set []uint32) error {
	next := make([]uint64, f.nwords)
	for _, v := range set {
		bit := f.bit(v)
		next[bit/64] |= 1 << (bit % 64)
	}
	for i, w := range next {
		if f.words != nil && f.words[i] == w {
			continue
		}
		word := uint32(i)
		if err := f.m.Update(&word, &w, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	f.words, f.removed, f.rebuildN = next, 0, len(set)
	return nil
}
