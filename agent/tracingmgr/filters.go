package tracingmgr

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// classKey identifies a binary class by what it matches, so that identical
// matchBinaries entries of any policies share one class id.
type classKey struct {
	exact, prefixes string // sorted, NUL-separated
	follow          bool
}

func newClassKey(exact, prefixes []string, follow bool) classKey {
	return classKey{exact: strings.Join(sortedUnique(exact), "\x00"), prefixes: strings.Join(sortedUnique(prefixes), "\x00"), follow: follow}
}

// class returns the sensor's class of k with id.
func (k classKey) class(id uint8) procsensor.BinaryClass {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, "\x00")
	}
	return procsensor.BinaryClass{ID: id, Exact: split(k.exact), Prefixes: split(k.prefixes), FollowChildren: k.follow}
}

// classRefs are the classes a process must be in (all) and in none of.
type classRefs struct {
	all, none []classKey
}

func (c classRefs) keys() []classKey { return append(slices.Clone(c.all), c.none...) }

// filter returns the class filter of c with the ids of ids.
func (c classRefs) filter(ids map[classKey]uint8) procsensor.ClassFilter {
	var f procsensor.ClassFilter
	for _, k := range c.all {
		f.All |= 1 << ids[k]
	}
	for _, k := range c.none {
		f.None |= 1 << ids[k]
	}
	return f
}

// processClasses maps matchBinaries and matchParentBinaries to classes:
// In and Prefix entries are classes the process (its parent) must be in,
// NotIn entries classes it must not be in; followChildren makes the class
// take in the descendants of its processes.
func processClasses(field string, pf tracing.ProcessFilters) (binary, parent classRefs, err error) {
	if binary, err = binaryClasses(field+".matchBinaries", pf.Binaries); err != nil {
		return binary, parent, err
	}
	parent, err = binaryClasses(field+".matchParentBinaries", pf.ParentBinaries)
	return binary, parent, err
}

// check rejects a process that must be in and out of the same class.
func (c classRefs) check(field string) error {
	for _, k := range c.all {
		if slices.Contains(c.none, k) {
			return fmt.Errorf("%s: the entries together match no binary (the same paths In and NotIn)", field)
		}
	}
	return nil
}

func binaryClasses(field string, bs []tracing.BinaryMatch) (classRefs, error) {
	var out classRefs
	for i, b := range bs {
		if len(b.Values) == 0 {
			return out, fmt.Errorf("%s[%d].values: required", field, i)
		}
		switch b.Op {
		case tracing.BinaryIn:
			out.all = append(out.all, newClassKey(b.Values, nil, b.FollowChildren))
		case tracing.BinaryPrefix:
			out.all = append(out.all, newClassKey(nil, b.Values, b.FollowChildren))
		case tracing.BinaryNotIn:
			out.none = append(out.none, newClassKey(b.Values, nil, b.FollowChildren))
		default:
			return out, fmt.Errorf("%s[%d].operator: %q is not supported", field, i, b.Op)
		}
	}
	return out, out.check(field)
}

// hostNSFunc returns the inode of the host's namespace of a kind, named by
// its file in /proc/PID/ns.
type hostNSFunc func(file string) (uint32, error)

// nsKinds maps matchNamespaces kinds (lower case) to the sensor's and to
// their file in /proc/PID/ns.
var nsKinds = map[string]struct {
	kind procsensor.NSKind
	file string
}{
	"uts": {procsensor.NSUts, "uts"}, "ipc": {procsensor.NSIpc, "ipc"}, "mnt": {procsensor.NSMnt, "mnt"},
	"pid": {procsensor.NSPid, "pid"}, "pidforchildren": {procsensor.NSPidForChildren, "pid_for_children"},
	"net": {procsensor.NSNet, "net"}, "time": {procsensor.NSTime, "time"},
	"timeforchildren": {procsensor.NSTimeForChildren, "time_for_children"},
	"cgroup":          {procsensor.NSCgroup, "cgroup"}, "user": {procsensor.NSUser, "user"},
}

// sharedWithHost are the namespaces the agent shares with the host (it runs
// with hostPID and hostNetwork, which brings the host's UTS namespace; no
// user or time namespace of its own): where pid 1's cannot be read, the
// agent's own are the host's. Its mount, IPC and cgroup namespaces are its
// container's.
var sharedWithHost = map[string]bool{
	"pid": true, "pid_for_children": true, "net": true, "uts": true, "user": true, "time": true, "time_for_children": true,
}

// hostNamespace returns the inode of the host's namespace of a kind: pid
// 1's under procRoot, else, for the kinds in sharedWithHost, the agent's.
func hostNamespace(procRoot, file string) (uint32, error) {
	ino, err := process.NSInode(filepath.Join(procRoot, "1", "ns", file))
	if err == nil {
		return ino, nil
	}
	if !sharedWithHost[file] {
		return 0, fmt.Errorf("pid 1's cannot be read and the agent's own %s namespace is its container's: %w", file, err)
	}
	return process.NSInode(filepath.Join(procRoot, "self", "ns", file))
}

// processFilters maps matchPIDs, matchNamespaces and matchCapabilities
// into r.
func processFilters(field string, pf tracing.ProcessFilters, r *procsensor.SyscallRule, hostNS hostNSFunc) error {
	if err := pidFilter(field+".matchPIDs", pf.PIDs, r); err != nil {
		return err
	}
	var err error
	if r.Namespaces, err = nsFilters(field+".matchNamespaces", pf.Namespaces, hostNS); err != nil {
		return err
	}
	r.Caps, err = capFilters(field+".matchCapabilities", pf.Capabilities)
	return err
}

