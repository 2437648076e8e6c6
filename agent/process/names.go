package process

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// ExecID returns the exec id of the process key on node:
// base64("node:start_time_ns:tgid"), the same string in every event about
// the process.
func ExecID(node string, k procsensor.Key) string {
	var buf [128]byte
	b := append(buf[:0], node...)
	b = strconv.AppendUint(append(b, ':'), k.StartTime, 10)
	b = strconv.AppendUint(append(b, ':'), uint64(k.TGID), 10)
	return base64.StdEncoding.EncodeToString(b)
}

// capNames are the capabilities by bit number (include/uapi/linux/capability.h).
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capSets memoizes CapNames: a node has few distinct capability sets, and
// the slices handed out are never modified.
var capSets sync.Map // uint64 -> []string

// CapNames returns the names of the capabilities set in mask, lowest bit
// first; bits the kernel added after CAP_CHECKPOINT_RESTORE are "CAP_<bit>".
func CapNames(mask uint64) []string {
	if v, ok := capSets.Load(mask); ok {
		return v.([]string)
	}
	var names []string
	for bit := range 64 {
		if mask&(1<<bit) == 0 {
			continue
		}
		if bit < len(capNames) {
			names = append(names, capNames[bit])
		} else {
			names = append(names, fmt.Sprintf("CAP_%d", bit))
		}
	}
	capSets.Store(mask, names)
	return names
}

// SignalName returns the name of signal sig ("SIGKILL"); "" for 0.
func SignalName(sig uint32) string {
	if sig == 0 {
		return ""
	}
	if name := unix.SignalName(unix.Signal(sig)); name != "" {
		return name
	}
	return fmt.Sprintf("SIG%d", sig)
}

// Process flags (api.Process.Flags words).
const (
	flagExecve        = "execve"
	flagProcFS        = "procFS"
	flagClone         = "clone"
	flagTruncFilename = "truncFilename"
	flagTruncArgs     = "truncArgs"
	flagTruncCwd      = "truncCwd"
	flagRootCwd       = "rootcwd"
)

// execFlags returns the flags of an exec; cloned says the process was forked
// and had not exec'd since (Tetragon's "execve clone").
func execFlags(e *procsensor.Exec, cloned bool) string {
	words := make([]string, 0, 4)
	if e.ProcFS {
		words = append(words, flagProcFS)
	} else {
		words = append(words, flagExecve)
	}
	if cloned {
		words = append(words, flagClone)
	}
	for _, f := range []struct {
		on   bool
		word string
	}{{e.FilenameTruncated, flagTruncFilename}, {e.ArgsTruncated, flagTruncArgs}, {e.CwdTruncated, flagTruncCwd}, {e.Cwd == "/", flagRootCwd}} {
		if f.on {
			words = append(words, f.word)
		}
	}
	return strings.Join(words, " ")
}
