package identity

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
)

// Source says who put an entry into the IPCache. When several sources hold
// the same prefix, the one with the highest precedence (the larger value) is
// effective; deleting it uncovers the next one.
type Source uint8

// Sources, lowest precedence first.
const (
	// SourceGenerated: CIDR identities generated from policy rules.
	SourceGenerated Source = iota + 1
	// SourceKubernetes: Kubernetes objects (pods, nodes) seen by informers.
	SourceKubernetes
	// SourceClusterStore: other nodes' endpoints learned through the cluster.
	SourceClusterStore
	// SourceLocal: endpoints of this node, from the endpoint manager.
	SourceLocal
	// SourceAgent: the agent's own addresses (host, health).
	SourceAgent
)

func (s Source) String() string {
	switch s {
	case SourceGenerated:
		return "generated"
	case SourceKubernetes:
		return "kubernetes"
	case SourceClusterStore:
		return "cluster-store"
	case SourceLocal:
		return "local"
	case SourceAgent:
		return "agent"
	}
	return fmt.Sprintf("source-%d", uint8(s))
}

// Entry is a prefix's effective identity and the source that set it.
type Entry struct {
	ID     NumericIdentity
	Source Source
}

// Change is one change of a prefix's effective entry. Deleted means the
// prefix left the cache (Old holds what it was); otherwise New is the entry
// to write (Old is the previous one, zero when the prefix is new).
type Change struct {
	Prefix  netip.Prefix
	Old     Entry
	New     Entry
	Deleted bool
}

// IPCache maps IP prefixes to identities. Lookup is longest-prefix match with
// world as the default. It is safe for concurrent use.
type IPCache struct {
	mu      sync.Mutex
	entries map[netip.Prefix]map[Source]NumericIdentity
	// bitsInUse[v6] counts prefixes per length, for lookup.
	bitsInUse [2]map[int]int
	lens      [2][]int // lengths in use, longest first
	subs      map[int]func(Change)
	nextSub   int
	evMu      sync.Mutex
	pending   []Change
}

// NewIPCache returns an empty cache.
func NewIPCache() *IPCache {
	return &IPCache{
		entries:   make(map[netip.Prefix]map[Source]NumericIdentity),
		bitsInUse: [2]map[int]int{{}, {}},
		subs:      make(map[int]func(Change)),
	}
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

func canonical(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("invalid prefix %v", p)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		if p.Bits() < 0 {
			return p, fmt.Errorf("invalid prefix %v", p)
		}
	}
	return p.Masked(), nil
}

func effective(m map[Source]NumericIdentity) (Entry, bool) {
	var best Entry
	for s, id := range m {
		if s > best.Source {
			best = Entry{ID: id, Source: s}
		}
	}
	return best, best.Source != 0
}

// Upsert sets the prefix's identity for a source. It returns whether the
// effective entry changed.
func (c *IPCache) Upsert(prefix netip.Prefix, id NumericIdentity, source Source) (bool, error) {
	p, err := canonical(prefix)
	if err != nil {
		return false, fmt.Errorf("ipcache upsert: %w", err)
	}
	if source == 0 {
		return false, fmt.Errorf("ipcache upsert %v: no source", p)
	}
	defer c.flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.entries[p]
	old, _ := effective(m)
	if !ok {
		m = make(map[Source]NumericIdentity, 1)
		c.entries[p] = m
		c.addLen(p)
	}
	m[source] = id
	cur, _ := effective(m)
	if cur == old {
		return false, nil
	}
	c.pending = append(c.pending, Change{Prefix: p, Old: old, New: cur})
	return true, nil
}

// Delete removes the source's entry for the prefix. It returns whether the
// effective entry changed (removed, or uncovered a lower source's).
func (c *IPCache) Delete(prefix netip.Prefix, source Source) (bool, error) {
	p, err := canonical(prefix)
	if err != nil {
		return false, fmt.Errorf("ipcache delete: %w", err)
	}
	defer c.flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.entries[p]
	if !ok {
		return false, nil
	}
	if _, ok := m[source]; !ok {
		return false, nil
	}
	old, _ := effective(m)
	delete(m, source)
	cur, ok := effective(m)
	if !ok {
		delete(c.entries, p)
		c.delLen(p)
		c.pending = append(c.pending, Change{Prefix: p, Old: old, Deleted: true})
		return true, nil
	}
	if cur == old {
		return false, nil
	}
	c.pending = append(c.pending, Change{Prefix: p, Old: old, New: cur})
	return true, nil
}

