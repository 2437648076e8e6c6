package tracing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// tracepoints is a policy whose spec holds the given lines (indented as
// spec fields).
func tracepoints(t testing.TB, spec string) *Compiled {
	t.Helper()
	c, err := Compile(obj(t, "apiVersion: sluice.io/v1alpha1\nkind: SluiceTracingPolicy\nmetadata: {name: p}\nspec:\n"+spec))
	require.NoError(t, err)
	return c
}

// The file monitoring: an openat of /etc/shadow (or anything under
// /etc/ssh/) by a binary under /usr/bin, with the path posted; Sigkill for
// other binaries in the host's pid namespace.
func TestCompileOpenatPrefix(t *testing.T) {
	c := tracepoints(t, `
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    message: sensitive file
    tags: [files]
    args:
    - {index: 6, type: string}
    - {index: 7, label: open-flags}
    selectors:
    - matchBinaries: [{operator: Prefix, values: [/usr/bin/]}]
      matchArgs:
      - {index: 6, operator: Equal, values: [/etc/shadow]}
      - {index: 1, operator: Mask, values: ["0x3"]}
      matchActions: [{action: Post, rateLimit: "30"}]
    - matchArgs: [{index: 0, operator: Prefix, values: [/etc/ssh/]}]
      matchNamespaces: [{namespace: pid, operator: In, values: [host_ns]}]
      matchActions: [{action: Sigkill}]
`)
	path := SyscallValue{Source: SourceSyscallArg, Index: 1, Type: TypeString, Label: "filename"}
	flags := SyscallValue{Source: SourceSyscallArg, Index: 2, Type: TypeInt, Signed: true, Size: 4, Label: "open-flags"}
	assert.Equal(t, []Tracepoint{{
		Subsystem: "syscalls", Event: "sys_enter_openat", Syscalls: []uint32{unix.SYS_OPENAT},
		Capture: []SyscallValue{path, flags}, Message: "sensitive file", Tags: []string{"files"},
		Selectors: []TracepointSelector{{
			ProcessFilters: ProcessFilters{Binaries: []BinaryMatch{{Op: BinaryPrefix, Values: []string{"/usr/bin/"}}}},
			Args: []ArgMatch{
				{Value: path, Op: OpEqual, Strings: []string{"/etc/shadow"}},
				{Value: flags, Op: OpMask, Ints: []uint64{3}},
			},
			Action: ActionPost, RateLimit: 30 * time.Second,
		}, {
			ProcessFilters: ProcessFilters{Namespaces: []NamespaceMatch{{Namespace: "Pid", Host: true}}},
			Args:           []ArgMatch{{Value: path, Op: OpPrefix, Strings: []string{"/etc/ssh/"}}},
			Action:         ActionSigkill, Signal: 9,
		}},
	}}, c.Tracepoints)
}

// sys_exit: the return value (signed, 8 bytes), compared with GT/LT; a
// negative value is given in two's complement.
func TestCompileSysExit(t *testing.T) {
	c := tracepoints(t, `
  tracepoints:
  - subsystem: syscalls
    event: sys_exit_setuid
    args: [{index: 5}]
    selectors:
    - matchArgs: [{index: 5, operator: LT, values: ["0"]}]
      matchActions: [{action: Signal, argSig: 15}]
  - subsystem: raw_syscalls
    event: sys_exit
    args: [{index: 4}, {index: 5}]
    selectors:
    - matchArgs:
      - {index: 0, operator: InMap, values: [ptrace, sys_bpf, "165"]}
      - {index: 1, operator: Equal, values: ["-1", "-13"]}
`)
	ret := SyscallValue{Source: SourceReturn, Type: TypeInt, Signed: true, Size: 8, Label: "ret"}
	require.Len(t, c.Tracepoints, 2)
	assert.Equal(t, Tracepoint{
		Subsystem: "syscalls", Event: "sys_exit_setuid", Exit: true, Syscalls: []uint32{unix.SYS_SETUID},
		Capture: []SyscallValue{ret},
		Selectors: []TracepointSelector{{Args: []ArgMatch{{Value: ret, Op: OpLT, Ints: []uint64{0}}},
			Action: ActionSignal, Signal: 15}},
	}, c.Tracepoints[0])
	minus := func(n int64) uint64 { return uint64(n) }
	assert.True(t, c.Tracepoints[1].Exit)
	assert.Nil(t, c.Tracepoints[1].Syscalls)
	assert.Equal(t, []TracepointSelector{{
		Syscalls: []uint32{unix.SYS_PTRACE, unix.SYS_MOUNT, unix.SYS_BPF},
		Args:     []ArgMatch{{Value: ret, Op: OpEqual, Ints: []uint64{minus(-1), minus(-13)}}},
		Action:   ActionPost,
	}}, c.Tracepoints[1].Selectors)
}

