package procsensor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// policiesOf returns the policy ids of pid's syscall events, sorted, once
// its exit came (events are in ring order).
func (e *sysEnv) policiesOf(t *testing.T, pid int) []uint32 {
	t.Helper()
	e.wait(t, 1, 10*time.Second, exitOf(pid))
	var ids []uint32
	for _, ev := range e.matching(syscallOf(pid)) {
		ids = append(ids, ev.Syscall.PolicyID)
	}
	slices.Sort(ids)
	return ids
}

// inDir is an argument filter: openat's path starts with the test's dir.
func (e *sysEnv) inDir() procsensor.ArgFilter {
	return procsensor.ArgFilter{Value: openatPath, Op: procsensor.ArgPrefix, Strings: []string{e.dir + "/"}}
}

// with returns r with more argument filters (ANDed).
func with(r procsensor.SyscallRule, args ...procsensor.ArgFilter) procsensor.SyscallRule {
	r.Args = append(r.Args, args...)
	return r
}

// The string and integer operators, ANDed filters, and the first matching
// slot of a group deciding for it.
func TestPrivilegedSyscallRuleOperators(t *testing.T) {
	e := newSysEnv(t)
	post := procsensor.ExecPost
	notShadow := procsensor.ArgFilter{Value: openatPath, Op: procsensor.ArgNotEqual, Strings: []string{e.shadow}}
	creat := procsensor.ArgFilter{Value: openatFlags, Op: procsensor.ArgMask, Ints: []uint64{unix.O_CREAT}}
	notTxt := procsensor.ArgFilter{Value: openatPath, Op: procsensor.ArgNotPostfix, Strings: []string{".txt", ".log"}}
	g5, g6 := openatRule(5, procsensor.ArgPrefix, post, e.dir+"/secret/"), openatRule(6, procsensor.ArgPrefix, post, e.dir+"/")
	g5.Group, g6.Group = 1<<5|1<<6, 1<<5|1<<6
	e.setSys(t,
		openatRule(0, procsensor.ArgPrefix, post, e.dir+"/secret/", "/nowhere/"),
		openatRule(1, procsensor.ArgPostfix, post, "/shadow", "/passwd"),
		with(openatRule(2, procsensor.ArgNotEqual, post, e.shadow), e.inDir()),
		with(openatRule(3, procsensor.ArgPrefix, post, e.dir+"/"), creat),
		with(openatRule(4, procsensor.ArgPrefix, post, e.dir+"/"), notTxt, notShadow, notShadow),
		g5, g6,
		with(openatRule(7, procsensor.ArgNotPrefix, post, e.dir+"/secret/"), e.inDir()),
	)
	assert.Equal(t, []uint32{100, 101, 105}, e.policiesOf(t, e.catIn(t, true, e.shadow).pid))
	assert.Equal(t, []uint32{102, 106, 107}, e.policiesOf(t, e.catIn(t, true, e.other).pid))
	o, _ := e.shell(t, true, ": > "+filepath.Join(e.dir, "new.log"))
	// The shell's marker (O_CREAT, no suffix) posts 102, 103, 104, 106, 107.
	assert.Equal(t, []uint32{102, 102, 103, 103, 104, 106, 106, 107, 107}, e.policiesOf(t, o.pid))
	o, _ = e.shell(t, true, ": < "+filepath.Join(e.dir, "new.bin"))
	assert.Equal(t, []uint32{102, 102, 103, 104, 104, 106, 106, 107, 107}, e.policiesOf(t, o.pid))
}

