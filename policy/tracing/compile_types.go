package tracing

import (
	"fmt"
	"slices"
	"strings"
)

// intType is how a Tetragon integer type reads a value.
type intType struct {
	signed bool
	size   uint8
}

// intTypes are Tetragon's integer argument types.
var intTypes = map[string]intType{
	"int": {true, 4}, "sint8": {true, 1}, "int8": {true, 1}, "uint8": {false, 1},
	"sint16": {true, 2}, "int16": {true, 2}, "uint16": {false, 2},
	"sint32": {true, 4}, "int32": {true, 4}, "uint32": {false, 4},
	"sint64": {true, 8}, "int64": {true, 8}, "long": {true, 8},
	"uint64": {false, 8}, "ulong": {false, 8}, "unsigned long": {false, 8}, "size_t": {false, 8},
	"syscall64": {true, 8}, "fd": {true, 4},
}

// Tetragon types of kernel objects (kprobe and BTF arguments) and buffers
// that the syscall hooks do not read.
var (
	kernelObjectTypes = []string{"file", "path", "filename", "dentry", "linux_binprm", "cred", "skb", "sock",
		"socket", "sockaddr", "sockaddr_un", "net_device", "bpf_attr", "perf_event", "bpf_map", "bpf_prog",
		"bpf_cmd", "user_namespace", "capability", "kiocb", "iov_iter", "load_info", "module", "kernel_cap_t",
		"cap_inheritable", "cap_permitted", "cap_effective"}
	bufferTypes = []string{"char_buf", "char_iovec"}
)

// valueType applies a spec args type to v (declared: what the format
// field holds).
func (c *compiler) valueType(path, typ string, d declared, v *SyscallValue) bool {
	switch {
	case typ == "" || typ == "auto":
		if d.ctype == "" {
			c.addf(path, "the arguments of this syscall are not known here: give the type (an integer type or string)")
			return false
		}
		return true
	case typ == "string":
		switch {
		case v.Source != SourceSyscallArg:
			c.addf(path, "string: %s is an integer", v.Label)
			return false
		case d.ctype != "" && !isPointer(d.ctype):
			c.addf(path, "string: argument %s is %s, not a pointer to a string", v.Label, d.ctype)
			return false
		}
		v.Type, v.Signed, v.Size = TypeString, false, 0
		return true
	}
	if it, ok := intTypes[typ]; ok {
		v.Type, v.Signed, v.Size = TypeInt, it.signed, it.size
		return true
	}
	switch {
	case slices.Contains(bufferTypes, typ):
		c.add(path, fmt.Errorf("%s: a sized user buffer is not read by the syscall hooks (string reads a NUL-terminated one): %w", typ, ErrNotYet))
	case slices.Contains(kernelObjectTypes, typ):
		c.add(path, fmt.Errorf("%s: a kernel object of kprobe hooks, not read by the syscall hooks "+
			"(use string for a path argument, an integer type for the others): %w", typ, ErrNotYet))
	case typ == "const_buf" || typ == "data_loc" || typ == "nop":
		c.addf(path, "%s: not a type of the syscall tracepoints' fields", typ)
	default:
		c.addf(path, "unknown type %q (want auto, string or an integer type: int, int8..int64, uint8..uint64, long, ulong, size_t, syscall64, fd)", typ)
	}
	return false
}

func isPointer(ctype string) bool {
	return strings.Contains(ctype, "*") || strings.HasPrefix(ctype, "cap_user_")
}
