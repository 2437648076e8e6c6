package tracingmgr

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

var (
	dfd      = tracing.SyscallValue{Source: tracing.SourceSyscallArg, Index: 0, Type: tracing.TypeInt, Signed: true, Label: "dfd"}
	filename = tracing.SyscallValue{Source: tracing.SourceSyscallArg, Index: 1, Type: tracing.TypeString, Label: "filename"}
	retval   = tracing.SyscallValue{Source: tracing.SourceReturn, Type: tracing.TypeInt, Signed: true, Label: "ret"}
)

func in(vs ...string) tracing.BinaryMatch {
	return tracing.BinaryMatch{Op: tracing.BinaryIn, Values: vs}
}

// openat is a syscalls/sys_enter_openat tracepoint capturing dfd and the
// file name.
func openat(sels ...tracing.TracepointSelector) tracing.Tracepoint {
	return tracing.Tracepoint{
		Subsystem: "syscalls", Event: "sys_enter_openat", Syscalls: []uint32{257},
		Capture: []tracing.SyscallValue{dfd, filename}, Selectors: sels,
	}
}

// shadowKill kills binaries opening /etc/shadow.
func shadowKill(binaries ...string) tracing.TracepointSelector {
	return tracing.TracepointSelector{
		ProcessFilters: tracing.ProcessFilters{Binaries: []tracing.BinaryMatch{in(binaries...)}},
		Args:           []tracing.ArgMatch{{Value: filename, Op: tracing.OpEqual, Strings: []string{"/etc/shadow"}}},
		Action:         tracing.ActionSigkill, Signal: 9,
	}
}

