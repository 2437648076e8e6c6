package procsensor

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/bpfgen"
)

// The Go constants of syscall rules are the C enums of
// bpf/lib/syscall_types.h.
func TestSyscallRuleEnums(t *testing.T) {
	assert.Equal(t, uint8(bpfgen.ProcessSysSourceSYS_SRC_NR), uint8(SourceNr))
	assert.Equal(t, uint8(bpfgen.ProcessSysSourceSYS_SRC_ARG), uint8(SourceArg))
	assert.Equal(t, uint8(bpfgen.ProcessSysSourceSYS_SRC_RET), uint8(SourceRet))
	for op, c := range map[ArgOp]bpfgen.ProcessSysOp{
		ArgEqual: bpfgen.ProcessSysOpSYS_OP_EQUAL, ArgNotEqual: bpfgen.ProcessSysOpSYS_OP_NOTEQUAL,
		ArgPrefix: bpfgen.ProcessSysOpSYS_OP_PREFIX, ArgNotPrefix: bpfgen.ProcessSysOpSYS_OP_NOTPREFIX,
		ArgPostfix: bpfgen.ProcessSysOpSYS_OP_POSTFIX, ArgNotPostfix: bpfgen.ProcessSysOpSYS_OP_NOTPOSTFIX,
		ArgMask: bpfgen.ProcessSysOpSYS_OP_MASK, ArgGT: bpfgen.ProcessSysOpSYS_OP_GT, ArgLT: bpfgen.ProcessSysOpSYS_OP_LT,
	} {
		assert.Equal(t, uint8(c), uint8(op))
	}
	assert.Equal(t, uint8(bpfgen.ProcessSysNsKindSYS_NS_UTS), uint8(NSUts))
	assert.Equal(t, uint8(bpfgen.ProcessSysNsKindSYS_NS_PID_CHILDREN), uint8(NSPidForChildren))
	assert.Equal(t, uint8(bpfgen.ProcessSysNsKindSYS_NS_TIME_CHILDREN), uint8(NSTimeForChildren))
	assert.Equal(t, uint8(bpfgen.ProcessSysNsKindSYS_NS_USER), uint8(NSUser))
	assert.Equal(t, uint8(bpfgen.ProcessSysCapSetSYS_CAP_EFFECTIVE), uint8(CapEffective))
	assert.Equal(t, uint8(bpfgen.ProcessSysCapSetSYS_CAP_INHERITABLE), uint8(CapInheritable))
	var s bpfgen.ProcessSysSlot
	assert.Len(t, s.Args, MaxArgFilters)
	assert.Len(t, s.Args[0].Ints, MaxArgInts)
	assert.Len(t, s.Capture, MaxCapture)
	assert.Len(t, s.Pids, MaxPIDs)
	assert.Len(t, s.Ns, MaxNSFilters)
	assert.Len(t, s.Ns[0].Inodes, MaxNSInodes)
	assert.Len(t, s.Caps, MaxCapFilters)
}

