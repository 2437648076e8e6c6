package process

import (
	"cmp"
	"slices"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// seeded is a process found running at start, ready for the cache.
type seeded struct {
	key, parent procsensor.Key
	proc        *api.Process
}

// seed adds the processes running at start. Parent links hold whatever the
// order of procs: every entry is inserted before any is linked. It returns
// the lineage of each new process, parents before children (by start time).
func (c *cache) seed(procs []seeded) []lineage {
	var added []*entry
	for _, s := range procs {
		if c.byKey[s.key] != nil {
			continue
		}
		e := &entry{key: s.key, parent: s.parent, proc: s.proc}
		e.lru = c.lru.PushFront(e)
		c.byKey[e.key], c.byID[e.proc.ExecID] = e, e
		added = append(added, e)
	}
	for _, e := range added {
		if p := c.byKey[e.parent]; p != nil && e.parent != e.key {
			p.children++
		}
	}
	for len(c.byKey) > c.size {
		c.evict()
	}
	slices.SortFunc(added, func(a, b *entry) int { return cmp.Compare(a.key.StartTime, b.key.StartTime) })
	out := make([]lineage, 0, len(added))
	for _, e := range added {
		if c.byKey[e.key] == e {
			out = append(out, c.lineage(e))
		}
	}
	return out
}

// exec records that key exec'd into proc (built by the caller, its
// ParentExecID filled here). A forked entry is updated in place and keeps
// its parent; an unknown process is added under parent.
func (c *cache) exec(key, parent procsensor.Key, build func(cloned bool) *api.Process) lineage {
	if e := c.get(key); e != nil {
		if e.parent == (procsensor.Key{}) || c.byKey[e.parent] == nil {
			c.relink(e, parent)
		}
		e.proc = c.withParent(build(e.cloned), e.parent)
		e.cloned = false
		return c.lineage(e)
	}
	e := &entry{key: key, parent: parent, proc: c.withParent(build(false), parent)}
	c.insert(e)
	return c.lineage(e)
}

// relink points e at a new parent (an exec told us a parent the fork did not).
func (c *cache) relink(e *entry, parent procsensor.Key) {
	if parent == e.parent || parent == e.key {
		return
	}
	if p := c.byKey[parent]; p != nil {
		p.children++
	}
	e.parent = parent
}

func (c *cache) withParent(p *api.Process, parent procsensor.Key) *api.Process {
	switch pe := c.byKey[parent]; {
	case pe != nil:
		p.ParentExecID = pe.proc.ExecID
	case parent != (procsensor.Key{}):
		p.ParentExecID = ExecID(c.node, parent)
	}
	return p
}

// fork adds child as a copy of its parent (binary, arguments, cwd,
// credentials, pod) with flag "clone". It reports a miss when the parent is
// unknown; the child is then added with only its pid.
func (c *cache) fork(f *procsensor.Fork, start func(procsensor.Key) *api.Process) (miss bool) {
	if c.byKey[f.Key] != nil {
		return false
	}
	p := start(f.Key)
	parent := c.get(f.Parent)
	if parent != nil {
		cp := *parent.proc
		cp.ExecID, cp.PID, cp.StartTime, cp.Exited = p.ExecID, p.PID, p.StartTime, false
		p = &cp
	}
	p.Flags = flagClone
	c.insert(&entry{key: f.Key, parent: f.Parent, proc: c.withParent(p, f.Parent), cloned: true})
	return parent == nil && f.Parent != (procsensor.Key{})
}

// exit marks key exited and returns its lineage; ok is false when the
// process is unknown. The caller releases it once the exit is published.
func (c *cache) exit(key procsensor.Key) (lineage, bool) {
	e := c.get(key)
	if e == nil {
		return lineage{miss: true}, false
	}
	c.markExited(e)
	return c.lineage(e), true
}

// lookup returns the lineage of key (ok false when unknown).
func (c *cache) lookup(key procsensor.Key) (lineage, bool) {
	e := c.get(key)
	if e == nil {
		return lineage{miss: true}, false
	}
	return c.lineage(e), true
}

// byExecID returns the process of an exec id and all its cached ancestors
// (parent first).
func (c *cache) byExecID(id string) (*api.Process, []*api.Process, bool) {
	e := c.byID[id]
	if e == nil {
		return nil, nil, false
	}
	return e.proc, c.ancestors(e, len(c.byKey), true), true
}

// list returns every cached process, oldest first.
func (c *cache) list() []*api.Process {
	es := make([]*entry, 0, len(c.byKey))
	for _, e := range c.byKey {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.key.StartTime, b.key.StartTime), cmp.Compare(a.key.TGID, b.key.TGID))
	})
	out := make([]*api.Process, len(es))
	for i, e := range es {
		out[i] = e.proc
	}
	return out
}