func (c *IPCache) addLen(p netip.Prefix) {
	f := family(p)
	c.bitsInUse[f][p.Bits()]++
	if c.bitsInUse[f][p.Bits()] == 1 {
		c.resortLens(f)
	}
}

func (c *IPCache) delLen(p netip.Prefix) {
	f := family(p)
	c.bitsInUse[f][p.Bits()]--
	if c.bitsInUse[f][p.Bits()] == 0 {
		delete(c.bitsInUse[f], p.Bits())
		c.resortLens(f)
	}
}

func (c *IPCache) resortLens(f int) {
	ls := make([]int, 0, len(c.bitsInUse[f]))
	for b := range c.bitsInUse[f] {
		ls = append(ls, b)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ls)))
	c.lens[f] = ls
}

// Lookup returns the identity of the longest prefix containing addr, or
// ReservedWorld when none does.
func (c *IPCache) Lookup(addr netip.Addr) NumericIdentity {
	_, e, ok := c.LookupPrefix(addr)
	if !ok {
		return ReservedWorld
	}
	return e.ID
}

// LookupPrefix returns the longest prefix containing addr and its entry.
func (c *IPCache) LookupPrefix(addr netip.Addr) (netip.Prefix, Entry, bool) {
	addr = addr.Unmap()
	f := 0
	if addr.Is6() {
		f = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, bits := range c.lens[f] {
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		if m, ok := c.entries[p]; ok {
			e, _ := effective(m)
			return p, e, true
		}
	}
	return netip.Prefix{}, Entry{}, false
}

// Snapshot returns every prefix's effective entry.
func (c *IPCache) Snapshot() map[netip.Prefix]Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[netip.Prefix]Entry, len(c.entries))
	for p, m := range c.entries {
		out[p], _ = effective(m)
	}
	return out
}

// DiffSnapshots returns the changes that turn old into new, sorted by prefix
// (deletions and upserts mixed), for a full resync against the kernel map.
func DiffSnapshots(old, new map[netip.Prefix]Entry) []Change {
	var out []Change
	for p, o := range old {
		n, ok := new[p]
		if !ok {
			out = append(out, Change{Prefix: p, Old: o, Deleted: true})
		} else if n != o {
			out = append(out, Change{Prefix: p, Old: o, New: n})
		}
	}
	for p, n := range new {
		if _, ok := old[p]; !ok {
			out = append(out, Change{Prefix: p, New: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Prefix, out[j].Prefix
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return out
}

// Subscribe calls fn with the current content (as upserts) and then with
// every effective change, in order, never holding the cache's lock. The
// returned function unsubscribes.
func (c *IPCache) Subscribe(fn func(Change)) (unsubscribe func()) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	// Deliver what is pending to the existing subscribers first, so the new
	// one starts exactly at the snapshot.
	evs := c.pending
	c.pending = nil
	subs := c.subscribersLocked()
	snap := make([]Change, 0, len(c.entries))
	for p, m := range c.entries {
		e, _ := effective(m)
		snap = append(snap, Change{Prefix: p, New: e})
	}
	id := c.nextSub
	c.nextSub++
	c.subs[id] = fn
	c.mu.Unlock()
	for _, ev := range evs {
		for _, s := range subs {
			s(ev)
		}
	}
	for _, ev := range snap {
		fn(ev)
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subs, id)
	}
}

func (c *IPCache) subscribersLocked() []func(Change) {
	ids := make([]int, 0, len(c.subs))
	for id := range c.subs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]func(Change), len(ids))
	for i, id := range ids {
		out[i] = c.subs[id]
	}
	return out
}

func (c *IPCache) flush() {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	evs := c.pending
	c.pending = nil
	subs := c.subscribersLocked()
	c.mu.Unlock()
	for _, ev := range evs {
		for _, s := range subs {
			s(ev)
		}
	}
}
