package tracing

// CONTRACT (owner: compile): the syscall table of this machine's
// architecture. SyscallNumber accepts "openat" and "sys_openat";
// SyscallName returns "" for an unknown number. The full table replaces
// this stub.

var syscallNumbers = map[string]uint32{
	"openat": 257, "openat2": 437, "execve": 59, "connect": 42, "ptrace": 101,
}

// SyscallNumber returns the number of the named syscall.
func SyscallNumber(name string) (uint32, bool) {
	if len(name) > 4 && name[:4] == "sys_" {
		name = name[4:]
	}
	nr, ok := syscallNumbers[name]
	return nr, ok
}

// SyscallName returns the name of syscall nr ("" when unknown).
func SyscallName(nr uint32) string {
	for name, n := range syscallNumbers {
		if n == nr {
			return name
		}
	}
	return ""
}