func TestTracepointsCompileToSyscallRules(t *testing.T) {
	post := tracing.TracepointSelector{
		ProcessFilters: tracing.ProcessFilters{
			Binaries:       []tracing.BinaryMatch{{Op: tracing.BinaryNotIn, Values: []string{"/usr/bin/cat"}}},
			ParentBinaries: []tracing.BinaryMatch{{Op: tracing.BinaryPrefix, Values: []string{"/bin/"}, FollowChildren: true}},
			PIDs:           []tracing.PIDMatch{{Values: []uint32{5, 1, 7}, FollowForks: true}, {NotIn: true, Values: []uint32{7}}},
			Namespaces:     []tracing.NamespaceMatch{{Namespace: "Pid", Host: true}, {Namespace: "Net", NotIn: true, Inodes: []uint32{42}}},
			Capabilities:   []tracing.CapabilityMatch{{Type: "Effective", Mask: 1 << 21}},
		},
		Args:      []tracing.ArgMatch{{Value: dfd, Op: tracing.OpLT, Ints: []uint64{0}}},
		Action:    tracing.ActionPost,
		RateLimit: time.Minute,
	}
	exit := tracing.Tracepoint{
		Subsystem: "raw_syscalls", Event: "sys_exit", Exit: true, Capture: []tracing.SyscallValue{retval},
		Selectors: []tracing.TracepointSelector{{Syscalls: []uint32{59}, Action: tracing.ActionSignal, Signal: 15}},
	}
	h := newFullHarness(t, compiler{"files": {
		Mode:        tracing.ModeMonitor,
		Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"), post), exit},
	}}, false)
	h.m.SetObjects([]source.Raw{cluster(t, "files", "files")})
	h.sync(t, false)

	catIn := procsensor.BinaryClass{ID: 0, Exact: []string{"/usr/bin/cat"}}
	bin := procsensor.BinaryClass{ID: 1, Prefixes: []string{"/bin/"}, FollowChildren: true}
	assert.Equal(t, []procsensor.BinaryClass{catIn, bin}, h.s.classes, "In and NotIn of the same paths are one class")
	capture := []procsensor.Value{{Source: procsensor.SourceArg, Index: 0, Signed: true}, {Source: procsensor.SourceArg, Index: 1, String: true}}
	assert.Equal(t, []procsensor.SyscallRule{{
		Slot: 0, PolicyID: 1, Group: 0b11, Syscalls: []uint32{257}, Global: true,
		Binary: procsensor.ClassFilter{All: 1},
		Args: []procsensor.ArgFilter{{
			Value: procsensor.Value{Source: procsensor.SourceArg, Index: 1, String: true}, Op: procsensor.ArgEqual, Strings: []string{"/etc/shadow"},
		}},
		Capture: capture, Action: procsensor.ExecSigkill, Signal: 9,
	}, {
		Slot: 1, PolicyID: 1, Group: 0b11, Syscalls: []uint32{257}, Global: true,
		Binary: procsensor.ClassFilter{None: 1}, Parent: procsensor.ClassFilter{All: 2},
		PIDs: []uint32{1, 5}, FollowForks: true,
		Namespaces: []procsensor.NSFilter{{Kind: procsensor.NSPid, Inodes: []uint32{h.hostPID}}, {Kind: procsensor.NSNet, NotIn: true, Inodes: []uint32{42}}},
		Caps:       []procsensor.CapFilter{{Set: procsensor.CapEffective, Mask: 1 << 21}},
		Args: []procsensor.ArgFilter{{
			Value: procsensor.Value{Source: procsensor.SourceArg, Index: 0, Signed: true}, Op: procsensor.ArgLT, Ints: []uint64{0},
		}},
		Capture: capture, Action: procsensor.ExecPost, RateLimit: time.Minute,
	}, {
		Slot: 2, PolicyID: 1, Group: 0b100, Exit: true, Syscalls: []uint32{59}, Global: true,
		Capture: []procsensor.Value{{Source: procsensor.SourceRet, Signed: true}}, Action: procsensor.ExecSignal, Signal: 15,
	}}, h.s.sys, "monitor mode: nothing enforced")

	p, err := h.m.Get(clusterRef("files"))
	require.NoError(t, err)
	assert.True(t, p.Accepted)
	assert.Equal(t, []api.TracingPolicyHook{
		{Table: "syscall", Hook: "syscalls/sys_enter_openat", Syscalls: []string{"openat"}, Slots: []int{0, 1}},
		{Table: "syscall", Hook: "raw_syscalls/sys_exit", Syscalls: []string{"execve"}, Slots: []int{2}},
	}, p.Hooks)
	assert.Equal(t, []int{0, 1}, p.Classes)

	// Events find their tracepoint by policy and slot.
	hook, ok := h.m.SyscallHook(1, 2)
	require.True(t, ok)
	assert.Equal(t, process.SyscallHook{Subsys: "raw_syscalls", Event: "sys_exit", Args: []process.HookArg{{Label: "ret", Signed: true}}}, hook)
	hook, ok = h.m.SyscallHook(1, 1)
	require.True(t, ok)
	assert.Equal(t, []process.HookArg{{Label: "dfd", Signed: true}, {Label: "filename"}}, hook.Args)
	_, ok = h.m.SyscallHook(2, 0)
	assert.False(t, ok)

	// set-mode enforce rewrites the rules.
	require.NoError(t, h.m.SetMode(clusterRef("files"), tracing.ModeEnforce))
	h.sync(t, false)
	for _, r := range h.s.sys {
		assert.True(t, r.Enforce)
	}
}

