package tracing

import "strings"

// The syscall tables (generated; no network at generate time): numbers from
// the UAPI header of Debian's linux-libc-dev, arguments from the kernel's
// syscall tracepoint formats captured in internal/gensyscalls.
//go:generate go run ./internal/gensyscalls -unistd /usr/include/x86_64-linux-gnu/asm/unistd_64.h -args internal/gensyscalls/syscall-args.txt,internal/gensyscalls/syscall-args-extra.txt -numbers syscalls_amd64.go -argtable syscall_args.go

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

// tracepointSyscalls are the syscalls whose tracepoints (their
// SYSCALL_DEFINE names) are not named after them: sys_enter_newstat is
// stat's.
var tracepointSyscalls = map[string]string{
	"newstat": "stat", "newfstat": "fstat", "newlstat": "lstat", "newuname": "uname",
	"umount": "umount2", "sendfile64": "sendfile",
}

// tracepointSyscall resolves the X of syscalls/sys_enter_X (a syscall
// name, or the name of its tracepoint) to the syscall's number and, when
// known, its arguments.
func tracepointSyscall(x string) (nr uint32, args []syscallArg, known, ok bool) {
	name, tpName := x, x
	if n, alias := tracepointSyscalls[x]; alias {
		name = n
	}
	for tp, n := range tracepointSyscalls {
		if n == x {
			tpName = tp
		}
	}
	if nr, ok = syscallNumbers[name]; !ok {
		return 0, nil, false, false
	}
	args, known = syscallArgs[tpName]
	return nr, args, known, true
}