// A NotEqual/NotInMap on the syscall number is every other syscall number
// (of the tracepoint); two filters on it intersect; ranges work as in
// Tetragon's InMap.
func TestCompileSyscallNumberFilters(t *testing.T) {
	c := tracepoints(t, `
  lists: [{name: reads, type: syscalls, values: [read, readv, pread64]}, {name: all, type: generated_syscalls}]
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: syscall64}]
    selectors:
    - matchArgs: [{index: 4, operator: NotInMap, values: ["list:reads", "2:511"]}]
    - matchArgs:
      - {index: 4, operator: InMap, values: ["list:all"]}
      - {index: 4, operator: NotEqual, values: [sys_read, "0x13"]}
      - {index: 4, operator: InMap, values: ["0:20"]}
  - subsystem: syscalls
    event: sys_enter_openat
    args: [{index: 4}]
    selectors:
    - matchArgs: [{index: 4, operator: Equal, values: [openat]}]
`)
	require.Len(t, c.Tracepoints, 2)
	sels := c.Tracepoints[0].Selectors
	assert.Equal(t, []uint32{unix.SYS_WRITE}, sels[0].Syscalls) // read is 0, write 1, the others are in 2..511
	want := []uint32{}
	for nr := uint32(1); nr <= 20; nr++ {
		if nr != unix.SYS_READV {
			want = append(want, nr)
		}
	}
	assert.Equal(t, want, sels[1].Syscalls)
	assert.Empty(t, sels[1].Args)
	assert.Equal(t, []uint32{unix.SYS_OPENAT}, c.Tracepoints[1].Selectors[0].Syscalls)
}

// raw: true reads the raw tracepoint's arguments: 1 is the id at
// sys_enter, the return value at sys_exit.
func TestCompileRawTracepointArgs(t *testing.T) {
	c := tracepoints(t, `
  tracepoints:
  - {subsystem: raw_syscalls, event: sys_enter, raw: true, args: [{index: 1}],
     selectors: [{matchArgs: [{index: 1, operator: Equal, values: [execve]}]}]}
  - {subsystem: raw_syscalls, event: sys_exit, raw: true, args: [{index: 1, type: int}]}
`)
	assert.Equal(t, []uint32{unix.SYS_EXECVE}, c.Tracepoints[0].Selectors[0].Syscalls)
	assert.Equal(t, []SyscallValue{{Source: SourceReturn, Type: TypeInt, Signed: true, Size: 4, Label: "ret"}}, c.Tracepoints[1].Capture)
}

// The process filters of a syscall selector: binaries, parent binaries,
// pids, namespaces, capabilities.
func TestCompileProcessFilters(t *testing.T) {
	c := tracepoints(t, `
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_ptrace
    selectors:
    - matchBinaries: [{operator: NotIn, values: [/usr/bin/gdb, /usr/bin/strace]}]
      matchParentBinaries: [{operator: In, values: [/bin/bash], followChildren: true}]
      matchPIDs: [{operator: NotIn, values: [1, 2], isNamespacePID: true, followForks: true}]
      matchNamespaces:
      - {namespace: Mnt, operator: NotIn, values: [host_ns, "4026531841"]}
      - {namespace: TimeForChildren, operator: In, values: ["4026531834"]}
      matchCapabilities:
      - {operator: In, values: [CAP_SYS_PTRACE, cap_sys_admin]}
      - {type: Permitted, operator: NotIn, isNamespaceCapability: true, values: [CAP_BPF]}
      matchActions: [{action: NoPost}]
`)
	assert.Equal(t, []TracepointSelector{{
		ProcessFilters: ProcessFilters{
			Binaries:       []BinaryMatch{{Op: BinaryNotIn, Values: []string{"/usr/bin/gdb", "/usr/bin/strace"}}},
			ParentBinaries: []BinaryMatch{{Op: BinaryIn, Values: []string{"/bin/bash"}, FollowChildren: true}},
			PIDs:           []PIDMatch{{NotIn: true, Values: []uint32{1, 2}, IsNamespacePID: true, FollowForks: true}},
			Namespaces: []NamespaceMatch{
				{Namespace: "Mnt", NotIn: true, Host: true, Inodes: []uint32{4026531841}},
				{Namespace: "TimeForChildren", Inodes: []uint32{4026531834}},
			},
			Capabilities: []CapabilityMatch{
				{Type: "Effective", Mask: 1<<19 | 1<<21},
				{Type: "Permitted", NotIn: true, Mask: 1 << 39, IsNamespaceCapability: true},
			},
		},
		Action: ActionNoPost,
	}}, c.Tracepoints[0].Selectors)
}

