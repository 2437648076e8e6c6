package tracing

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tpWith is a policy with one tracepoint of spec.tracepoints (flow YAML).
func tpWith(tracepoint string) string {
	return "{apiVersion: sluice.io/v1alpha1, kind: SluiceTracingPolicy, metadata: {name: p}, spec: {tracepoints: [" + tracepoint + "]}}"
}

// openatSel is sys_enter_openat capturing filename, flags and the syscall
// number, with one selector made of the given flow-YAML fields.
func openatSel(fields string) string {
	return tpWith("{subsystem: syscalls, event: sys_enter_openat, args: [{index: 6, type: string}, {index: 7}, {index: 4}], " +
		"selectors: [{" + fields + "}]}")
}

// connectSel is a policy with one connect selector of the given fields.
func connectSel(fields string) string {
	return "{apiVersion: sluice.io/v1alpha1, kind: SluiceTracingPolicy, metadata: {name: p}, spec: {connects: [{selectors: [{" +
		fields + "}]}]}}"
}

type rejection struct {
	name, manifest, want string
	kernel, notYet       bool
}

func checkRejections(t *testing.T, cases []rejection) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(obj(t, tc.manifest))
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, tc.kernel, errors.Is(err, ErrKernel), "ErrKernel")
			assert.Equal(t, tc.notYet, errors.Is(err, ErrNotYet), "ErrNotYet")
		})
	}
}

