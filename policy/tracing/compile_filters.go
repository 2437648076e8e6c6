package tracing

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits of the kernel rule tables (mirrors of datapath/procsensor's, which
// this package cannot import).
const (
	MaxArgFilters = 4 // argument filters (matchArgs) per selector
	MaxArgInts    = 8 // integer values per argument filter
	MaxCapture    = 4 // captured values (spec args) per tracepoint
	MaxPIDs       = 8 // pids of a matchPIDs entry
	MaxNSFilters  = 4 // matchNamespaces entries per selector
	MaxNSInodes   = 4 // values per matchNamespaces entry
	// MaxStringLen is the longest string a hook reads (bytes, without the
	// NUL): a longer matchArgs value could never match.
	MaxStringLen = 255
)

// HostNamespace is the matchNamespaces value for the host's namespace.
const HostNamespace = "host_ns"

// namespaceKinds are Tetragon's matchNamespaces kinds (case-insensitive
// there as here).
var namespaceKinds = []string{"Uts", "Ipc", "Mnt", "Pid", "PidForChildren", "Net", "Time", "TimeForChildren", "Cgroup", "User"}

// capabilityTypes are Tetragon's matchCapabilities types.
var capabilityTypes = []string{"Effective", "Permitted", "Inheritable"}

// unsupportedFilters rejects the selector filters no hook evaluates.
func (c *compiler) unsupportedFilters(path string, s *Selector) {
	c.notYet(path+".", []field{
		{"matchData", len(s.MatchData) > 0}, {"matchReturnArgs", len(s.MatchReturnArgs) > 0},
		{"matchReturnActions", len(s.MatchReturnActions) > 0},
		{"matchNamespaceChanges", len(s.MatchNamespaceChanges) > 0},
		{"matchCapabilityChanges", len(s.MatchCapabilityChanges) > 0},
		{"matchWorkloads", s.MatchWorkloads != nil}, {"macros", len(s.Macros) > 0},
	})
}

// processFilters compiles the filters about the process of a syscall or
// connect selector.
func (c *compiler) processFilters(path string, s *Selector) ProcessFilters {
	var f ProcessFilters
	for i, b := range s.MatchBinaries {
		if m, ok := c.binaries(fmt.Sprintf("%s.matchBinaries[%d]", path, i), b); ok {
			f.Binaries = append(f.Binaries, m)
		}
	}
	for i, b := range s.MatchParentBinaries {
		if m, ok := c.binaries(fmt.Sprintf("%s.matchParentBinaries[%d]", path, i), b); ok {
			f.ParentBinaries = append(f.ParentBinaries, m)
		}
	}
	if len(s.MatchPIDs) > 1 {
		c.addf(path+".matchPIDs", "one entry per selector (a rule holds one pid set)")
	}
	for i, p := range s.MatchPIDs {
		if m, ok := c.pids(fmt.Sprintf("%s.matchPIDs[%d]", path, i), p); ok {
			f.PIDs = append(f.PIDs, m)
		}
	}
	if len(s.MatchNamespaces) > MaxNSFilters {
		c.addf(path+".matchNamespaces", "at most %d entries per selector, got %d", MaxNSFilters, len(s.MatchNamespaces))
	}
	for i, n := range s.MatchNamespaces {
		if m, ok := c.namespaces(fmt.Sprintf("%s.matchNamespaces[%d]", path, i), n); ok {
			f.Namespaces = append(f.Namespaces, m)
		}
	}
	for i, cs := range s.MatchCapabilities {
		if m, ok := c.capabilities(fmt.Sprintf("%s.matchCapabilities[%d]", path, i), cs); ok {
			f.Capabilities = append(f.Capabilities, m)
		}
	}
	return f
}

// inOperator parses an In/NotIn operator (NotIn: true).
func (c *compiler) inOperator(path, op string) (notIn, ok bool) {
	switch op {
	case "In":
		return false, true
	case "NotIn":
		return true, true
	}
	c.addf(path, "%q is not In or NotIn", op)
	return false, false
}

func (c *compiler) pids(path string, p PIDSelector) (PIDMatch, bool) {
	notIn, ok := c.inOperator(path+".operator", p.Operator)
	switch {
	case len(p.Values) == 0:
		c.addf(path+".values", "required")
		ok = false
	case len(p.Values) > MaxPIDs:
		c.addf(path+".values", "at most %d pids, got %d", MaxPIDs, len(p.Values))
		ok = false
	}
	return PIDMatch{NotIn: notIn, Values: p.Values, IsNamespacePID: p.IsNamespacePID, FollowForks: p.FollowForks}, ok
}

func (c *compiler) namespaces(path string, n NamespaceSelector) (NamespaceMatch, bool) {
	m := NamespaceMatch{Namespace: canonical(n.Namespace, namespaceKinds)}
	ok := true
	if m.Namespace == "" {
		c.addf(path+".namespace", "%q is not one of %s", n.Namespace, strings.Join(namespaceKinds, ", "))
		ok = false
	}
	var opOK bool
	m.NotIn, opOK = c.inOperator(path+".operator", n.Operator)
	ok = ok && opOK
	switch {
	case len(n.Values) == 0:
		c.addf(path+".values", "required")
		ok = false
	case len(n.Values) > MaxNSInodes:
		c.addf(path+".values", "at most %d values, got %d", MaxNSInodes, len(n.Values))
		ok = false
	}
	for i, v := range n.Values {
		if v == HostNamespace {
			m.Host = true
			continue
		}
		ino, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			c.addf(fmt.Sprintf("%s.values[%d]", path, i), "%q is not a namespace inode number or %s", v, HostNamespace)
			ok = false
			continue
		}
		m.Inodes = append(m.Inodes, uint32(ino))
	}
	return m, ok
}

func (c *compiler) capabilities(path string, cs CapabilitiesSelector) (CapabilityMatch, bool) {
	m := CapabilityMatch{Type: "Effective", IsNamespaceCapability: cs.IsNamespaceCapability}
	ok := true
	if cs.Type != "" {
		if m.Type = canonical(cs.Type, capabilityTypes); m.Type == "" {
			c.addf(path+".type", "%q is not one of %s", cs.Type, strings.Join(capabilityTypes, ", "))
			ok = false
		}
	}
	var opOK bool
	m.NotIn, opOK = c.inOperator(path+".operator", cs.Operator)
	ok = ok && opOK
	if len(cs.Values) == 0 {
		c.addf(path+".values", "required")
		ok = false
	}
	for i, v := range cs.Values {
		bit, known := capabilityBit(v)
		if !known {
			c.addf(fmt.Sprintf("%s.values[%d]", path, i), "%q is not a capability (CAP_CHOWN, ..., CAP_CHECKPOINT_RESTORE)", v)
			ok = false
			continue
		}
		m.Mask |= 1 << bit
	}
	return m, ok
}

// canonical returns the name of names that equals s ignoring case ("" if
// none).
func canonical(s string, names []string) string {
	for _, n := range names {
		if strings.EqualFold(s, n) {
			return n
		}
	}
	return ""
}
