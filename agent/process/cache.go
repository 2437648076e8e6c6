package process

import (
	"container/list"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// entry is one cached process. An entry leaves the cache when it is evicted
// (size bound) or when it is done: exited, its exit published (released) and
// no cached child left that needs it as an ancestor.
type entry struct {
	key      procsensor.Key
	parent   procsensor.Key
	proc     *api.Process // replaced, never modified, once handed out
	sum      *api.Process // proc without credentials and namespaces (summary)
	sumOf    *api.Process // the proc sum was made from
	children int          // cached entries whose parent is this one
	cloned   bool         // forked and not exec'd since
	released bool         // exit published
	lru      *list.Element
	exitedAt *list.Element // in cache.exited once it exited
}

// lineage is a process with its parent and ancestors (parent's parent
// first), copied out of the cache for one event. miss says the process or
// its parent is unknown.
type lineage struct {
	proc      *api.Process
	parent    *api.Process
	ancestors []*api.Process
	miss      bool
}

// cache holds the processes by key and by exec id. Not safe for concurrent
// use: the Manager serialises access.
type cache struct {
	node  string
	size  int // at most this many entries
	depth int // ancestors on events

	byKey  map[procsensor.Key]*entry
	byID   map[string]*entry
	lru    *list.List // of *entry, most recently used first
	exited *list.List // of *entry, oldest exit first

	evictions uint64
}

func newCache(node string, size, depth int) *cache {
	return &cache{
		node: node, size: max(size, 1), depth: max(depth, 0),
		byKey: map[procsensor.Key]*entry{}, byID: map[string]*entry{},
		lru: list.New(), exited: list.New(),
	}
}

func (c *cache) len() int { return len(c.byKey) }

// get returns the entry of k and marks it used.
func (c *cache) get(k procsensor.Key) *entry {
	e := c.byKey[k]
	if e != nil {
		c.lru.MoveToFront(e.lru)
	}
	return e
}

// insert adds e (whose key is not cached), linking it to its parent when
// that is cached, and evicts what the size bound requires.
func (c *cache) insert(e *entry) {
	e.lru = c.lru.PushFront(e)
	c.byKey[e.key] = e
	c.byID[e.proc.ExecID] = e
	if p := c.byKey[e.parent]; p != nil && e.parent != e.key {
		p.children++
	}
	for len(c.byKey) > c.size {
		c.evict()
	}
}

// evict removes the entry that exited first, or else the least recently
// used one.
func (c *cache) evict() {
	victim := c.lru.Back().Value.(*entry)
	if f := c.exited.Front(); f != nil {
		victim = f.Value.(*entry)
	}
	c.evictions++
	c.remove(victim)
}

// remove drops e, unlinking it from its parent, which leaves too when it is
// done and e was its last cached child.
func (c *cache) remove(e *entry) {
	for e != nil {
		delete(c.byKey, e.key)
		delete(c.byID, e.proc.ExecID)
		c.lru.Remove(e.lru)
		if e.exitedAt != nil {
			c.exited.Remove(e.exitedAt)
		}
		p := c.byKey[e.parent]
		if p == nil || e.parent == e.key {
			return
		}
		p.children--
		e = nil
		if p.done() {
			e = p
		}
	}
}

func (e *entry) done() bool { return e.released && e.children == 0 }

// markExited records that e exited (its exit is about to be published).
func (c *cache) markExited(e *entry) {
	if e.exitedAt != nil {
		return
	}
	p := *e.proc
	p.Exited = true
	e.proc = &p
	e.exitedAt = c.exited.PushBack(e)
}

// release says e's exit was published: it leaves now unless a cached child
// still needs it.
func (c *cache) release(k procsensor.Key) {
	e := c.byKey[k]
	if e == nil || e.exitedAt == nil {
		return
	}
	e.released = true
	if e.done() {
		c.remove(e)
	}
}

// lineage returns e's process, parent and up to c.depth ancestors.
func (c *cache) lineage(e *entry) lineage {
	l := lineage{proc: e.proc}
	if e.parent == (procsensor.Key{}) || e.parent == e.key {
		return l
	}
	p := c.byKey[e.parent]
	if p == nil {
		l.miss = true
		return l
	}
	l.parent = p.proc
	l.ancestors = c.ancestors(p, c.depth, false)
	return l
}

// ancestors returns up to n ancestors of e (e's parent first): the full
// processes, or (on events, where they repeat on every event of every
// descendant) their summaries without capabilities and namespaces, which
// for a root process are most of its JSON. The full form of any of them is
// one GET /v1/processes/{exec_id} away.
func (c *cache) ancestors(e *entry, n int, full bool) []*api.Process {
	var out []*api.Process
	for len(out) < n && e.parent != (procsensor.Key{}) && e.parent != e.key {
		p := c.byKey[e.parent]
		if p == nil {
			break
		}
		if full {
			out = append(out, p.proc)
		} else {
			out = append(out, p.summary())
		}
		e = p
	}
	return out
}

// summary returns e's process without capabilities and namespaces, made
// once per version of the process.
func (e *entry) summary() *api.Process {
	if e.sumOf != e.proc {
		cp := *e.proc
		cp.Cap, cp.NS = nil, nil
		e.sum, e.sumOf = &cp, e.proc
	}
	return e.sum
}