func TestCompileRejectsTracepointFields(t *testing.T) {
	const sel = "spec.tracepoints[0].selectors[0]"
	arg := func(a string) string {
		return tpWith("{subsystem: syscalls, event: sys_enter_openat, args: [" + a + "]}")
	}
	checkRejections(t, []rejection{
		// The tracepoint and its args.
		{name: "common field", manifest: arg("{index: 2}"), notYet: true,
			want: "spec.tracepoints[0].args[0].index: index 2 is a common field (common_type, common_flags, common_preempt_count, common_pid)"},
		{name: "raw regs", manifest: tpWith("{subsystem: raw_syscalls, event: sys_exit, raw: true, args: [{index: 0}]}"), notYet: true,
			want: "spec.tracepoints[0].args[0].index: index 0 is the raw tracepoint's struct pt_regs *"},
		{name: "raw syscalls tracepoint", manifest: tpWith("{subsystem: syscalls, event: sys_enter_openat, raw: true}"),
			want: "spec.tracepoints[0].raw: the syscalls/* tracepoints are not raw tracepoints"},
		{name: "unknown syscall", manifest: tpWith("{subsystem: syscalls, event: sys_exit_nope}"),
			want: `spec.tracepoints[0].event: unknown syscall "nope"`},
		{name: "raw_syscalls event", manifest: tpWith("{subsystem: raw_syscalls, event: sys_foo}"),
			want: `spec.tracepoints[0].event: raw_syscalls has the events sys_enter and sys_exit, not "sys_foo"`},
		{name: "sys_exit field", manifest: tpWith("{subsystem: syscalls, event: sys_exit_openat, args: [{index: 6}]}"),
			want: "spec.tracepoints[0].args[0].index: index 6: a sys_exit tracepoint has the fields 4 (the syscall number) and 5 (ret)"},
		{name: "raw_syscalls field", manifest: tpWith("{subsystem: raw_syscalls, event: sys_enter, args: [{index: 6}]}"),
			want: "spec.tracepoints[0].args[0].index: index 6: raw_syscalls/sys_enter has the fields 4 (id) and 5 (args: the first argument)"},
		{name: "char_buf", manifest: arg("{index: 6, type: char_buf, sizeArgIndex: 3}"), notYet: true,
			want: "spec.tracepoints[0].args[0].sizeArgIndex: not supported yet"},
		{name: "char_buf type", manifest: arg("{index: 6, type: char_buf}"), notYet: true,
			want: "spec.tracepoints[0].args[0].type: char_buf: a sized user buffer is not read by the syscall hooks"},
		{name: "kernel object", manifest: arg("{index: 6, type: file}"), notYet: true,
			want: "spec.tracepoints[0].args[0].type: file: a kernel object of kprobe hooks, not read by the syscall hooks"},
		{name: "resolve", manifest: arg("{index: 6, type: string, resolve: f_path}"), notYet: true,
			want: "spec.tracepoints[0].args[0].resolve: not supported yet"},
		{name: "const_buf", manifest: arg("{index: 6, type: const_buf}"),
			want: "spec.tracepoints[0].args[0].type: const_buf: not a type of the syscall tracepoints' fields"},
		{name: "unknown type", manifest: arg("{index: 6, type: bogus}"), want: `spec.tracepoints[0].args[0].type: unknown type "bogus"`},
		{name: "string on an int", manifest: arg("{index: 5, type: string}"),
			want: "spec.tracepoints[0].args[0].type: string: argument dfd is int, not a pointer to a string"},
		{name: "string on the number", manifest: arg("{index: 4, type: string}"),
			want: "spec.tracepoints[0].args[0].type: string: __syscall_nr is an integer"},
		{name: "auto on an undescribed syscall", manifest: tpWith("{subsystem: syscalls, event: sys_enter_kexec_load, args: [{index: 5}]}"),
			want: "spec.tracepoints[0].args[0].type: the arguments of this syscall are not known here: give the type"},
		{name: "five args", manifest: arg("{index: 4}, {index: 5}, {index: 6}, {index: 7}, {index: 8}"),
			want: "spec.tracepoints[0].args: at most 4 values per event, got 5"},
		{name: "message", manifest: tpWith("{subsystem: syscalls, event: sys_enter_bpf, message: " + strings.Repeat("m", 257) + "}"),
			want: "spec.tracepoints[0].message: at most 256 characters, got 257"},
		{name: "tags", manifest: tpWith("{subsystem: syscalls, event: sys_enter_bpf, tags: [" + strings.Repeat("t, ", 16) + "t]}"),
			want: "spec.tracepoints[0].tags: at most 16 tags, got 17"},
		// matchArgs.
		{name: "index neither", manifest: openatSel("matchArgs: [{index: 9, operator: Equal, values: [x]}]"),
			want: sel + ".matchArgs[0].index: 9 is neither the format index of one of the tracepoint's args nor a position in them (3 args)"},
		{name: "two positions", manifest: openatSel("matchArgs: [{args: [0, 1], operator: Equal, values: [x]}]"),
			want: sel + ".matchArgs[0].args: one position"},
		{name: "Prefix on an int", manifest: openatSel("matchArgs: [{index: 7, operator: Prefix, values: [x]}]"),
			want: sel + ".matchArgs[0].operator: Prefix applies to strings; flags is an integer"},
		{name: "Mask on a string", manifest: openatSel("matchArgs: [{index: 6, operator: Mask, values: ['1']}]"),
			want: sel + ".matchArgs[0].operator: Mask applies to integers; filename is a string"},
		{name: "InMap on a string", manifest: openatSel("matchArgs: [{index: 6, operator: InMap, values: [x]}]"),
			want: sel + ".matchArgs[0].operator: InMap takes integers; filename is a string"},
		{name: "GT two values", manifest: openatSel("matchArgs: [{index: 7, operator: GT, values: ['1', '2']}]"),
			want: sel + ".matchArgs[0].values: GT takes one value, got 2"},
		{name: "no values", manifest: openatSel("matchArgs: [{index: 7, operator: Equal}]"), want: sel + ".matchArgs[0].values: required"},
		{name: "not an int", manifest: openatSel("matchArgs: [{index: 7, operator: Equal, values: [abc]}]"),
			want: sel + `.matchArgs[0].values[0]: "abc" is not a signed 32-bit integer (flags)`},
		{name: "int out of range", manifest: openatSel("matchArgs: [{index: 7, operator: Equal, values: ['4294967296']}]"),
			want: sel + `.matchArgs[0].values[0]: "4294967296" is not a signed 32-bit integer (flags)`},
		{name: "nine ints", manifest: openatSel("matchArgs: [{index: 7, operator: Equal, values: ['1','2','3','4','5','6','7','8','9']}]"),
			want: sel + ".matchArgs[0].values: at most 8 integer values per filter, got 9"},
		{name: "big range", manifest: openatSel("matchArgs: [{index: 7, operator: InMap, values: ['1:100']}]"),
			want: sel + `.matchArgs[0].values[0]: "1:100" is not a range min:max of at most 8 values`},
		{name: "list on an int", manifest: openatSel("matchArgs: [{index: 7, operator: InMap, values: ['list:x']}]"),
			want: sel + `.matchArgs[0].values[0]: "list:x": lists hold syscalls, for the syscall number only`},
		{name: "long string", manifest: openatSel("matchArgs: [{index: 6, operator: Equal, values: [" + strings.Repeat("a", 256) + "]}]"),
			want: sel + ".matchArgs[0].values[0]: 256 bytes: the hooks read at most 255 bytes of a string"},
		{name: "empty prefix", manifest: openatSel("matchArgs: [{index: 6, operator: Postfix, values: ['']}]"),
			want: sel + ".matchArgs[0].values[0]: an empty prefix or postfix would match every string"},
		{name: "five filters", manifest: openatSel("matchArgs: [" + strings.Repeat("{index: 7, operator: Equal, values: ['1']}, ", 4) +
			"{index: 6, operator: Equal, values: [x]}]"),
			want: sel + ".matchArgs: at most 4 argument filters per selector (a filter on the syscall number does not count), got 5"},
		{name: "InRange", manifest: openatSel("matchArgs: [{index: 7, operator: InRange, values: ['1:2']}]"), notYet: true,
			want: sel + ".matchArgs[0].operator: InRange: not supported yet"},
		{name: "socket operator", manifest: openatSel("matchArgs: [{index: 7, operator: DAddr, values: [1.2.3.4]}]"),
			want: sel + ".matchArgs[0].operator: DAddr: the socket operators are for spec.connects"},
		{name: "unknown operator", manifest: openatSel("matchArgs: [{index: 6, operator: Like, values: [x]}]"),
			want: sel + `.matchArgs[0].operator: unknown operator "Like"`},
		{name: "number Prefix", manifest: openatSel("matchArgs: [{index: 4, operator: Prefix, values: ['2']}]"),
			want: sel + `.matchArgs[0].operator: "Prefix": the syscall number takes Equal, NotEqual, InMap or NotInMap`},
		{name: "number unknown", manifest: openatSel("matchArgs: [{index: 4, operator: Equal, values: [sys_nope]}]"),
			want: sel + `.matchArgs[0].values[0]: unknown syscall "sys_nope"`},
		{name: "number list", manifest: openatSel("matchArgs: [{index: 4, operator: InMap, values: ['list:nolist']}]"),
			want: sel + `.matchArgs[0].values[0]: no list "nolist" in spec.lists`},
		{name: "number range", manifest: openatSel("matchArgs: [{index: 4, operator: InMap, values: ['9:2']}]"),
			want: sel + `.matchArgs[0].values[0]: "9:2" is not a range of syscall numbers min:max (0..511)`},
		{name: "no syscall left", manifest: openatSel("matchArgs: [{index: 4, operator: Equal, values: [read]}]"),
			want: sel + ".matchArgs[0]: the selector matches no syscall of syscalls/sys_enter_openat"},
		// Filters and actions.
		{name: "Override", manifest: openatSel("matchActions: [{action: Override, argError: -1}]"), kernel: true,
			want: sel + ".matchActions[0].action: cannot override a return value without kprobes/fmod_ret"},
		{name: "return args", manifest: openatSel("matchReturnArgs: [{index: 0}]"), notYet: true,
			want: sel + ".matchReturnArgs: not supported yet"},
		{name: "macros", manifest: openatSel("macros: [m]"), notYet: true, want: sel + ".macros: not supported yet"},
		{name: "workloads", manifest: openatSel("matchWorkloads: {}"), notYet: true, want: sel + ".matchWorkloads: not supported yet"},
		{name: "namespace changes", manifest: openatSel("matchNamespaceChanges: [{operator: In, values: [Mnt]}]"), notYet: true,
			want: sel + ".matchNamespaceChanges: not supported yet"},
		{name: "binaries Postfix", manifest: openatSel("matchParentBinaries: [{operator: Postfix, values: [/sh]}]"), notYet: true,
			want: sel + ".matchParentBinaries[0].operator: Postfix: not supported yet"},
	})
}

