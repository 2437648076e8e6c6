package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// runMarked runs bin (a copy of touch) in pod p to create a marker file and
// returns the signal that ended it (0 when it exited) and whether the marker
// exists: a binary killed at exec never runs an instruction of its own, so
// it never creates it.
func runMarked(t *testing.T, p *harness.Pod, bin string) (sig syscall.Signal, ran bool) {
	t.Helper()
	marker := filepath.Join(t.TempDir(), "ran")
	err := p.NS.Command(bin, marker).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sig = ws.Signal()
		}
	default:
		require.NoError(t, err)
	}
	_, serr := os.Stat(marker)
	return sig, serr == nil
}

func tracingPolicyYAML(name, bin, mode string) string {
	return fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: %s}
spec:
  options: [{name: policy-mode, value: %s}]
  podSelector: {matchLabels: {app: locked}}
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [%q]}]
      matchActions: [{action: Sigkill}]
`, name, mode, bin)
}

// tracepointEvents returns the policy events of the agent's history for
// binary.
func tracepointEvents(t *testing.T, node *harness.Node, binary string) []*api.ProcessTracepoint {
	t.Helper()
	var out []*api.ProcessTracepoint
	for _, ev := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessTracepoint}}) {
		if tp := ev.ProcessTracepoint; tp != nil && len(tp.Args) > 0 && tp.Args[0].StringArg != nil && *tp.Args[0].StringArg == binary {
			out = append(out, tp)
		}
	}
	return out
}

// An exec-prevention policy kills a binary (a copy of touch named nc, in
// the test's own directory) in pods labelled app=locked before it runs one
// instruction, and lets it run elsewhere; monitor mode reports without
// killing; set-mode switches live; a kprobes policy is rejected with its
// reason while the other keeps working; removing the policy removes every
// exec rule entry it added.
func TestPrivilegedTracingPolicyExecPrevention(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor"}})
	locked, free := node.AddPod(t, "locked"), node.AddPod(t, "free")
	writeManifest(t, node, "pods.yaml", podYAML(locked, "locked")+podYAML(free, "free"))
	nc := copyBinary(t, "/usr/bin/touch", "nc")
	sig, ran := runMarked(t, locked, nc)
	require.True(t, ran && sig == 0, "no policy: nc runs in pod locked")
	ctx := context.Background()

	writeManifest(t, node, "no-nc.yaml", tracingPolicyYAML("no-nc", nc, "enforce"))
	require.Eventually(t, func() bool { _, ran := runMarked(t, locked, nc); return !ran }, 10*time.Second, 200*time.Millisecond,
		"the policy kills nc in pods labelled app=locked")
	sig, ran = runMarked(t, locked, nc)
	assert.Equal(t, syscall.SIGKILL, sig, "killed by SIGKILL (exit 137)")
	assert.False(t, ran, "the binary never ran: no marker")
	sig, ran = runMarked(t, free, nc)
	assert.True(t, ran && sig == 0, "nc runs in a pod the policy does not select")
	require.Eventually(t, func() bool {
		for _, tp := range tracepointEvents(t, node, nc) {
			if tp.Enforced && tp.PolicyName == "no-nc" && tp.Process.Pod != nil && tp.Process.Pod.Name == "locked" {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "an enforced process_tracepoint event naming the policy and the pod")

	// Monitor mode, set live: reported, not carried out; and back.
	_, err := node.Client().SetTracingPolicyMode(ctx, "", "no-nc", "monitor")
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ran := runMarked(t, locked, nc); return ran }, 10*time.Second, 200*time.Millisecond,
		"monitor mode does not kill")
	// Each try runs nc again: a run during the switch itself (the slot is
	// out of the pod's scope while its rule is rewritten, tracingmgr's
	// table.unscope) runs unreported.
	require.Eventually(t, func() bool {
		if _, ran := runMarked(t, locked, nc); !ran {
			return false
		}
		for _, tp := range tracepointEvents(t, node, nc) {
			if !tp.Enforced && tp.PolicyName == "no-nc" {
				return true
			}
		}
		return false
	}, 10*time.Second, 200*time.Millisecond, "monitor mode runs nc and reports what it would have done")
	_, err = node.Client().SetTracingPolicyMode(ctx, "", "no-nc", "enforce")
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ran := runMarked(t, locked, nc); return !ran }, 10*time.Second, 200*time.Millisecond,
		"enforce again")

	// A kprobes policy is rejected with its reason; the other keeps working.
	writeManifest(t, node, "kprobe.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: fd-install}
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args: [{index: 0, type: int}, {index: 1, type: file}]
`)
	require.Eventually(t, func() bool {
		p, err := node.Client().TracingPolicy(ctx, "", "fd-install")
		return err == nil && !p.Accepted && strings.Contains(p.Reason, "kprobes")
	}, 10*time.Second, 100*time.Millisecond, "the kprobes policy is rejected, naming the field")
	p, err := node.Client().TracingPolicy(ctx, "", "no-nc")
	require.NoError(t, err)
	assert.True(t, p.Accepted)
	assert.Positive(t, p.ActionsEnforced)
	assert.Positive(t, p.ActionsMonitored)
	_, ran = runMarked(t, locked, nc)
	assert.False(t, ran, "the accepted policy still kills")

	// Removing the policy removes its rules: nc runs again.
	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "no-nc.yaml")))
	require.Eventually(t, func() bool { _, ran := runMarked(t, locked, nc); return ran }, 10*time.Second, 200*time.Millisecond,
		"no policy, no kill")
}
