package procsensor_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// strsSep separates the paths of the "strs" child job.
const strsSep = "\x1f"

// childOpenStrs opens each path of list twice, from the heap and with its
// NUL as the last byte of a page followed by an inaccessible one (a string
// whose first 8 bytes cross into that page cannot be read 8 bytes at a
// time), then openat with a pointer into the inaccessible page and with
// "abcdefghij" ending at the page end without a NUL (both unreadable).
func childOpenStrs(list string) int {
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil || unix.Mprotect(mem[page:], unix.PROT_NONE) != nil {
		return 1
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	cwd := unix.AT_FDCWD
	open := func(p uintptr) {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd), p, unix.O_RDONLY, 0, 0, 0)
		if errno == 0 {
			unix.Close(int(fd))
		}
	}
	for _, s := range strings.Split(list, strsSep) {
		b := []byte(s + "\x00")
		open(uintptr(unsafe.Pointer(&b[0])))
		off := page - len(b)
		copy(mem[off:], b)
		open(base + uintptr(off))
	}
	open(base + uintptr(page))
	copy(mem[page-10:], "abcdefghij")
	open(base + uintptr(page-10))
	return 0
}

// refMatch is what a string filter means (every string readable).
func refMatch(op procsensor.ArgOp, vals []string, s string) bool {
	hit := false
	for _, v := range vals {
		switch op {
		case procsensor.ArgEqual, procsensor.ArgNotEqual:
			hit = hit || s == v
		default:
			hit = hit || strings.HasPrefix(s, v)
		}
	}
	if op == procsensor.ArgNotEqual || op == procsensor.ArgNotPrefix {
		return !hit
	}
	return hit
}

// numbered returns prefix00+suffix .. prefix(n-1)+suffix.
func numbered(prefix, suffix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, prefix+string(rune('0'+i/10))+string(rune('0'+i%10))+suffix)
	}
	return out
}

// String filters whose values are shorter than 8 bytes, 8 bytes with or
// without the NUL, longer, the empty string, and too many for 8 heads
// (the heads are cut shorter): every filter decides as its definition
// says, for strings read from the heap and ending at a page end, and an
// unreadable string (a fault, or no NUL before the inaccessible page)
// passes no filter, Not* included.
func TestPrivilegedSyscallRuleStringHeads(t *testing.T) {
	e := newSysEnv(t)
	type filter struct {
		op   procsensor.ArgOp
		vals []string
	}
	many := append(numbered("/m", "/x", 20), "abcd")
	manyPrefixes := append(numbered("/p", "/", 20), "zz")
	filters := []filter{
		{procsensor.ArgEqual, []string{"abc"}},
		{procsensor.ArgEqual, []string{"abcdefg"}},
		{procsensor.ArgEqual, []string{"abcdefgh"}},
		{procsensor.ArgEqual, []string{""}},
		{procsensor.ArgPrefix, []string{"ab"}},
		{procsensor.ArgPrefix, []string{"abcdefgh"}},
		{procsensor.ArgPrefix, []string{"abcdefghi"}},
		{procsensor.ArgNotEqual, []string{"abc"}},
		{procsensor.ArgNotPrefix, []string{"abcdefgh"}},
		{procsensor.ArgNotEqual, []string{"abcdefg", "x"}},
		{procsensor.ArgEqual, many},
		{procsensor.ArgPrefix, manyPrefixes},
		{procsensor.ArgNotPrefix, manyPrefixes},
		{procsensor.ArgNotEqual, many},
		{procsensor.ArgPrefix, []string{""}},
	}
	var rules []procsensor.SyscallRule
	for i, f := range filters {
		rules = append(rules, openatRule(uint8(i), f.op, procsensor.ExecPost, f.vals...))
	}
	e.setSys(t, rules...)
	paths := []string{"abc", "ab", "a", "abcd", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghij", "", "x",
		"abd", "abcdefgi", "/m07/x", "/m07/y", "/m0", "/m07/x/", "/p13/q", "/p1", "/p13", "zz", "zzz", "z"}
	cmd := e.ns.Command(e.selfBin(t))
	cmd.Env = append(os.Environ(), childEnv+"=strs:"+strings.Join(paths, strsSep))
	o := runCmd(t, cmd)
	require.Equal(t, 0, o.status)
	e.wait(t, 1, 10*time.Second, exitOf(o.pid))

	want, got := map[string]int{}, map[string]int{}
	for i, f := range filters {
		for _, p := range paths {
			if refMatch(f.op, f.vals, p) {
				want[fmt.Sprintf("%d %q", 100+i, p)] += 2 // from the heap and at the page end
			}
		}
	}
	for _, ev := range e.matching(syscallOf(o.pid)) {
		a := ev.Syscall.Args[0]
		assert.False(t, a.Fault, "policy %d posted an unreadable string", ev.Syscall.PolicyID)
		if !a.Fault && slices.Contains(paths, a.Str) { // not nsenter's and the runtime's own opens
			got[fmt.Sprintf("%d %q", ev.Syscall.PolicyID, a.Str)]++
		}
	}
	assert.Equal(t, want, got)
}