func TestBinaryClassesAreSharedAndRemovedWithTheirPolicies(t *testing.T) {
	h := newFullHarness(t, compiler{
		"cat":  {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"))}},
		"cat2": {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"), shadowKill("/usr/bin/less"))}},
		"vi":   {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/vi"))}},
	}, false)
	h.m.SetObjects([]source.Raw{cluster(t, "a", "cat"), cluster(t, "b", "cat2")})
	h.sync(t, false)
	require.Len(t, h.s.sys, 3)
	assert.Equal(t, []procsensor.BinaryClass{{ID: 0, Exact: []string{"/usr/bin/cat"}}, {ID: 1, Exact: []string{"/usr/bin/less"}}}, h.s.classes)
	assert.Equal(t, []uint64{1, 1, 2}, []uint64{h.s.sys[0].Binary.All, h.s.sys[1].Binary.All, h.s.sys[2].Binary.All})
	h.dp.takeCalls()

	// a goes: cat's class stays (b tests it) under its id; b's rules move
	// to slots 0-1.
	h.m.SetObjects([]source.Raw{cluster(t, "b", "cat2")})
	h.sync(t, false)
	assert.Equal(t, []string{"sys rules 2"}, h.dp.takeCalls())
	assert.Equal(t, []uint64{1, 2}, []uint64{h.s.sys[0].Binary.All, h.s.sys[1].Binary.All})

	// b goes and c comes in the same sync: vi's class gets an id no class
	// had, so b's old rules never test vi under their ids; it is written
	// before the rules, and b's classes go after them.
	h.m.SetObjects([]source.Raw{cluster(t, "c", "vi")})
	h.sync(t, false)
	assert.Equal(t, []string{"classes [0 1 2]", "sys rules 1", "classes [2]"}, h.dp.takeCalls())
	assert.Equal(t, []procsensor.BinaryClass{{ID: 2, Exact: []string{"/usr/bin/vi"}}}, h.s.classes)
	assert.Equal(t, uint64(1<<2), h.s.sys[0].Binary.All)

	// Removing every policy removes every rule and class.
	h.m.SetObjects(nil)
	h.sync(t, false)
	assert.Empty(t, h.s.sys)
	assert.Empty(t, h.s.classes)
}

func TestTooManyClassesRejectTheWholePolicy(t *testing.T) {
	many := &tracing.Compiled{Execs: []tracing.ExecSelector{sigkill("/bin/nc")}}
	var sels []tracing.TracepointSelector
	for i := range procsensor.MaxBinaryClasses / 2 {
		sels = append(sels, tracing.TracepointSelector{ProcessFilters: tracing.ProcessFilters{
			Binaries: []tracing.BinaryMatch{in(fmt.Sprintf("/bin/%d", i))}, ParentBinaries: []tracing.BinaryMatch{in(fmt.Sprintf("/sbin/%d", i))},
		}})
	}
	// 32 selectors with two classes each: 64 classes; with a's, one too many.
	many.Tracepoints = []tracing.Tracepoint{openat(sels...)}
	h := newFullHarness(t, compiler{"a": {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"))}}, "many": many}, false)
	h.m.SetObjects([]source.Raw{cluster(t, "a", "a"), cluster(t, "b", "many")})
	h.sync(t, false)
	p, err := h.m.Get(clusterRef("b"))
	require.NoError(t, err)
	assert.False(t, p.Accepted)
	assert.Equal(t, "matchBinaries and matchParentBinaries: needs 64 more binary classes and only 63 of 64 are left", p.Reason)
	assert.Empty(t, h.dp.rules, "b's exec rule is not written either")
	require.Len(t, h.s.sys, 1)
	assert.Len(t, h.s.classes, 1)

	h.m.SetObjects([]source.Raw{cluster(t, "b", "many")})
	h.sync(t, false)
	assert.Len(t, h.s.sys, procsensor.MaxBinaryClasses/2)
	assert.Len(t, h.s.classes, procsensor.MaxBinaryClasses)
	assert.Len(t, h.dp.rules, 1)
}

func TestConnectRules(t *testing.T) {
	deny := tracing.ConnectSelector{
		ProcessFilters: tracing.ProcessFilters{Binaries: []tracing.BinaryMatch{in("/usr/bin/curl")}},
		Dests:          []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Ports:          []uint16{443, 80, 80}, Protocols: []uint8{6, 17},
		Action: tracing.ActionOverride,
	}
	udp := tracing.ConnectSelector{Ports: []uint16{53}, NotPorts: true, Protocols: []uint8{17}, Action: tracing.ActionPost}
	c := compiler{
		"deny":   {PodSelector: locked, Connects: [][]tracing.ConnectSelector{{deny, udp}}},
		"pids":   {Connects: [][]tracing.ConnectSelector{{{ProcessFilters: tracing.ProcessFilters{PIDs: []tracing.PIDMatch{{Values: []uint32{1}}}}}}}},
		"opens":  {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"))}},
		"denyns": {Connects: [][]tracing.ConnectSelector{{deny}}},
	}
	h := newFullHarness(t, c, true)
	path, ino := netnsFile(t, "a")
	h.eps.eps = []api.Endpoint{endpoint(1, path, "default", "a")}
	h.m.SetPods([]*corev1.Pod{pod("default", "a", map[string]string{"app": "locked"})})
	h.m.SetObjects([]source.Raw{cluster(t, "deny", "deny"), cluster(t, "pids", "pids")})
	h.sync(t, false)
	assert.Equal(t, []datapath.ConnectRule{{
		Slot: 0, PolicyID: 1, Group: 0b11, Binary: procsensor.ClassFilter{All: 1},
		Dests: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Ports: []uint16{80, 443},
		Action: procsensor.ConnectDeny, Enforce: true,
	}, {
		Slot: 1, PolicyID: 1, Group: 0b11, Ports: []uint16{53}, NotPorts: true, Protocol: 17, Action: procsensor.ExecPost, Enforce: true,
	}}, h.s.conn, "TCP and UDP: one rule for both")
	assert.Equal(t, map[uint32]uint64{ino: 0b11}, h.s.connScopes)
	assert.Empty(t, h.s.sysScopes)
	p, _ := h.m.Get(clusterRef("pids"))
	assert.Equal(t, "spec.connects[0].selectors[0].matchPIDs: not supported in spec.connects by this agent (the cgroup connect hooks test the binary and parent binary)", p.Reason)
	p, _ = h.m.Get(clusterRef("deny"))
	assert.Equal(t, []api.TracingPolicyHook{{Table: "connect", Hook: "sluice/connect", Slots: []int{0, 1}}}, p.Hooks)

	// Deny events count as actions, enforced or monitored.
	for _, enforced := range []bool{true, false} {
		name, ok := h.m.PolicyEvent(1, procsensor.ConnectDeny, enforced)
		require.True(t, ok)
		assert.Equal(t, "deny", name)
	}
	assert.Equal(t, map[string]float64{"deny deny": 1, "deny would_deny": 1}, eventSeries(t, h.harness))
	p, _ = h.m.Get(clusterRef("deny"))
	assert.Equal(t, [3]uint64{2, 1, 1}, [3]uint64{p.EventsPosted, p.ActionsEnforced, p.ActionsMonitored})

	// Removing the policy removes its rules, scopes and classes.
	h.m.SetObjects(nil)
	h.sync(t, false)
	assert.Empty(t, h.s.conn)
	assert.Empty(t, h.s.connScopes)
	assert.Empty(t, h.s.classes)

	// Without the socket LB, connects are rejected and the others work.
	h = newFullHarness(t, c, false)
	h.m.SetObjects([]source.Raw{cluster(t, "deny", "denyns"), cluster(t, "opens", "opens")})
	h.sync(t, false)
	p, _ = h.m.Get(clusterRef("deny"))
	assert.False(t, p.Accepted)
	assert.Contains(t, p.Reason, "spec.connects: connect rules need the socket load balancer")
	assert.Len(t, h.s.sys, 1)
}

func TestSyscallScopesFollowPods(t *testing.T) {
	h := newFullHarness(t, compiler{
		"files": {PodSelector: locked, Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"))}},
		"both":  {Execs: []tracing.ExecSelector{sigkill("/bin/nc")}, Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/vi"))}},
	}, true)
	pathA, inoA := netnsFile(t, "a")
	pathB, inoB := netnsFile(t, "b")
	h.eps.eps = []api.Endpoint{endpoint(1, pathA, "default", "a"), endpoint(2, pathB, "other", "b")}
	h.m.SetPods([]*corev1.Pod{pod("default", "a", map[string]string{"app": "locked"}), pod("other", "b", nil)})
	h.m.SetObjects([]source.Raw{cluster(t, "a", "files"), namespaced(t, "other", "b", "both")})
	h.sync(t, false)
	assert.Equal(t, map[uint32]uint64{inoA: 0b01, inoB: 0b10}, h.s.sysScopes)
	assert.Equal(t, map[uint32]uint64{inoB: 0b1}, h.dp.scopes)
	assert.Empty(t, h.s.connScopes)

	// Pod a loses its label: its syscall scope goes.
	h.m.SetPods([]*corev1.Pod{pod("default", "a", nil), pod("other", "b", nil)})
	h.dp.takeCalls()
	h.sync(t, false)
	assert.Equal(t, []string{fmt.Sprintf("sys delete %d", inoA)}, h.dp.takeCalls())

	// Removing a moves b's syscall rule to slot 0: its scope goes before
	// the rules change and comes back after; a's class goes last.
	h.m.SetObjects([]source.Raw{namespaced(t, "other", "b", "both")})
	h.sync(t, false)
	assert.Equal(t, []string{
		fmt.Sprintf("sys delete %d", inoB), "sys rules 1", fmt.Sprintf("sys scope %d 0x1", inoB), "classes [1]",
	}, h.dp.takeCalls())
}

func TestSyscallRuleRejections(t *testing.T) {
	sel := func(f func(*tracing.TracepointSelector)) *tracing.Compiled {
		s := shadowKill("/usr/bin/cat")
		f(&s)
		return &tracing.Compiled{Tracepoints: []tracing.Tracepoint{openat(s)}}
	}
	for _, tc := range []struct {
		name string
		c    *tracing.Compiled
		want string
	}{
		{"override", sel(func(s *tracing.TracepointSelector) { s.Action = tracing.ActionOverride }),
			"spec.tracepoints[0].selectors[0].matchActions: action Override: a syscall hook cannot change the syscall's result (only spec.connects can deny)"},
		{"no syscall left", sel(func(s *tracing.TracepointSelector) { s.Syscalls = []uint32{59} }),
			"spec.tracepoints[0].selectors[0]: the syscall numbers selected are not of the tracepoint's syscalls: the selector matches no syscall"},
		{"host mount namespace", sel(func(s *tracing.TracepointSelector) {
			s.Namespaces = []tracing.NamespaceMatch{{Namespace: "Mnt", Host: true}}
		}), "spec.tracepoints[0].selectors[0].matchNamespaces[0].values: host_ns: the host's mnt namespace: pid 1's cannot be read and the agent's own mnt namespace is its container's"},
		{"pids intersect to none", sel(func(s *tracing.TracepointSelector) {
			s.PIDs = []tracing.PIDMatch{{Values: []uint32{1}}, {Values: []uint32{2}}}
		}), "spec.tracepoints[0].selectors[0].matchPIDs: the entries together match no process"},
		{"string operator on an integer", sel(func(s *tracing.TracepointSelector) {
			s.Args = []tracing.ArgMatch{{Value: dfd, Op: tracing.OpPrefix, Strings: []string{"x"}}}
		}), "spec.tracepoints[0].selectors[0].matchArgs[0].operator: Prefix compares strings, the value is an integer"},
		{"return at enter", sel(func(s *tracing.TracepointSelector) {
			s.Args = []tracing.ArgMatch{{Value: retval, Op: tracing.OpEqual, Ints: []uint64{0}}}
		}), "spec.tracepoints[0].selectors[0].matchArgs[0]: the return value is known at sys_exit only"},
		{"exact string beyond the kernel's key", sel(func(s *tracing.TracepointSelector) {
			s.Args[0].Strings = []string{"/" + strings.Repeat("x", 254)}
		}), "spec.tracepoints[0].selectors[0].matchArgs[0].values: \"/xxx"},
		{"in and notIn of the same binary", sel(func(s *tracing.TracepointSelector) {
			s.Binaries = append(s.Binaries, tracing.BinaryMatch{Op: tracing.BinaryNotIn, Values: []string{"/usr/bin/cat"}})
		}), "spec.tracepoints[0].selectors[0].matchBinaries: the entries together match no binary"},
		{"too many values captured", &tracing.Compiled{Tracepoints: []tracing.Tracepoint{{
			Subsystem: "raw_syscalls", Event: "sys_enter", Capture: []tracing.SyscallValue{dfd, dfd, dfd, dfd, dfd},
		}}}, "spec.tracepoints[0].args: 5 values and an event carries at most 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFullHarness(t, compiler{"x": tc.c, "ok": {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/bin/cat"))}}}, true)
			h.m.SetObjects([]source.Raw{cluster(t, "x", "x"), cluster(t, "ok", "ok")})
			h.sync(t, false)
			p, err := h.m.Get(clusterRef("x"))
			require.NoError(t, err)
			assert.False(t, p.Accepted)
			assert.Contains(t, p.Reason, tc.want)
			assert.Len(t, h.s.sys, 1, "the other policy works")
		})
	}

	// Without syscall hooks, tracepoints are rejected.
	h := newHarness(t, compiler{"x": {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/bin/cat"))}}})
	h.m.SetObjects([]source.Raw{cluster(t, "x", "x")})
	p, _ := h.m.Get(clusterRef("x"))
	assert.Equal(t, "spec.tracepoints: this agent's process sensor has no syscall hooks", p.Reason)
}

func TestConnectRuleRejections(t *testing.T) {
	dest := func(f func(*tracing.ConnectSelector)) *tracing.Compiled {
		s := tracing.ConnectSelector{Dests: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}, Action: tracing.ActionOverride}
		f(&s)
		return &tracing.Compiled{Connects: [][]tracing.ConnectSelector{{s}}}
	}
	for _, tc := range []struct {
		name string
		c    *tracing.Compiled
		want string
	}{
		{"ipv6", dest(func(s *tracing.ConnectSelector) { s.Dests = []netip.Prefix{netip.MustParsePrefix("fd00::/8")} }),
			"spec.connects[0].selectors[0].matchArgs: fd00::/8: not an IPv4 prefix"},
		{"port 0", dest(func(s *tracing.ConnectSelector) { s.Ports = []uint16{0} }), "spec.connects[0].selectors[0].matchArgs: port 0"},
		{"NotDAddr of nothing", dest(func(s *tracing.ConnectSelector) { s.Dests, s.NotDests = nil, true }),
			"spec.connects[0].selectors[0].matchArgs: NotDAddr: values required"},
		{"rate limit", dest(func(s *tracing.ConnectSelector) { s.RateLimit = time.Second }),
			"spec.connects[0].selectors[0].matchActions.rateLimit: not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFullHarness(t, compiler{"x": tc.c}, true)
			h.m.SetObjects([]source.Raw{cluster(t, "x", "x")})
			p, _ := h.m.Get(clusterRef("x"))
			assert.Contains(t, p.Reason, tc.want)
		})
	}

	// Prefixes are masked; distinct prefixes of every policy share the
	// table's limit.
	h := newFullHarness(t, compiler{"x": dest(func(*tracing.ConnectSelector) {})}, true)
	h.m.SetObjects([]source.Raw{cluster(t, "x", "x")})
	h.sync(t, false)
	require.Len(t, h.s.conn, 1)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, h.s.conn[0].Dests)

	many := tracing.ConnectSelector{Action: tracing.ActionOverride}
	for i := range maxConnectDests {
		many.Dests = append(many.Dests, netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 0}), 24))
	}
	h = newFullHarness(t, compiler{"x": dest(func(*tracing.ConnectSelector) {}), "many": {Connects: [][]tracing.ConnectSelector{{many}}}}, true)
	h.m.SetObjects([]source.Raw{cluster(t, "a", "x"), cluster(t, "b", "many")})
	h.sync(t, false)
	p, _ := h.m.Get(clusterRef("b"))
	assert.Equal(t, "spec.connects: needs 4096 more destination prefixes and only 4095 of 4096 are left", p.Reason)
	assert.Len(t, h.s.conn, 1)
}

