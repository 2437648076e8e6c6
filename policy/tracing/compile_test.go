package tracing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/policy"
)

func obj(t testing.TB, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(manifest), &u.Object))
	return u
}

const fullPolicy = `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: no-nc}
spec:
  podSelector: {matchLabels: {app: locked}}
  execs:
  - selectors:
    - matchBinaries:
      - {operator: In, values: [/usr/bin/nc, /bin/nc], followChildren: true}
      matchActions: [{action: Sigkill}]
    - matchBinaries: [{operator: Prefix, values: [/tmp/]}]
      matchActions: [{action: Signal, argSig: 15}]
  - selectors:
    - matchBinaries: [{operator: NotIn, values: [/bin/sh]}]
      matchActions: [{action: Post, rateLimitScope: process}]
    - matchBinaries: [{operator: In, values: [/bin/true]}]
      matchActions: [{action: NoPost}]
    - matchBinaries: [{operator: In, values: [/bin/false]}]
`

func TestCompileFullPolicy(t *testing.T) {
	c, err := Compile(obj(t, fullPolicy))
	require.NoError(t, err)
	want := &Compiled{
		Ref:         Ref{Kind: KindTracingPolicy, Name: "no-nc"},
		Mode:        ModeEnforce,
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "locked"}},
		Execs: []ExecSelector{
			{Binaries: []BinaryMatch{{Op: BinaryIn, Values: []string{"/usr/bin/nc", "/bin/nc"}, FollowChildren: true}},
				Action: ActionSigkill, Signal: 9},
			{Binaries: []BinaryMatch{{Op: BinaryPrefix, Values: []string{"/tmp/"}}}, Action: ActionSignal, Signal: 15},
			{Binaries: []BinaryMatch{{Op: BinaryNotIn, Values: []string{"/bin/sh"}}}, Action: ActionPost},
			{Binaries: []BinaryMatch{{Op: BinaryIn, Values: []string{"/bin/true"}}}, Action: ActionNoPost},
			{Binaries: []BinaryMatch{{Op: BinaryIn, Values: []string{"/bin/false"}}}, Action: ActionPost},
		},
	}
	assert.Equal(t, want, c)
	assert.Equal(t, "SluiceTracingPolicy/no-nc", c.Ref.String())
}

func TestCompileNamespaced(t *testing.T) {
	const m = `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicyNamespaced
metadata: {name: no-nc, namespace: team-a}
spec:
  options: [{name: policy-mode, value: monitor}]
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [/usr/bin/nc]}]
      matchActions: [{action: Sigkill}]
`
	c, err := Compile(obj(t, m))
	require.NoError(t, err)
	assert.Equal(t, Ref{Kind: KindTracingPolicyNamespaced, Namespace: "team-a", Name: "no-nc"}, c.Ref)
	assert.Equal(t, ModeMonitor, c.Mode)
	assert.Nil(t, c.PodSelector)
	assert.Equal(t, []ExecSelector{{Binaries: []BinaryMatch{{Op: BinaryIn, Values: []string{"/usr/bin/nc"}}},
		Action: ActionSigkill, Signal: 9}}, c.Execs)
	assert.Equal(t, "SluiceTracingPolicyNamespaced/team-a/no-nc", c.Ref.String())

	u := obj(t, m)
	u.SetNamespace("")
	_, err = Compile(u)
	require.ErrorContains(t, err, "metadata.namespace: required for SluiceTracingPolicyNamespaced")
}

func TestCompilePolicyMode(t *testing.T) {
	for _, tc := range []struct {
		options string
		mode    Mode
		err     string
	}{
		{options: `[]`, mode: ModeEnforce},
		{options: `[{name: policy-mode, value: enforce}]`, mode: ModeEnforce},
		{options: `[{name: policy-mode, value: monitor}]`, mode: ModeMonitor},
		{options: `[{name: policy-mode, value: audit}]`,
			err: `spec.options[0].value: policy-mode "audit" is not enforce or monitor`},
		{options: `[{name: policy-mode, value: monitor}, {name: policy-mode, value: monitor}]`,
			err: `spec.options[1].name: policy-mode given twice`},
		{options: `[{name: disable-kprobe-multi, value: "1"}]`,
			err: `spec.options[0].name: unknown option "disable-kprobe-multi" (known: policy-mode)`},
	} {
		t.Run(tc.options, func(t *testing.T) {
			c, err := Compile(obj(t, `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: p}
spec:
  options: `+tc.options+`
  execs: [{selectors: [{matchBinaries: [{operator: In, values: [/bin/x]}]}]}]
`))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.mode, c.Mode)
		})
	}
}

// Tetragon's documentation example of a kprobe policy (fd_install, killing
// the process that opens a file), with only apiVersion and kind changed.
const tetragonKprobe = `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata:
  name: "fd-install"
spec:
  kprobes:
  - call: "fd_install"
    syscall: false
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "file"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "/tmp/tetragon"
      matchActions:
      - action: Sigkill
`

func TestCompileTetragonKprobePolicyRejected(t *testing.T) {
	_, err := Compile(obj(t, tetragonKprobe))
	require.Error(t, err)
	assert.Equal(t, "SluiceTracingPolicy/fd-install: spec.kprobes: this kernel has no kprobes (CONFIG_KPROBES is off): "+
		"not possible on this kernel", err.Error())
	assert.ErrorIs(t, err, ErrKernel)
	var fe *policy.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "spec.kprobes", fe.Path)
}

// A Tetragon documentation policy that uses only a tracepoint (lseek with
// whence 4444, killed): phase 1 rejected it as not supported yet; it
// compiles now. Its matchArgs index 7 is the format index of its one arg.
func TestCompileTetragonLseekPolicy(t *testing.T) {
	c, err := Compile(obj(t, `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicyNamespaced
metadata: {name: lseek-namespaced, namespace: default}
spec:
  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_lseek"
    args:
    - index: 7
      type: "int"
    selectors:
    - matchArgs:
      - index: 7
        operator: "Equal"
        values:
        - "4444"
      matchActions:
      - action: Sigkill
`))
	require.NoError(t, err)
	whence := SyscallValue{Source: SourceSyscallArg, Index: 2, Type: TypeInt, Signed: true, Size: 4, Label: "whence"}
	assert.Equal(t, []Tracepoint{{
		Subsystem: "syscalls", Event: "sys_enter_lseek", Syscalls: []uint32{8},
		Capture: []SyscallValue{whence},
		Selectors: []TracepointSelector{{
			Args:   []ArgMatch{{Value: whence, Op: OpEqual, Ints: []uint64{4444}}},
			Action: ActionSigkill, Signal: 9,
		}},
	}}, c.Tracepoints)
}

func TestCompileEmptyPolicyRejected(t *testing.T) {
	_, err := Compile(obj(t, `
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: empty}
spec: {podSelector: {matchLabels: {app: a}}}
`))
	require.ErrorContains(t, err, "SluiceTracingPolicy/empty: spec.execs: required: the policy has nothing to enforce or monitor")

	_, err = Compile(obj(t, `{apiVersion: sluice.io/v1alpha1, kind: SluiceTracingPolicy, metadata: {name: nospec}}`))
	require.ErrorContains(t, err, "SluiceTracingPolicy/nospec: spec: required")
}