func TestCompileRejectsProcessFilters(t *testing.T) {
	const sel = "spec.tracepoints[0].selectors[0]"
	pids := make([]string, 9)
	for i := range pids {
		pids[i] = fmt.Sprint(i + 1)
	}
	checkRejections(t, []rejection{
		{name: "two matchPIDs", manifest: openatSel("matchPIDs: [{operator: In, values: [1]}, {operator: In, values: [2]}]"),
			want: sel + ".matchPIDs: one entry per selector"},
		{name: "nine pids", manifest: openatSel("matchPIDs: [{operator: In, values: [" + strings.Join(pids, ",") + "]}]"),
			want: sel + ".matchPIDs[0].values: at most 8 pids, got 9"},
		{name: "pid operator", manifest: openatSel("matchPIDs: [{operator: Equal, values: [1]}]"),
			want: sel + `.matchPIDs[0].operator: "Equal" is not In or NotIn`},
		{name: "namespace kind", manifest: openatSel("matchNamespaces: [{namespace: Proc, operator: In, values: [host_ns]}]"),
			want: sel + `.matchNamespaces[0].namespace: "Proc" is not one of Uts, Ipc, Mnt, Pid, PidForChildren, Net, Time, TimeForChildren, Cgroup, User`},
		{name: "namespace value", manifest: openatSel("matchNamespaces: [{namespace: Net, operator: In, values: [container]}]"),
			want: sel + `.matchNamespaces[0].values[0]: "container" is not a namespace inode number or host_ns`},
		{name: "namespace values", manifest: openatSel("matchNamespaces: [{namespace: Net, operator: In, values: ['1','2','3','4','5']}]"),
			want: sel + ".matchNamespaces[0].values: at most 4 values, got 5"},
		{name: "five namespaces", manifest: openatSel("matchNamespaces: [" +
			strings.Repeat("{namespace: Net, operator: In, values: [host_ns]}, ", 4) + "{namespace: Net, operator: In, values: [host_ns]}]"),
			want: sel + ".matchNamespaces: at most 4 entries per selector, got 5"},
		{name: "capability", manifest: openatSel("matchCapabilities: [{operator: In, values: [CAP_ROOT]}]"),
			want: sel + `.matchCapabilities[0].values[0]: "CAP_ROOT" is not a capability`},
		{name: "capability type", manifest: openatSel("matchCapabilities: [{type: Bounding, operator: In, values: [CAP_BPF]}]"),
			want: sel + `.matchCapabilities[0].type: "Bounding" is not one of Effective, Permitted, Inheritable`},
		{name: "no capabilities", manifest: openatSel("matchCapabilities: [{operator: NotIn}]"),
			want: sel + ".matchCapabilities[0].values: required"},
	})
}

