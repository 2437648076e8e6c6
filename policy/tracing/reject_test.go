package tracing

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validExec is one valid spec.execs entry, added to specs under test so that
// only the field under test is wrong.
const validExec = `
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [/usr/bin/nc]}]
      matchActions: [{action: Sigkill}]`

// selectorWith is a policy whose only selector has the given extra lines
// (indented as selector fields).
func selectorWith(fields string) string {
	return `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: p}
spec:
  execs:
  - selectors:
    - ` + strings.ReplaceAll(strings.TrimSpace(fields), "\n", "\n      ")
}

func specWith(fields string) string {
	return `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: p}
spec:
  ` + strings.ReplaceAll(strings.TrimSpace(fields), "\n", "\n  ") + validExec
}

func TestCompileRejectsWithFieldPath(t *testing.T) {
	bin := "matchBinaries: [{operator: In, values: [/bin/x]}]\n"
	for _, tc := range []struct {
		name, manifest, want string
		kernel               bool // ErrKernel (else ErrNotYet or neither)
		notYet               bool
	}{
		// Hooks this kernel cannot run.
		{name: "kprobes", manifest: specWith(`kprobes: [{call: fd_install}]`),
			want: "spec.kprobes: this kernel has no kprobes (CONFIG_KPROBES is off)", kernel: true},
		{name: "fentries", manifest: specWith(`fentries: [{call: fd_install}]`),
			want: "spec.fentries: fentry programs do not load on this kernel", kernel: true},
		{name: "lsmhooks", manifest: specWith(`lsmhooks: [{hook: file_open}]`),
			want: "spec.lsmhooks: BPF-LSM programs do not load on this kernel", kernel: true},
		{name: "enforcers", manifest: specWith(`enforcers: [{calls: [sys_symlinkat]}]`),
			want: "spec.enforcers: enforcers override syscall return values with kprobes or fmod_ret", kernel: true},
		{name: "override", manifest: selectorWith(bin + "matchActions: [{action: Override, argError: -1}]"),
			want:   "spec.execs[0].selectors[0].matchActions[0].action: cannot override a return value without kprobes/fmod_ret",
			kernel: true},
		{name: "notify enforcer", manifest: selectorWith(bin + "matchActions: [{action: NotifyEnforcer}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].action: NotifyEnforcer needs an enforcer", kernel: true},
		// Tetragon fields this agent does not implement yet.
		// Phase 2 runs the syscall tracepoints (raw_syscalls/sys_enter was
		// "not supported yet" here before); the others still are not.
		{name: "tracepoints", manifest: specWith(`tracepoints: [{subsystem: sched, event: sched_process_exec}]`),
			want: "spec.tracepoints[0]: sched/sched_process_exec: only the syscall tracepoints (raw_syscalls, syscalls) run here " +
				"(spec.execs covers exec): not supported yet by this agent", notYet: true},
		{name: "uprobes", manifest: specWith(`uprobes: [{path: /bin/bash, symbols: [readline]}]`),
			want: "spec.uprobes: not supported yet by this agent", notYet: true},
		{name: "usdts", manifest: specWith(`usdts: [{path: /bin/x, provider: p, name: n}]`),
			want: "spec.usdts: not supported yet by this agent", notYet: true},
		// Lists of syscalls compile now (they were "not supported yet");
		// generated_ftrace lists are kernel functions, for kprobes.
		{name: "lists", manifest: specWith(`lists: [{name: l, type: generated_ftrace, pattern: "^sys_"}]`),
			want: "spec.lists[0].type: generated_ftrace lists kernel functions for kprobes, which this kernel has not", kernel: true},
		{name: "loader", manifest: specWith(`loader: true`),
			want: "spec.loader: not supported yet by this agent", notYet: true},
		{name: "hostSelector", manifest: specWith(`hostSelector: {}`),
			want: "spec.hostSelector: not supported yet by this agent", notYet: true},
		{name: "selectorsMacros", manifest: specWith(`selectorsMacros: {m: {matchPIDs: []}}`),
			want: "spec.selectorsMacros: not supported yet by this agent", notYet: true},
		{name: "matchArgs", manifest: selectorWith(bin + "matchArgs: [{index: 0, operator: Equal, values: [x]}]"),
			want: "spec.execs[0].selectors[0].matchArgs: not supported yet by this agent", notYet: true},
		{name: "matchParentBinaries", manifest: selectorWith(bin + "matchParentBinaries: [{operator: In, values: [/bin/sh]}]"),
			want: "spec.execs[0].selectors[0].matchParentBinaries: not supported yet by this agent", notYet: true},
		{name: "matchPIDs", manifest: selectorWith(bin + "matchPIDs: [{operator: In, values: [1]}]"),
			want: "spec.execs[0].selectors[0].matchPIDs: not supported yet by this agent", notYet: true},
		{name: "matchNamespaces", manifest: selectorWith(bin + "matchNamespaces: [{namespace: Pid, operator: In, values: [host_ns]}]"),
			want: "spec.execs[0].selectors[0].matchNamespaces: not supported yet by this agent", notYet: true},
		{name: "matchCapabilities", manifest: selectorWith(bin + "matchCapabilities: [{operator: In, values: [CAP_SYS_ADMIN]}]"),
			want: "spec.execs[0].selectors[0].matchCapabilities: not supported yet by this agent", notYet: true},
		{name: "operator Postfix", manifest: selectorWith("matchBinaries: [{operator: Postfix, values: [/nc]}]"),
			want: "spec.execs[0].selectors[0].matchBinaries[0].operator: Postfix: not supported yet by this agent", notYet: true},
		{name: "action GetUrl", manifest: selectorWith(bin + "matchActions: [{action: GetUrl, argUrl: http://x}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].action: GetUrl: not supported yet by this agent", notYet: true},
		{name: "stack traces", manifest: selectorWith(bin + "matchActions: [{action: Post, kernelStackTrace: true}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].kernelStackTrace: not supported yet by this agent", notYet: true},
		{name: "global rate limit", manifest: selectorWith(bin + "matchActions: [{action: Post, rateLimit: \"5\", rateLimitScope: global}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].rateLimitScope: global: not supported yet by this agent", notYet: true},
		// Invalid values.
		{name: "signal without argSig", manifest: selectorWith(bin + "matchActions: [{action: Signal}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].argSig: Signal needs a signal number 1..64, got 0"},
		{name: "signal 65", manifest: selectorWith(bin + "matchActions: [{action: Signal, argSig: 65}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].argSig: Signal needs a signal number 1..64, got 65"},
		{name: "argSig on Sigkill", manifest: selectorWith(bin + "matchActions: [{action: Sigkill, argSig: 9}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].argSig: only for Signal"},
		{name: "rateLimit on Sigkill", manifest: selectorWith(bin + "matchActions: [{action: Sigkill, rateLimit: 1m}]"),
			want: "spec.execs[0].selectors[0].matchActions[0].rateLimit: only for Post"},
		{name: "bad rateLimit", manifest: selectorWith(bin + "matchActions: [{action: Post, rateLimit: soon}]"),
			want: `spec.execs[0].selectors[0].matchActions[0].rateLimit: "soon" is not a period`},
		{name: "zero rateLimit", manifest: selectorWith(bin + "matchActions: [{action: Post, rateLimit: \"0\"}]"),
			want: `spec.execs[0].selectors[0].matchActions[0].rateLimit: "0" is not a positive period`},
		{name: "unknown action", manifest: selectorWith(bin + "matchActions: [{action: Kill}]"),
			want: `spec.execs[0].selectors[0].matchActions[0].action: unknown action "Kill"`},
		{name: "two actions", manifest: selectorWith(bin + "matchActions: [{action: Post}, {action: Sigkill}]"),
			want: "spec.execs[0].selectors[0].matchActions: one action per selector"},
		{name: "no binaries", manifest: selectorWith("matchActions: [{action: Sigkill}]"),
			want: "spec.execs[0].selectors[0].matchBinaries: required"},
		{name: "relative path", manifest: selectorWith("matchBinaries: [{operator: In, values: [nc]}]"),
			want: `spec.execs[0].selectors[0].matchBinaries[0].values[0]: "nc" is not an absolute path`},
		{name: "no values", manifest: selectorWith("matchBinaries: [{operator: In, values: []}]"),
			want: "spec.execs[0].selectors[0].matchBinaries[0].values: required"},
		{name: "bad operator", manifest: selectorWith("matchBinaries: [{operator: Equal, values: [/bin/x]}]"),
			want: `spec.execs[0].selectors[0].matchBinaries[0].operator: "Equal" is not In, NotIn or Prefix`},
		{name: "return actions", manifest: selectorWith(bin + "matchReturnActions: [{action: Post}]"),
			want: "spec.execs[0].selectors[0].matchReturnActions: an exec has no return value to act on"},
		{name: "no selectors", manifest: strings.Replace(selectorWith(bin), "  - selectors:", "  - selectors: []\n  - selectors:", 1),
			want: "spec.execs[0].selectors: required"},
		{name: "bad podSelector", manifest: specWith("podSelector: {matchExpressions: [{key: a, operator: Maybe}]}"),
			want: `spec.podSelector: "Maybe" is not a valid label selector operator`},
		{name: "containerSelector unknown label key", manifest: specWith("containerSelector: {matchLabels: {image: nginx}}"),
			want: `spec.containerSelector.matchLabels.image: unknown container field "image" (known: name, repo)`},
		{name: "containerSelector unknown expression key", manifest: specWith("containerSelector: {matchExpressions: [{key: id, operator: Exists}]}"),
			want: `spec.containerSelector.matchExpressions[0].key: unknown container field "id" (known: name, repo)`},
		{name: "containerSelector bad operator", manifest: specWith("containerSelector: {matchExpressions: [{key: name, operator: Gt, values: [a]}]}"),
			want: `spec.containerSelector.matchExpressions[0].operator: "Gt" is not a container selector operator (In, NotIn, Exists, DoesNotExist)`},
		{name: "containerSelector In without values", manifest: specWith("containerSelector: {matchExpressions: [{key: name, operator: In}]}"),
			want: `spec.containerSelector.matchExpressions[0].values: required for operator In`},
		{name: "containerSelector Exists with values", manifest: specWith("containerSelector: {matchExpressions: [{key: name, operator: Exists, values: [a]}]}"),
			want: `spec.containerSelector.matchExpressions[0].values: must be empty for operator Exists`},
		{name: "unknown field", manifest: selectorWith(bin + "matchBinary: [{operator: In, values: [/bin/x]}]"),
			want: `unknown field "spec.execs[0].selectors[0].matchBinary"`},
		{name: "Tetragon apiVersion", manifest: strings.Replace(specWith("options: []"), "sluice.io/", "cilium.io/", 1),
			want: `apiVersion: "cilium.io/v1alpha1" is not supported (want sluice.io/v1alpha1)`},
		{name: "Tetragon kind", manifest: strings.Replace(specWith("options: []"), "SluiceTracingPolicy", "TracingPolicy", 1),
			want: `kind: "TracingPolicy" is not a tracing policy kind`},
		{name: "namespace on the cluster kind", manifest: strings.Replace(specWith("options: []"), "{name: p}", "{name: p, namespace: a}", 1),
			want: "metadata.namespace: must be empty for SluiceTracingPolicy (cluster-scoped)"},
	} {
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

// Every problem is reported, in the order of the spec.
func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := Compile(obj(t, `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: p}
spec:
  kprobes: [{call: fd_install}]
  lsmhooks: [{hook: file_open}]
  tracepoints: [{subsystem: sched, event: sched_process_exec}]
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [/bin/x]}]
      matchArgs: [{index: 0}]
      matchActions: [{action: Override}]
`))
	require.Error(t, err)
	assert.Equal(t, `SluiceTracingPolicy/p: spec.kprobes: this kernel has no kprobes (CONFIG_KPROBES is off): not possible on this kernel
spec.lsmhooks: BPF-LSM programs do not load on this kernel: not possible on this kernel
spec.tracepoints[0]: sched/sched_process_exec: only the syscall tracepoints (raw_syscalls, syscalls) run here (spec.execs covers exec): not supported yet by this agent
spec.execs[0].selectors[0].matchArgs: not supported yet by this agent
spec.execs[0].selectors[0].matchActions[0].action: cannot override a return value without kprobes/fmod_ret: not possible on this kernel`,
		err.Error())
}