// rateLimit was rejected as not supported yet in phase 1; it compiles for
// tracepoints now, and stays rejected where the rules have no rate limit
// (execs, connects), as do the process filters connect rules cannot test.
func TestCompileRateLimit(t *testing.T) {
	c := tracepoints(t, `
  tracepoints: [{subsystem: syscalls, event: sys_enter_bpf, selectors: [{matchActions: [{action: Post, rateLimit: "5"}]}]}]
`)
	assert.Equal(t, 5*time.Second, c.Tracepoints[0].Selectors[0].RateLimit)
	for _, tc := range []struct{ spec, path string }{
		{`execs: [{selectors: [{matchBinaries: [{operator: In, values: [/bin/x]}], matchActions: [{action: Post, rateLimit: 1m}]}]}]`,
			"spec.execs[0].selectors[0].matchActions[0].rateLimit"},
		{`connects: [{selectors: [{matchActions: [{action: Post, rateLimit: 2h, rateLimitScope: process}]}]}]`,
			"spec.connects[0].selectors[0].matchActions[0].rateLimit"},
		{`connects: [{selectors: [{matchPIDs: [{operator: In, values: [1]}]}]}]`, "spec.connects[0].selectors[0].matchPIDs"},
		{`connects: [{selectors: [{matchNamespaces: [{namespace: Net, operator: In, values: [host_ns]}]}]}]`,
			"spec.connects[0].selectors[0].matchNamespaces"},
		{`connects: [{selectors: [{matchCapabilities: [{type: Effective, operator: In, values: [CAP_NET_RAW]}]}]}]`,
			"spec.connects[0].selectors[0].matchCapabilities"},
	} {
		_, err := Compile(obj(t, "apiVersion: sluice.io/v1alpha1\nkind: SluiceTracingPolicy\nmetadata: {name: p}\nspec:\n  "+tc.spec+"\n"))
		require.Error(t, err, tc.spec)
		assert.ErrorIs(t, err, ErrNotYet)
		assert.Contains(t, err.Error(), tc.path+": in spec.")
	}
}

// Tetragon's policies write integer matchArgs values unquoted; they compile
// as the quoted ones do, and the object is left as it was.
func TestCompileUnquotedArgValues(t *testing.T) {
	o := obj(t, `apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: p}
spec:
  tracepoints:
  - subsystem: raw_syscalls
    event: sys_enter
    args: [{index: 4, type: syscall64}, {index: 5, type: uint64}]
    selectors:
    - matchArgs:
      - {index: 0, operator: Equal, values: [32, 33]}
      - {index: 1, operator: Equal, values: [9999]}
`)
	c, err := Compile(o)
	require.NoError(t, err)
	sel := c.Tracepoints[0].Selectors[0]
	assert.Equal(t, []uint32{32, 33}, sel.Syscalls)
	require.Len(t, sel.Args, 1)
	assert.Equal(t, []uint64{9999}, sel.Args[0].Ints)
	vals, _, _ := unstructured.NestedSlice(o.Object, "spec", "tracepoints")
	assert.IsNotType(t, "", vals[0].(map[string]any)["selectors"].([]any)[0].(map[string]any)["matchArgs"].([]any)[1].(map[string]any)["values"].([]any)[0], "the object is not modified")
}
