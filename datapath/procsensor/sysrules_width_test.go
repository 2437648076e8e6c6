package procsensor_test

import (
	"os"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// dirtyAtFDCWD is AT_FDCWD (-100) in the low half of a register whose upper
// half holds garbage: the kernel casts openat's dfd to int and sees -100.
const dirtyAtFDCWD = 0x1_ffff_ff9c

// childDirtyFD opens path with openat(dirtyAtFDCWD, path) through the raw
// syscall (the register as given), and exits 0 when it opened.
func childDirtyFD(path string) int {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return 2
	}
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, dirtyAtFDCWD, uintptr(unsafe.Pointer(p)), unix.O_RDONLY, 0, 0, 0)
	if errno != 0 {
		return 1
	}
	unix.Close(int(fd))
	return 0
}

// An integer filter on a 32-bit argument compares the value the kernel
// uses: a process cannot slip past "dfd Equal AT_FDCWD" by leaving garbage
// in the upper half of the register, and the captured value is -100.
func TestPrivilegedSyscallRuleArgWidth(t *testing.T) {
	e := newSysEnv(t)
	dfd := procsensor.Value{Source: procsensor.SourceArg, Index: 0, Signed: true, Size: 4}
	atFDCWD := uint64(0xffff_ffff_ffff_ff9c)
	r := with(openatRule(0, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/"),
		procsensor.ArgFilter{Value: dfd, Op: procsensor.ArgEqual, Ints: []uint64{atFDCWD}})
	r.Capture = []procsensor.Value{openatPath, dfd}
	e.setSys(t, r)
	cmd := e.ns.Command(e.selfBin(t))
	cmd.Env = append(os.Environ(), childEnv+"=dirtyfd:"+e.shadow)
	o := runCmd(t, cmd)
	require.Equal(t, 0, o.status, "the kernel opened it: dfd is AT_FDCWD to it")
	ev := e.syscallEvent(t, o.pid)
	require.Len(t, ev.Args, 2)
	assert.Equal(t, e.shadow, ev.Args[0].Str)
	assert.Equal(t, int64(-100), int64(ev.Args[1].Int), "captured as the kernel sees it")
}