func TestCheckSyscallRules(t *testing.T) {
	path := Value{Source: SourceArg, Index: 1, String: true}
	ok := SyscallRule{Slot: 1, Action: ExecPost}
	bad := func(f func(r *SyscallRule)) SyscallRule { r := ok; f(&r); return r }
	for name, r := range map[string]SyscallRule{
		"slot":      bad(func(r *SyscallRule) { r.Slot = 64 }),
		"nr":        bad(func(r *SyscallRule) { r.Syscalls = []uint32{512} }),
		"action":    bad(func(r *SyscallRule) { r.Action = 9 }),
		"signal":    bad(func(r *SyscallRule) { r.Action = ExecSignal }),
		"args":      bad(func(r *SyscallRule) { r.Args = make([]ArgFilter, 5) }),
		"ret enter": bad(func(r *SyscallRule) { r.Capture = []Value{{Source: SourceRet}} }),
		"arg 6":     bad(func(r *SyscallRule) { r.Capture = []Value{{Source: SourceArg, Index: 6}} }),
		"nr string": bad(func(r *SyscallRule) { r.Capture = []Value{{Source: SourceNr, String: true}} }),
		"mask str":  bad(func(r *SyscallRule) { r.Args = []ArgFilter{{Value: path, Op: ArgMask, Strings: []string{"a"}}} }),
		"no strs":   bad(func(r *SyscallRule) { r.Args = []ArgFilter{{Value: path, Op: ArgEqual}} }),
		"long eq": bad(func(r *SyscallRule) {
			r.Args = []ArgFilter{{Value: path, Op: ArgEqual, Strings: []string{strings.Repeat("a", 255)}}}
		}),
		"nul": bad(func(r *SyscallRule) { r.Args = []ArgFilter{{Value: path, Op: ArgPrefix, Strings: []string{"a\x00"}}} }),
		"prefix int": bad(func(r *SyscallRule) {
			r.Args = []ArgFilter{{Value: Value{Source: SourceArg}, Op: ArgPrefix, Ints: []uint64{1}}}
		}),
		"gt two": bad(func(r *SyscallRule) {
			r.Args = []ArgFilter{{Value: Value{Source: SourceNr}, Op: ArgGT, Ints: []uint64{1, 2}}}
		}),
		"9 ints": bad(func(r *SyscallRule) {
			r.Args = []ArgFilter{{Value: Value{Source: SourceNr}, Op: ArgEqual, Ints: make([]uint64, 9)}}
		}),
		"ns kind": bad(func(r *SyscallRule) { r.Namespaces = []NSFilter{{Kind: 11, Inodes: []uint32{1}}} }),
		"ns none": bad(func(r *SyscallRule) { r.Namespaces = []NSFilter{{Kind: NSNet}} }),
		"cap set": bad(func(r *SyscallRule) { r.Caps = []CapFilter{{Set: 4}} }),
		"pids":    bad(func(r *SyscallRule) { r.PIDs = make([]uint32, 9) }),
		"rate":    bad(func(r *SyscallRule) { r.RateLimit = -time.Second }),
	} {
		_, err := checkSyscallRules([]SyscallRule{r})
		assert.Error(t, err, name)
	}
	_, err := checkSyscallRules([]SyscallRule{ok, ok})
	assert.ErrorContains(t, err, "given twice")
	got, err := checkSyscallRules([]SyscallRule{{Slot: 2, Action: ExecSigkill, Group: 1 << 5, Exit: true,
		Args:    []ArgFilter{{Value: path, Op: ArgEqual, Strings: []string{strings.Repeat("a", 254)}}},
		Capture: []Value{{Source: SourceRet}}}})
	require.NoError(t, err)
	assert.Equal(t, uint8(9), got[2].Signal)
	assert.Equal(t, uint64(1<<5|1<<2), got[2].Group, "a group holds its own slot")
}

// String entries: (slot << 2 | filter, bytes); Equal with the NUL,
// Postfix reversed in its own trie.
func TestSysStrings(t *testing.T) {
	path := Value{Source: SourceArg, Index: 1, String: true}
	str, postfix := sysStrings(map[uint8]SyscallRule{3: {Args: []ArgFilter{
		{Value: Value{Source: SourceNr}, Op: ArgEqual, Ints: []uint64{2}},
		{Value: path, Op: ArgEqual, Strings: []string{"/etc/shadow"}},
		{Value: path, Op: ArgNotPrefix, Strings: []string{"/tmp/"}},
		{Value: path, Op: ArgPostfix, Strings: []string{".so"}},
	}}})
	assert.Equal(t, map[string]uint64{"\x0d/etc/shadow\x00": 1, "\x0e/tmp/": 1}, str)
	assert.Equal(t, map[string]uint64{"\x0fos.": 1}, postfix)
	k := sysStrKey("\x0d/etc/shadow\x00").(bpfgen.ProcessSysStrKey)
	assert.Equal(t, uint32(13*8), k.Prefixlen)
	assert.Equal(t, uint8(13), k.Id)
	assert.Equal(t, int8('/'), k.Str[0])
	assert.Equal(t, int8(0), k.Str[11])

	nrs := sysNrBits(map[uint8]SyscallRule{1: {Syscalls: []uint32{257}}, 2: {Exit: true}})
	assert.Len(t, nrs, MaxSyscallNr)
	assert.Equal(t, bpfgen.ProcessSysNr{Enter: 1 << 1, Exit: 1 << 2}, nrs[257])
	assert.Equal(t, bpfgen.ProcessSysNr{Exit: 1 << 2}, nrs[0])
}