// pinnedConnects is a ConnectRules whose scopes survived an agent restart.
type pinnedConnects struct {
	*fakeSensor
	kernel   map[uint32]uint64
	kernelCg map[uint64]uint64
}

func (p pinnedConnects) ConnectScopes() (map[uint32]uint64, error)       { return p.kernel, nil }
func (p pinnedConnects) ConnectCgroupScopes() (map[uint64]uint64, error) { return p.kernelCg, nil }

func TestStaleConnectScopesOfAnEarlierRunAreDeleted(t *testing.T) {
	c := compiler{"deny": {PodSelector: locked, Connects: [][]tracing.ConnectSelector{{{Ports: []uint16{80}, Action: tracing.ActionOverride}}}}}
	h := newFullHarness(t, c, true)
	path, ino := netnsFile(t, "a")
	h.eps.eps = []api.Endpoint{endpoint(1, path, "default", "a")}
	h.m.SetPods([]*corev1.Pod{pod("default", "a", map[string]string{"app": "locked"})})
	h.s.connScopes = map[uint32]uint64{999: 0b10, ino: 0b11}
	h.s.connCg = map[uint64]uint64{4242: 0b1}
	h.m = New(Config{Rules: h.dp, Syscalls: h.s, Connects: pinnedConnects{h.s, maps.Clone(h.s.connScopes), maps.Clone(h.s.connCg)}, Compile: c.compile,
		Endpoints: h.eps, ProcRoot: h.proc}, nil)
	h.m.SetPods([]*corev1.Pod{pod("default", "a", map[string]string{"app": "locked"})})
	h.m.SetObjects([]source.Raw{cluster(t, "deny", "deny")})
	h.sync(t, false)
	assert.Equal(t, map[uint32]uint64{ino: 0b1}, h.s.connScopes, "the pod's scope rewritten, the gone pod's deleted")
	assert.Empty(t, h.s.connCg, "the gone container's cgroup scope deleted")
}