// pidFilter folds ANDed matchPIDs entries into one pid list: In sets
// intersect, NotIn sets are removed from them (or unite when there is no
// In). followForks is on when any entry sets it.
func pidFilter(field string, ms []tracing.PIDMatch, r *procsensor.SyscallRule) error {
	if len(ms) == 0 {
		return nil
	}
	var in [][]uint32
	var notIn []uint32
	for i, m := range ms {
		switch {
		case len(m.Values) == 0:
			return fmt.Errorf("%s[%d].values: required", field, i)
		case m.IsNamespacePID != ms[0].IsNamespacePID:
			return fmt.Errorf("%s[%d].isNamespacePID: differs from the selector's other entries (one rule compares one kind of pid)", field, i)
		case m.NotIn:
			notIn = append(notIn, m.Values...)
		default:
			in = append(in, m.Values)
		}
		r.FollowForks = r.FollowForks || m.FollowForks
	}
	r.NamespacePID = ms[0].IsNamespacePID
	if len(in) == 0 {
		r.PIDs, r.PIDNotIn = sortedUnique(notIn), true
	} else {
		pids := slices.Clone(in[0])
		pids = slices.DeleteFunc(pids, func(p uint32) bool {
			return slices.Contains(notIn, p) || slices.ContainsFunc(in[1:], func(vs []uint32) bool { return !slices.Contains(vs, p) })
		})
		if len(pids) == 0 {
			return fmt.Errorf("%s: the entries together match no process", field)
		}
		r.PIDs = sortedUnique(pids)
	}
	if len(r.PIDs) > procsensor.MaxPIDs {
		return fmt.Errorf("%s: %d pids and a rule holds at most %d", field, len(r.PIDs), procsensor.MaxPIDs)
	}
	return nil
}

// nsFilters maps matchNamespaces entries; host_ns becomes the inode of the
// host's namespace of the kind.
func nsFilters(field string, ms []tracing.NamespaceMatch, hostNS hostNSFunc) ([]procsensor.NSFilter, error) {
	if len(ms) > procsensor.MaxNSFilters {
		return nil, fmt.Errorf("%s: %d entries and a rule holds at most %d", field, len(ms), procsensor.MaxNSFilters)
	}
	var out []procsensor.NSFilter
	for i, m := range ms {
		path := fmt.Sprintf("%s[%d]", field, i)
		k, ok := nsKinds[strings.ToLower(m.Namespace)]
		if !ok {
			return nil, fmt.Errorf("%s.namespace: %q is not a namespace kind", path, m.Namespace)
		}
		inodes := slices.Clone(m.Inodes)
		if m.Host {
			ino, err := hostNS(k.file)
			if err != nil {
				return nil, fmt.Errorf("%s.values: host_ns: the host's %s namespace: %w", path, k.file, err)
			}
			inodes = append(inodes, ino)
		}
		inodes = sortedUnique(inodes)
		switch {
		case len(inodes) == 0:
			return nil, fmt.Errorf("%s.values: required", path)
		case len(inodes) > procsensor.MaxNSInodes:
			return nil, fmt.Errorf("%s.values: %d namespaces and an entry holds at most %d", path, len(inodes), procsensor.MaxNSInodes)
		}
		out = append(out, procsensor.NSFilter{Kind: k.kind, NotIn: m.NotIn, Inodes: inodes})
	}
	return out, nil
}

var capSets = map[string]procsensor.CapSet{
	"effective": procsensor.CapEffective, "permitted": procsensor.CapPermitted, "inheritable": procsensor.CapInheritable,
}

// maxCapFilters is the sensor's limit of capability filters per rule
// (procsensor.MaxCapFilters, the syscall rules owner's).
const maxCapFilters = 4

// capFilters maps matchCapabilities entries.
func capFilters(field string, ms []tracing.CapabilityMatch) ([]procsensor.CapFilter, error) {
	if len(ms) > maxCapFilters {
		return nil, fmt.Errorf("%s: %d entries and a rule holds at most %d", field, len(ms), maxCapFilters)
	}
	var out []procsensor.CapFilter
	for i, m := range ms {
		path := fmt.Sprintf("%s[%d]", field, i)
		set, ok := capSets[strings.ToLower(m.Type)]
		if !ok {
			return nil, fmt.Errorf("%s.type: %q is not Effective, Permitted or Inheritable", path, m.Type)
		}
		if m.Mask == 0 {
			return nil, fmt.Errorf("%s.values: required", path)
		}
		out = append(out, procsensor.CapFilter{Set: set, NotIn: m.NotIn, Mask: m.Mask, UserNS: m.IsNamespaceCapability})
	}
	return out, nil
}

// noProcessFilters rejects the filters connect rules cannot test.
func noProcessFilters(field string, pf tracing.ProcessFilters) error {
	for _, f := range []struct {
		name string
		set  bool
	}{{"matchPIDs", len(pf.PIDs) > 0}, {"matchNamespaces", len(pf.Namespaces) > 0}, {"matchCapabilities", len(pf.Capabilities) > 0}} {
		if f.set {
			return fmt.Errorf("%s.%s: %w", field, f.name, errConnectFilter)
		}
	}
	return nil
}

var errConnectFilter = errors.New("not supported in spec.connects by this agent (the cgroup connect hooks test the binary and parent binary)")
