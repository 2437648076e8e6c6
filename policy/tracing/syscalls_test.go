package tracing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

// The generated table agrees with golang.org/x/sys/unix (generated from
// the kernel's headers too) on the syscalls the issue names and others.
func TestSyscallTable(t *testing.T) {
	for name, nr := range map[string]uint32{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "open": unix.SYS_OPEN, "close": unix.SYS_CLOSE,
		"openat": unix.SYS_OPENAT, "openat2": unix.SYS_OPENAT2, "execve": unix.SYS_EXECVE, "execveat": unix.SYS_EXECVEAT,
		"connect": unix.SYS_CONNECT, "ptrace": unix.SYS_PTRACE, "setuid": unix.SYS_SETUID, "setgid": unix.SYS_SETGID,
		"mount": unix.SYS_MOUNT, "init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE,
		"bpf": unix.SYS_BPF, "unlink": unix.SYS_UNLINK, "unlinkat": unix.SYS_UNLINKAT, "rename": unix.SYS_RENAME,
		"renameat2": unix.SYS_RENAMEAT2, "dup": unix.SYS_DUP, "lseek": unix.SYS_LSEEK, "futex_waitv": unix.SYS_FUTEX_WAITV,
	} {
		got, ok := SyscallNumber(name)
		assert.True(t, ok, name)
		assert.Equal(t, nr, got, name)
		got, ok = SyscallNumber("sys_" + name)
		assert.True(t, ok, name)
		assert.Equal(t, nr, got, "sys_"+name)
		assert.Equal(t, name, SyscallName(nr))
	}
	assert.Greater(t, len(syscallNumbers), 350)
	_, ok := SyscallNumber("nope")
	assert.False(t, ok)
	assert.Equal(t, "", SyscallName(100000))
}

// The arguments of the syscalls: paths and names are strings,
// integers signed and sized as their C types.
func TestSyscallArgs(t *testing.T) {
	for name, want := range map[string][]syscallArg{
		"openat": {{"dfd", "int", TypeInt, true, 4}, {"filename", "const char *", TypeString, false, 0},
			{"flags", "int", TypeInt, true, 4}, {"mode", "umode_t", TypeInt, false, 2}},
		"execve": {{"filename", "const char *", TypeString, false, 0}, {"argv", "const char *const *", TypeInt, false, 8},
			{"envp", "const char *const *", TypeInt, false, 8}},
		"connect": {{"fd", "int", TypeInt, true, 4}, {"uservaddr", "struct sockaddr *", TypeInt, false, 8}, {"addrlen", "int", TypeInt, true, 4}},
		"ptrace": {{"request", "long", TypeInt, true, 8}, {"pid", "long", TypeInt, true, 8}, {"addr", "unsigned long", TypeInt, false, 8},
			{"data", "unsigned long", TypeInt, false, 8}},
		"setuid": {{"uid", "uid_t", TypeInt, false, 4}},
		"mount": {{"dev_name", "char *", TypeString, false, 0}, {"dir_name", "char *", TypeString, false, 0},
			{"type", "char *", TypeString, false, 0}, {"flags", "unsigned long", TypeInt, false, 8}, {"data", "void *", TypeInt, false, 8}},
		"finit_module": {{"fd", "int", TypeInt, true, 4}, {"uargs", "const char *", TypeString, false, 0}, {"flags", "int", TypeInt, true, 4}},
		"bpf":          {{"cmd", "int", TypeInt, true, 4}, {"uattr", "union bpf_attr *", TypeInt, false, 8}, {"size", "unsigned int", TypeInt, false, 4}},
		"write":        {{"fd", "unsigned int", TypeInt, false, 4}, {"buf", "const char *", TypeInt, false, 8}, {"count", "size_t", TypeInt, false, 8}},
	} {
		_, args, known, ok := tracepointSyscall(name)
		assert.True(t, ok && known, name)
		assert.Equal(t, want, args, name)
	}
	// Tracepoints named after their SYSCALL_DEFINE.
	for x, nr := range map[string]uint32{"newstat": unix.SYS_STAT, "stat": unix.SYS_STAT, "umount": unix.SYS_UMOUNT2} {
		got, args, known, ok := tracepointSyscall(x)
		assert.True(t, ok && known, x)
		assert.Equal(t, nr, got, x)
		assert.NotEmpty(t, args, x)
	}
}

// The capability names match include/uapi/linux/capability.h's bits.
func TestCapabilityBits(t *testing.T) {
	for name, bit := range map[string]uint{"CAP_CHOWN": 0, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_PTRACE": 19,
		"CAP_SYS_ADMIN": 21, "CAP_BPF": 39, " cap_checkpoint_restore ": 40} {
		got, ok := capabilityBit(name)
		assert.True(t, ok, name)
		assert.Equal(t, bit, got, name)
	}
	_, ok := capabilityBit("CAP_ALL")
	assert.False(t, ok)
}