// pinnedClasses is a SyscallRules whose binary classes survived an agent
// restart.
type pinnedClasses struct {
	*fakeSensor
	kernel []procsensor.BinaryClass
}

func (p pinnedClasses) BinaryClasses() ([]procsensor.BinaryClass, error) { return p.kernel, nil }

// After a restart the binary classes an earlier agent left keep their ids
// (the rules that test them stay the same rules); one no rule tests any
// more stays until the rules are written, then goes.
func TestBinaryClassesOfAnEarlierRunKeepTheirIDs(t *testing.T) {
	c := compiler{"vi": {Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/vi"))}}}
	h := newFullHarness(t, c, false)
	kernel := []procsensor.BinaryClass{{ID: 3, Exact: []string{"/usr/bin/cat"}}, {ID: 5, Exact: []string{"/usr/bin/vi"}}}
	h.m = New(Config{Rules: h.dp, Syscalls: pinnedClasses{h.s, kernel}, Compile: c.compile, Endpoints: h.eps, ProcRoot: h.proc}, nil)
	h.m.SetObjects([]source.Raw{cluster(t, "a", "vi")})
	h.sync(t, false)
	require.Len(t, h.s.sys, 1)
	assert.Equal(t, uint64(1<<5), h.s.sys[0].Binary.All, "vi keeps id 5")
	assert.Equal(t, []string{"rules 0", "sys rules 1", "classes [5]"}, h.dp.takeCalls(),
		"the kernel's classes are not rewritten; cat's stays until the rules are written")
	assert.Equal(t, []procsensor.BinaryClass{{ID: 5, Exact: []string{"/usr/bin/vi"}}}, h.s.classes)
}
