package tracing

import "strings"

// The syscall tables (generated; no network at generate time): numbers from
// the UAPI header of Debian's linux-libc-dev, arguments from the kernel's
// syscall tracepoint formats captured in internal/gensyscalls.
//go:generate go run ./internal/gensyscalls -unistd /usr/include/x86_64-linux-gnu/asm/unistd_64.h -args internal/gensyscalls/syscall-args.txt -numbers syscalls_amd64.go -argtable syscall_args.go

// syscallArg is one argument of a syscall: its name and C type as the
// kernel declares it, and how a hook reads it (TypeString: the user
// string a path or name argument points to; else the integer, Signed as
// the C type, Size bytes wide).
type syscallArg struct {
	Name   string
	CType  string
	Type   ArgType
	Signed bool
	Size   uint8
}

// syscallNames maps numbers back to names (built from syscallNumbers).
var syscallNames = func() map[uint32]string {
	m := make(map[uint32]string, len(syscallNumbers))
	for name, nr := range syscallNumbers {
		m[nr] = name
	}
	return m
}()

// SyscallNumber returns the number of the named syscall on this
// architecture; it accepts "openat" and Tetragon's "sys_openat".
func SyscallNumber(name string) (uint32, bool) {
	nr, ok := syscallNumbers[strings.TrimPrefix(name, "sys_")]
	return nr, ok
}

// SyscallName returns the name of syscall nr ("" when unknown).
func SyscallName(nr uint32) string {
	return syscallNames[nr]
}

// syscallArgsOf returns the arguments of the named syscall (false when the
// kernel's tracepoints do not describe it).
func syscallArgsOf(name string) ([]syscallArg, bool) {
	a, ok := syscallArgs[name]
	return a, ok
}
