package tracing

import (
	"errors"
	"fmt"
	"slices"
)

// List types (Tetragon's).
const (
	ListSyscalls          = "syscalls"
	ListGeneratedSyscalls = "generated_syscalls"
	ListGeneratedFtrace   = "generated_ftrace"
)

// compileLists compiles spec.lists into syscall number sets by name.
func (c *compiler) compileLists(lists []ListSpec) map[string][]uint32 {
	out := make(map[string][]uint32, len(lists))
	for i, l := range lists {
		path := fmt.Sprintf("spec.lists[%d]", i)
		if l.Name == "" {
			c.add(path+".name", errors.New("required"))
			continue
		}
		if _, dup := out[l.Name]; dup {
			c.addf(path+".name", "%q given twice", l.Name)
			continue
		}
		if l.Pattern != nil && l.Type != ListGeneratedFtrace {
			c.addf(path+".pattern", "only for %s lists", ListGeneratedFtrace)
		}
		var nrs []uint32
		switch l.Type {
		case ListSyscalls:
			if len(l.Values) == 0 {
				c.add(path+".values", errors.New("required"))
			}
			for j, v := range l.Values {
				nr, ok := SyscallNumber(v)
				if !ok {
					c.addf(fmt.Sprintf("%s.values[%d]", path, j), "unknown syscall %q", v)
					continue
				}
				nrs = append(nrs, nr)
			}
		case ListGeneratedSyscalls:
			if len(l.Values) > 0 {
				c.addf(path+".values", "a %s list is generated: it takes no values", l.Type)
			}
			nrs = allSyscalls()
		case ListGeneratedFtrace:
			c.kernel(path+".type", "generated_ftrace lists kernel functions for kprobes, which this kernel has not")
		default:
			c.addf(path+".type", "%q is not %s or %s (lists of kernel functions are for kprobes)", l.Type, ListSyscalls, ListGeneratedSyscalls)
		}
		out[l.Name] = sortedUnique(nrs)
	}
	return out
}

// allSyscalls returns every syscall number of the table.
func allSyscalls() []uint32 {
	nrs := make([]uint32, 0, len(syscallNumbers))
	for _, nr := range syscallNumbers {
		nrs = append(nrs, nr)
	}
	return sortedUnique(nrs)
}

func sortedUnique(nrs []uint32) []uint32 {
	slices.Sort(nrs)
	return slices.Compact(nrs)
}