func TestCompileRejectsListsAndConnects(t *testing.T) {
	list := func(l string) string {
		return "{apiVersion: sluice.io/v1alpha1, kind: SluiceTracingPolicy, metadata: {name: p}, spec: {lists: [" + l +
			"], tracepoints: [{subsystem: raw_syscalls, event: sys_enter}]}}"
	}
	const sel = "spec.connects[0].selectors[0]"
	checkRejections(t, []rejection{
		{name: "list without name", manifest: list("{type: syscalls, values: [dup]}"), want: "spec.lists[0].name: required"},
		{name: "list twice", manifest: list("{name: l, type: syscalls, values: [dup]}, {name: l, type: syscalls, values: [dup2]}"),
			want: `spec.lists[1].name: "l" given twice`},
		{name: "list syscall", manifest: list("{name: l, type: syscalls, values: [dup, sys_nope]}"),
			want: `spec.lists[0].values[1]: unknown syscall "sys_nope"`},
		{name: "list type", manifest: list("{name: l, values: [fd_install]}"),
			want: `spec.lists[0].type: "" is not syscalls or generated_syscalls (lists of kernel functions are for kprobes)`},
		{name: "list pattern", manifest: list("{name: l, type: syscalls, values: [dup], pattern: x}"),
			want: "spec.lists[0].pattern: only for generated_ftrace lists"},
		{name: "generated list values", manifest: list("{name: l, type: generated_syscalls, values: [dup]}"),
			want: "spec.lists[0].values: a generated_syscalls list is generated: it takes no values"},
		{name: "connect without selectors", manifest: "{apiVersion: sluice.io/v1alpha1, kind: SluiceTracingPolicy, metadata: {name: p}, " +
			"spec: {connects: [{}]}}", want: "spec.connects[0].selectors: required"},
		{name: "argError", manifest: connectSel("matchActions: [{action: Override, argError: -13}]"),
			want: sel + ".matchActions[0].argError: -13: the cgroup connect hooks can return EPERM only (argError -1, or omit it)"},
		{name: "connect index", manifest: connectSel("matchArgs: [{index: 1, operator: DPort, values: ['80']}]"),
			want: sel + ".matchArgs[0].index: spec.connects has one argument: index 0, the destination"},
		{name: "source", manifest: connectSel("matchArgs: [{index: 0, operator: SAddr, values: [10.0.0.1]}]"),
			want: sel + `.matchArgs[0].operator: "SAddr": spec.connects takes DAddr, NotDAddr, DPort, NotDPort or Protocol`},
		{name: "DPortPriv", manifest: connectSel("matchArgs: [{index: 0, operator: DPortPriv}]"), notYet: true,
			want: sel + ".matchArgs[0].operator: DPortPriv: not supported yet"},
		{name: "IPv6", manifest: connectSel("matchArgs: [{index: 0, operator: DAddr, values: ['fd00::/64']}]"), notYet: true,
			want: sel + `.matchArgs[0].values[0]: "fd00::/64": IPv6 destinations: the connect rules run in the IPv4 hooks (connect4, sendmsg4)`},
		{name: "bad address", manifest: connectSel("matchArgs: [{index: 0, operator: NotDAddr, values: [example.com]}]"),
			want: sel + `.matchArgs[0].values[0]: "example.com" is not an address or CIDR`},
		{name: "port 0", manifest: connectSel("matchArgs: [{index: 0, operator: DPort, values: ['0']}]"),
			want: sel + `.matchArgs[0].values[0]: "0" is not a port 1..65535 or a range min:max`},
		{name: "port 70000", manifest: connectSel("matchArgs: [{index: 0, operator: DPort, values: ['70000']}]"),
			want: sel + `.matchArgs[0].values[0]: "70000" is not a port 1..65535 or a range min:max`},
		{name: "port range", manifest: connectSel("matchArgs: [{index: 0, operator: DPort, values: ['1:1000']}]"),
			want: sel + `.matchArgs[0].values[0]: "1:1000": at most 64 ports per filter`},
		{name: "protocol", manifest: connectSel("matchArgs: [{index: 0, operator: Protocol, values: [ICMP]}]"),
			want: sel + `.matchArgs[0].values[0]: "ICMP": only TCP and UDP go through the cgroup connect4/sendmsg4 hooks`},
		{name: "two address filters", manifest: connectSel("matchArgs: [{index: 0, operator: DAddr, values: [10.0.0.0/8]}, " +
			"{index: 0, operator: NotDAddr, values: [10.1.0.0/16]}]"), want: sel + ".matchArgs[1].operator: one DAddr filter per selector"},
		{name: "connect values", manifest: connectSel("matchArgs: [{index: 0, operator: DPort}]"), want: sel + ".matchArgs[0].values: required"},
		{name: "connect action", manifest: connectSel("matchActions: [{action: Deny}]"),
			want: sel + `.matchActions[0].action: unknown action "Deny" (want Override, Post, NoPost, Sigkill or Signal)`},
		{name: "connect selector", manifest: "{apiVersion: sluice.io/v1alpha1, kind: SluiceTracingPolicy, metadata: {name: p}, " +
			"spec: {connects: [{selectors: [{matchData: [{index: 0}]}]}]}}", notYet: true, want: sel + ".matchData: not supported yet"},
	})
}