// A sys_exit rule sees the return value: a failed openat (LT 0, signed)
// in the dir posts with the error, a successful one nothing.
func TestPrivilegedSyscallRuleExit(t *testing.T) {
	e := newSysEnv(t)
	ret := procsensor.Value{Source: procsensor.SourceRet, Signed: true}
	r := with(openatRule(0, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/"),
		procsensor.ArgFilter{Value: ret, Op: procsensor.ArgLT, Ints: []uint64{0}})
	r.Exit, r.Capture = true, []procsensor.Value{openatPath, ret}
	e.setSys(t, r)
	assert.Contains(t, e.s.Hooks(), procsensor.HookSysExit)
	assert.NotContains(t, e.s.Hooks(), procsensor.HookSysEnter)
	missing := filepath.Join(e.dir, "missing")
	o := e.catIn(t, true, missing)
	assert.Equal(t, 1, o.status)
	ev := e.syscallEvent(t, o.pid)
	assert.True(t, ev.Exit)
	assert.Equal(t, -int64(unix.ENOENT), ev.Ret)
	assert.Equal(t, uint32(unix.SYS_OPENAT), ev.Nr)
	require.Len(t, ev.Args, 2)
	assert.Equal(t, missing, ev.Args[0].Str)
	assert.Equal(t, -int64(unix.ENOENT), int64(ev.Args[1].Int))
	e.noSyscall(t, e.catIn(t, true, e.other).pid)
}

// matchPIDs: a listed pid (the test process), with followForks its
// children too; NotIn, with followForks excluding its children too; a pid
// started by the test.
func TestPrivilegedSyscallRulePIDs(t *testing.T) {
	e := newSysEnv(t)
	child := exec.Command(e.selfBin(t))
	child.Env = append(os.Environ(), childEnv+"=waitopen:"+e.shadow)
	in, err := child.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	self := uint32(os.Getpid())
	post := procsensor.ExecPost
	follow := with(openatRule(0, procsensor.ArgPrefix, post, e.dir+"/"))
	follow.PIDs, follow.FollowForks = []uint32{self}, true
	only := openatRule(1, procsensor.ArgPrefix, post, e.dir+"/")
	only.PIDs = []uint32{self}
	kid := openatRule(2, procsensor.ArgPrefix, post, e.dir+"/")
	kid.PIDs = []uint32{uint32(child.Process.Pid)}
	notSelf := openatRule(3, procsensor.ArgPrefix, post, e.dir+"/")
	notSelf.PIDs, notSelf.PIDNotIn = []uint32{self}, true
	notTree := openatRule(4, procsensor.ArgPrefix, post, e.dir+"/")
	notTree.PIDs, notTree.PIDNotIn, notTree.FollowForks = []uint32{self}, true, true
	rules := []procsensor.SyscallRule{follow, only, kid, notSelf, notTree}
	for i := range rules {
		rules[i].Global = true // only the test's processes open files in its dir
	}
	require.NoError(t, e.s.SetSyscallRules(rules))

	assert.Equal(t, []uint32{100, 103}, e.policiesOf(t, e.catIn(t, false, e.other).pid))
	_, err = in.Write([]byte("go\n"))
	require.NoError(t, err)
	require.NoError(t, child.Wait())
	// Forked before the rule: it did not inherit the test's followForks.
	assert.Equal(t, []uint32{102, 103, 104}, e.policiesOf(t, child.Process.Pid))
	f, err := os.Open(e.other)
	require.NoError(t, err)
	f.Close()
	evs := e.wait(t, 2, 10*time.Second, syscallOf(int(self)))
	assert.ElementsMatch(t, []uint32{100, 101}, []uint32{evs[0].Syscall.PolicyID, evs[1].Syscall.PolicyID})
}

// matchNamespaces (the test netns vs the host's) and matchCapabilities.
func TestPrivilegedSyscallRuleNamespacesCaps(t *testing.T) {
	e := newSysEnv(t)
	post := procsensor.ExecPost
	inNS := openatRule(0, procsensor.ArgPrefix, post, e.dir+"/")
	inNS.Namespaces = []procsensor.NSFilter{{Kind: procsensor.NSNet, Inodes: []uint32{e.netns}}}
	notNS := openatRule(1, procsensor.ArgPrefix, post, e.dir+"/")
	notNS.Namespaces = []procsensor.NSFilter{{Kind: procsensor.NSNet, NotIn: true, Inodes: []uint32{e.netns}}}
	admin := uint64(1) << unix.CAP_SYS_ADMIN
	capIn := openatRule(2, procsensor.ArgPrefix, post, e.dir+"/")
	capIn.Caps = []procsensor.CapFilter{{Set: procsensor.CapEffective, Mask: admin}}
	capNot := openatRule(3, procsensor.ArgPrefix, post, e.dir+"/")
	capNot.Caps = []procsensor.CapFilter{{Set: procsensor.CapPermitted, NotIn: true, Mask: admin}}
	userNS := openatRule(4, procsensor.ArgPrefix, post, e.dir+"/")
	userNS.Caps = []procsensor.CapFilter{{Set: procsensor.CapEffective, Mask: admin, UserNS: true}}
	rules := []procsensor.SyscallRule{inNS, notNS, capIn, capNot, userNS}
	for i := range rules {
		rules[i].Global = true // only the test's processes open files in its dir
	}
	require.NoError(t, e.s.SetSyscallRules(rules))
	assert.Equal(t, []uint32{100, 102}, e.policiesOf(t, e.catIn(t, true, e.other).pid))
	assert.Equal(t, []uint32{101, 102}, e.policiesOf(t, e.catIn(t, false, e.other).pid))
}

// rateLimit: one Post per process per period; another group without a
// limit posts every time.
func TestPrivilegedSyscallRuleRateLimit(t *testing.T) {
	e := newSysEnv(t)
	limited := openatRule(0, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/secret/")
	limited.RateLimit = time.Hour
	e.setSys(t, limited, openatRule(1, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/secret/"))
	o, _ := e.shell(t, true, ": < "+e.shadow+"; : < "+e.shadow+"; : < "+e.shadow)
	assert.Equal(t, []uint32{100, 101, 101, 101}, e.policiesOf(t, o.pid))
	o, _ = e.shell(t, true, ": < "+e.shadow)
	assert.Equal(t, []uint32{100, 101}, e.policiesOf(t, o.pid), "another process has its own limit")
}

// matchPIDs with the pid as the process's own pid namespace sees it: cat
// as pid 1 of a new pid namespace matches pid 1, the same cat on the host
// does not.
func TestPrivilegedSyscallRuleNamespacePID(t *testing.T) {
	e := newSysEnv(t)
	unshare := e.copyBin(t, "/usr/bin/unshare", "unshare")
	r := openatRule(0, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/")
	r.PIDs, r.NamespacePID, r.Global = []uint32{1}, true, true // only the test's processes open files in its dir
	require.NoError(t, e.s.SetSyscallRules([]procsensor.SyscallRule{r}))
	o := runCmd(t, exec.Command(unshare, "--pid", "--fork", e.cat, e.other))
	require.Equal(t, 0, o.status)
	ev := e.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Exec != nil && ev.Exec.Filename == e.cat && ev.Exec.Parent.TGID == uint32(o.pid)
	})[0]
	assert.Equal(t, []uint32{100}, e.policiesOf(t, int(ev.Exec.Key.TGID)), "pid 1 of its namespace")
	e.noSyscall(t, e.catIn(t, false, e.other).pid)
}