func TestDecodeSyscall(t *testing.T) {
	var e bpfgen.ProcessProcessSyscall
	assert.Equal(t, uintptr(offSysPolicyID), unsafe.Offsetof(e.PolicyId))
	assert.Equal(t, uintptr(offSysExit), unsafe.Offsetof(e.Exit))
	assert.Equal(t, uintptr(offSysExit+1), unsafe.Offsetof(e.Ncapture))
	assert.Equal(t, uintptr(offSysNr), unsafe.Offsetof(e.Nr))
	assert.Equal(t, uintptr(offSysNetNS), unsafe.Offsetof(e.NetNs))
	assert.Equal(t, uintptr(offSysRet), unsafe.Offsetof(e.Ret))
	assert.Equal(t, uintptr(offSysCapture), unsafe.Offsetof(e.Capture))
	assert.Equal(t, uintptr(sysCaptureSize), unsafe.Sizeof(e.Capture[0]))
	assert.Equal(t, uintptr(10), unsafe.Offsetof(e.Capture[0].Flags))
	assert.Equal(t, uintptr(offSysStrs), unsafe.Offsetof(e.Strs))
	assert.Equal(t, uintptr(syscallSize), unsafe.Sizeof(e))

	b := make([]byte, syscallSize)
	b[offType] = byte(bpfgen.ProcessProcessEventTypePROCESS_SYSCALL)
	le.PutUint32(b[offKey:], 42)
	le.PutUint32(b[offPID:], 43)
	le.PutUint32(b[offSysPolicyID:], 7)
	copy(b[offSysPolicyID+4:], []byte{3, byte(ExecSigkill), 9, 1})
	copy(b[offSysExit:], []byte{1, 3})
	le.PutUint32(b[offSysNr:], 257)
	le.PutUint32(b[offSysNetNS:], 4026531840)
	le.PutUint64(b[offSysRet:], uint64(0xfffffffffffffffe))
	le.PutUint64(b[offSysCapture:], 0x7ffd)
	le.PutUint16(b[offSysCapture+8:], 11)
	b[offSysCapture+10] = byte(bpfgen.ProcessSysCaptureFlagSYS_CAP_STRING | bpfgen.ProcessSysCaptureFlagSYS_CAP_TRUNC)
	copy(b[offSysStrs:], "/etc/shadow\x00garbage")
	le.PutUint64(b[offSysCapture+sysCaptureSize:], 0o100)
	b[offSysCapture+2*sysCaptureSize+10] = byte(bpfgen.ProcessSysCaptureFlagSYS_CAP_STRING | bpfgen.ProcessSysCaptureFlagSYS_CAP_FAULT)
	ev, err := decode(b, time.Unix(0, 0))
	require.NoError(t, err)
	require.NotNil(t, ev.Syscall)
	s := ev.Syscall
	assert.Equal(t, Key{TGID: 42}, s.Key)
	assert.Equal(t, uint32(43), s.PID)
	assert.Equal(t, uint32(7), s.PolicyID)
	assert.Equal(t, uint8(3), s.Slot)
	assert.Equal(t, ExecSigkill, s.Action)
	assert.True(t, s.Enforced && s.Exit)
	assert.Equal(t, uint32(257), s.Nr)
	assert.Equal(t, int64(-2), s.Ret)
	assert.Equal(t, []ArgValue{
		{Int: 0x7ffd, Str: "/etc/shadow", IsString: true, Truncated: true},
		{Int: 0o100},
		{IsString: true, Fault: true},
	}, s.Args)
	_, err = decode(b[:syscallSize-1], time.Unix(0, 0))
	assert.Error(t, err)
}
