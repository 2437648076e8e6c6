package process

import (
	"container/list"
	"net/netip"
	"sync"

	"github.com/sluicenet/sluice/agent/api"
)

// DefaultConnTableSize is the number of connections remembered for flows.
const DefaultConnTableSize = 16384

// connKey is a connection as the process opened it. The source port is 0
// for a UDP socket not yet bound when it sent.
type connKey struct {
	proto    uint8
	src, dst netip.AddrPort
}

type connEntry struct {
	key connKey
	ref api.ProcessRef
}

// connTable remembers the process of recent connections (least recently
// used dropped first). Safe for concurrent use.
type connTable struct {
	mu    sync.Mutex
	size  int
	byKey map[connKey]*list.Element
	lru   *list.List // of *connEntry, most recent first
}

func newConnTable(size int) *connTable {
	if size <= 0 {
		size = DefaultConnTableSize
	}
	return &connTable{size: size, byKey: map[connKey]*list.Element{}, lru: list.New()}
}

// unmap returns a with an IPv4-mapped IPv6 address as IPv4 (a dual-stack
// socket's view), so connections and flows compare alike.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func (t *connTable) add(k connKey, ref api.ProcessRef) {
	k.src, k.dst = unmap(k.src), unmap(k.dst)
	t.mu.Lock()
	defer t.mu.Unlock()
	if el := t.byKey[k]; el != nil {
		el.Value.(*connEntry).ref = ref
		t.lru.MoveToFront(el)
		return
	}
	t.byKey[k] = t.lru.PushFront(&connEntry{key: k, ref: ref})
	if t.lru.Len() > t.size {
		old := t.lru.Remove(t.lru.Back()).(*connEntry)
		delete(t.byKey, old.key)
	}
}

// lookup finds the process of a flow in either direction (a reply flow runs
// from the destination back to the process), then without the source port.
func (t *connTable) lookup(proto uint8, src, dst netip.AddrPort) (api.ProcessRef, bool) {
	src, dst = unmap(src), unmap(dst)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range []connKey{
		{proto, src, dst},
		{proto, dst, src},
		{proto, netip.AddrPortFrom(src.Addr(), 0), dst},
		{proto, netip.AddrPortFrom(dst.Addr(), 0), src},
	} {
		if el := t.byKey[k]; el != nil {
			t.lru.MoveToFront(el)
			return el.Value.(*connEntry).ref, true
		}
	}
	return api.ProcessRef{}, false
}

func (t *connTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
