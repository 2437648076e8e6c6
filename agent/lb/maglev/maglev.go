// Package maglev builds Maglev lookup tables (Eisenbud et al., "Maglev: A
// Fast and Reliable Software Network Load Balancer", NSDI 2016, section
// 3.4) and computes the flow hash the datapath indexes them with. Pure Go.
//
// A backend is known by a stable name (its address:port). Its offset and
// skip come from two hashes of the name only, and backends take their turns
// in the order of their names, so every node that has the same set of
// backends builds the same table, whatever IDs it gave them and in whatever
// order it learnt of them.
package maglev

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Table sizes: a prime (the permutations visit every entry only then), at
// most MaxTableSize (the datapath keeps an index in 16 bits).
const (
	DefaultTableSize = 16381
	MaxTableSize     = 65521
)

// ValidateTableSize returns an error unless m is a prime up to MaxTableSize.
func ValidateTableSize(m uint32) error {
	if m > MaxTableSize {
		return fmt.Errorf("maglev table size %d: above the maximum %d", m, MaxTableSize)
	}
	if !isPrime(m) {
		return fmt.Errorf("maglev table size %d: not a prime (Maglev needs a prime table size, such as 251, 1021, 4093, 16381 or 65521)", m)
	}
	return nil
}

func isPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	for d := uint32(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// Backend is one backend of a table: its stable name and a weight (0 is
// taken as 1). A backend of weight w takes w turns in each round of the
// fill, so its share of the table is about w over the sum of the weights.
type Backend struct {
	Name   string
	Weight uint32
}

// ErrTooManyBackends is returned when the backends outnumber the entries.
var ErrTooManyBackends = errors.New("more backends than table entries")

// permutation holds one backend's offset and skip and where it is in its
// permutation of the entries.
type permutation struct {
	idx          int    // index into the caller's backends
	offset, skip uint64 // first entry and step
	next         uint64 // next entry to try: (offset + j*skip) % m
	weight       uint32
}

// offsetSkip returns the two hashes of the paper: offset in [0, m) and
// skip in [1, m), from the two halves of SHA-256 of the name (stable across
// processes, architectures and Go versions).
func offsetSkip(name string, m uint64) (offset, skip uint64) {
	h := sha256.Sum256([]byte(name))
	return binary.BigEndian.Uint64(h[0:8]) % m, binary.BigEndian.Uint64(h[8:16])%(m-1) + 1
}

// Build returns the lookup table of size m (ValidateTableSize) for the
// backends: entry i is the index in backends of the backend that serves the
// flows whose hash modulo m is i. Names must be distinct. No backends give
// a nil table.
func Build(backends []Backend, m uint32) ([]int, error) {
	if err := ValidateTableSize(m); err != nil {
		return nil, err
	}
	if len(backends) == 0 {
		return nil, nil
	}
	if len(backends) > int(m) {
		return nil, fmt.Errorf("%d backends, table of %d: %w", len(backends), m, ErrTooManyBackends)
	}
	perms := make([]permutation, len(backends))
	for i, b := range backends {
		off, skip := offsetSkip(b.Name, uint64(m))
		perms[i] = permutation{idx: i, offset: off, skip: skip, next: off, weight: max(b.Weight, 1)}
	}
	slices.SortFunc(perms, func(a, b permutation) int {
		if backends[a.idx].Name < backends[b.idx].Name {
			return -1
		}
		if backends[a.idx].Name > backends[b.idx].Name {
			return 1
		}
		return 0
	})
	for i := 1; i < len(perms); i++ {
		if backends[perms[i].idx].Name == backends[perms[i-1].idx].Name {
			return nil, fmt.Errorf("backend %q given twice", backends[perms[i].idx].Name)
		}
	}
	maxWeight := uint32(0)
	for _, p := range perms {
		maxWeight = max(maxWeight, p.weight)
	}
	table := make([]int, m)
	for i := range table {
		table[i] = -1
	}
	mm := uint64(m)
	filled := uint32(0)
	// Rounds of turns as in the paper's Populate; with weights, round r
	// (of maxWeight per pass) gives a turn to the backends of weight > r.
	for round := uint32(0); ; round = (round + 1) % maxWeight {
		for i := range perms {
			p := &perms[i]
			if p.weight <= round {
				continue
			}
			c := p.next
			for table[c] >= 0 {
				c = (c + p.skip) % mm
			}
			table[c] = p.idx
			p.next = (c + p.skip) % mm
			filled++
			if filled == m {
				return table, nil
			}
		}
	}
}

// FlowHash is the datapath's flow hash (lb4_flow_hash in bpf/lib/lb_ct.h):
// lookup3's jhash_3words over the source and destination addresses and the
// ports as the packet holds them, seeded with the protocol. Without the
// source port (affinity services) sport is 0. Index a table with
// FlowHash(...) % m.
func FlowHash(saddr, daddr netip.Addr, sport, dport uint16, proto uint8) uint32 {
	s, d := saddr.As4(), daddr.As4()
	// The program loads the network-order bytes into little-endian words.
	a := binary.LittleEndian.Uint32(s[:])
	b := binary.LittleEndian.Uint32(d[:])
	ports := uint32(swap16(dport))<<16 | uint32(swap16(sport))
	return jhash3(a, b, ports, uint32(proto))
}

func swap16(v uint16) uint16 { return v<<8 | v>>8 }

func rol32(w uint32, s uint) uint32 { return w<<s | w>>(32-s) }

// jhash3 is the kernel's jhash_3words (include/linux/jhash.h).
func jhash3(a, b, c, initval uint32) uint32 {
	initval += 0xdeadbeef + 3<<2
	a += initval
	b += initval
	c += initval
	c ^= b
	c -= rol32(b, 14)
	a ^= c
	a -= rol32(c, 11)
	b ^= a
	b -= rol32(a, 25)
	c ^= b
	c -= rol32(b, 16)
	a ^= c
	a -= rol32(c, 4)
	b ^= a
	b -= rol32(a, 14)
	c ^= b
	c -= rol32(b, 24)
	return c
}
