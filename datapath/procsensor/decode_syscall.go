package procsensor

import (
	"time"

	"github.com/sluicenet/sluice/datapath/bpfgen"
)

// Offsets in struct process_syscall (bpf/lib/syscall_types.h), checked
// against the bpf2go mirror in decode_test.go.
const (
	offSysPolicyID = offPolicyID // policy_id u32, slot, action, signal, enforced u8
	offSysExit     = 40          // exit, ncapture u8
	offSysNr       = 44
	offSysNetNS    = 48
	offSysRet      = 56
	offSysCapture  = 64 // [4]{value u64, len u16, flags u8, pad}
	sysCaptureSize = 16
	offSysStrs     = 128 // [4][256]
	syscallSize    = 1152
)

func decodeSyscall(b []byte, t time.Time) *SyscallEvent {
	e := &SyscallEvent{Time: t, Key: key(b[offKey:]), PID: le.Uint32(b[offPID:])}
	e.PolicyID, e.Slot, e.Action, e.Signal, e.Enforced = ruleAction(b)
	e.Exit, e.Nr, e.NetNS = b[offSysExit] != 0, le.Uint32(b[offSysNr:]), le.Uint32(b[offSysNetNS:])
	e.Ret = int64(le.Uint64(b[offSysRet:]))
	for i := 0; i < min(int(b[offSysExit+1]), MaxCapture); i++ {
		c := b[offSysCapture+i*sysCaptureSize:]
		flags := bpfgen.ProcessSysCaptureFlag(c[10])
		v := ArgValue{
			Int:       le.Uint64(c),
			IsString:  flags&bpfgen.ProcessSysCaptureFlagSYS_CAP_STRING != 0,
			Truncated: flags&bpfgen.ProcessSysCaptureFlagSYS_CAP_TRUNC != 0,
			Fault:     flags&bpfgen.ProcessSysCaptureFlagSYS_CAP_FAULT != 0,
		}
		if v.IsString && !v.Fault {
			n := min(int(le.Uint16(c[8:])), StringMax-1)
			s := b[offSysStrs+i*StringMax:]
			v.Str = cstring(s[:n])
		}
		e.Args = append(e.Args, v)
	}
	return e
}
