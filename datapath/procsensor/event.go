package procsensor

import (
	"net/netip"
	"time"
)

// The decoded events of the process sensor. Times are wall-clock (the
// kernel's CLOCK_MONOTONIC stamps converted with the boot time); StartTime
// fields are the raw kernel task start times (CLOCK_MONOTONIC ns), the
// value exec ids are made of.

// Key identifies a process: its thread-group id and the start time of its
// thread-group leader. The same in every event about the process.
type Key struct {
	TGID      uint32
	StartTime uint64 // task->start_time of the group leader, ns
}

// Namespaces are namespace inode numbers.
type Namespaces struct {
	PID, Mnt, Net uint32
}

// Exec is a process that called execve (or, with ProcFS, one that was
// running when the agent started).
type Exec struct {
	Time                       time.Time
	Key                        Key
	Parent                     Key // real_parent's thread-group leader
	PID                        uint32
	UID, EUID, GID, AUID       uint32
	CapEffective, CapPermitted uint64
	NS                         Namespaces
	CgroupID                   uint64
	Filename                   string   // bprm->filename (as passed to execve)
	Args                       []string // argv, argv[0] first
	ArgsTruncated              bool
	Cwd                        string // relative to the process's root
	CwdTruncated               bool
	FilenameTruncated          bool
	ProcFS                     bool // read from /proc at start, not an exec event
}

// Exit is the end of a whole thread group, once.
type Exit struct {
	Time   time.Time
	Key    Key
	Status uint32 // exit status (exit_code >> 8) when Signal is 0
	Signal uint32 // terminating signal, 0 when it exited
}

// Fork is a new process (not a thread).
type Fork struct {
	Time   time.Time
	Key    Key // the child
	Parent Key
}

// Connect is a connection a process opened: a TCP connection that reached
// ESTABLISHED (or failed from SYN_SENT, Failed set), or a UDP socket's
// connect()/first sendmsg() to a destination.
type Connect struct {
	Time  time.Time
	Key   Key
	Proto uint8 // IPPROTO_TCP, IPPROTO_UDP
	Src   netip.AddrPort
	Dst   netip.AddrPort // after service translation
	// OrigDst is the service frontend the process asked for when the socket
	// LB translated it; the zero AddrPort otherwise.
	OrigDst netip.AddrPort
	NetNS   uint32
	Cookie  uint64 // socket cookie
	Failed  bool
}

// Event is one decoded event: exactly one field is set.
type Event struct {
	Exec    *Exec
	Exit    *Exit
	Fork    *Fork
	Connect *Connect
	// Enforcement: an exec rule matched (SetExecRules).
	Enforcement *Enforcement
	// Syscall: a syscall rule matched (SetSyscallRules).
	Syscall *SyscallEvent
	// ConnectRule: a connect rule matched (datapath.ConnectRule).
	ConnectRule *ConnectEnforcement
}
