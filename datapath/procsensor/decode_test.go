package procsensor

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/datapath/bpfgen"
)

// The hand-written offsets of decode.go are those of the bpf2go mirrors of
// bpf/lib/process.h.
func TestDecodeOffsets(t *testing.T) {
	var h bpfgen.ProcessProcessHdr
	var x bpfgen.ProcessProcessExec
	var c bpfgen.ProcessProcessConnect
	var f bpfgen.ProcessProcessFork
	var e bpfgen.ProcessProcessExit
	var en bpfgen.ProcessProcessEnforce
	for _, o := range []struct {
		name      string
		got, want uintptr
	}{
		{"hdr", unsafe.Sizeof(h), hdrSize},
		{"flags", unsafe.Offsetof(h.Flags), offFlags},
		{"pid", unsafe.Offsetof(h.Pid), offPID},
		{"ktime", unsafe.Offsetof(h.Ktime), offKtime},
		{"key", unsafe.Offsetof(h.Key), offKey},
		{"exec parent", unsafe.Offsetof(x.Parent), offParent},
		{"fork parent", unsafe.Offsetof(f.Parent), offParent},
		{"uid", unsafe.Offsetof(x.Uid), offUID},
		{"euid", unsafe.Offsetof(x.Euid), offUID + 4},
		{"auid", unsafe.Offsetof(x.Auid), offUID + 12},
		{"pid_ns", unsafe.Offsetof(x.PidNs), offPIDNS},
		{"net_ns", unsafe.Offsetof(x.NetNs), offPIDNS + 8},
		{"cwd_len", unsafe.Offsetof(x.CwdLen), offCwdLen},
		{"args_len", unsafe.Offsetof(x.ArgsLen), offCwdLen + 4},
		{"cap_effective", unsafe.Offsetof(x.CapEffective), offCapEff},
		{"cgroup", unsafe.Offsetof(x.CgroupId), offCgroup},
		{"data", unsafe.Offsetof(x.Data), execDataOff},
		{"exit_code", unsafe.Offsetof(e.ExitCode), offExitCode},
		{"exit", unsafe.Sizeof(e), exitSize},
		{"fork", unsafe.Sizeof(f), forkSize},
		{"proto", unsafe.Offsetof(c.Proto), offProto},
		{"sport", unsafe.Offsetof(c.Sport), offSport},
		{"dport", unsafe.Offsetof(c.Dport), offSport + 2},
		{"orig_dport", unsafe.Offsetof(c.OrigDport), offSport + 4},
		{"saddr", unsafe.Offsetof(c.Saddr), offSaddr},
		{"orig_daddr", unsafe.Offsetof(c.OrigDaddr), offSaddr + 8},
		{"net_ns", unsafe.Offsetof(c.NetNs), offNetNS},
		{"cookie", unsafe.Offsetof(c.Cookie), offCookie},
		{"connect", unsafe.Sizeof(c), connectSize},
		{"policy_id", unsafe.Offsetof(en.PolicyId), offPolicyID},
		{"slot", unsafe.Offsetof(en.Slot), offPolicyID + 4},
		{"action", unsafe.Offsetof(en.Action), offPolicyID + 5},
		{"signal", unsafe.Offsetof(en.Signal), offPolicyID + 6},
		{"enforced", unsafe.Offsetof(en.Enforced), offPolicyID + 7},
		{"enforce net_ns", unsafe.Offsetof(en.NetNs), offEnfNetNS},
		{"filename_len", unsafe.Offsetof(en.FilenameLen), offEnfFnLen},
		{"filename", unsafe.Offsetof(en.Filename), offEnfFn},
		{"enforce", unsafe.Sizeof(en), enforceSize},
	} {
		assert.Equal(t, o.want, o.got, o.name)
	}
}

func TestDecodeStrings(t *testing.T) {
	assert.Equal(t, "/", joinCwd(nil))
	assert.Equal(t, "/tmp/a b/c", joinCwd([]byte("c\x00a b\x00tmp\x00")))
	assert.Equal(t, []string{"ls", "-l", "cu"}, splitArgs([]byte("ls\x00-l\x00cu")))
	assert.Equal(t, []string{"ls", ""}, splitArgs([]byte("ls\x00\x00")))
	assert.Nil(t, splitArgs(nil))
}
