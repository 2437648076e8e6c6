package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/test/harness"
)

// Tracing policies stay enforced while the agent is down: an exec rule
// (Sigkill of a copy of touch named nc, in pods labelled app=locked) and a
// syscall rule with a binary filter (Sigkill of a copy of cat opening a
// file) kill after the agent crashed (SIGKILL), while the next agent starts
// and takes over, after a normal stop (SIGTERM) and the start after it; the
// policies' removal lifts them. `sluice-agent --cleanup` (uninstall) leaves
// nothing tracing.
func TestPrivilegedTracingPolicyAgentRestart(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	args := harness.AgentOptions{Args: []string{"--process-sensor"}}
	agent := node.StartAgentWith(t, args)
	locked, free := node.AddPod(t, "locked"), node.AddPod(t, "free")
	writeManifest(t, node, "pods.yaml", podYAML(locked, "locked")+podYAML(free, "free"))
	nc := copyBinary(t, "/usr/bin/touch", "nc")
	// A syscall policy with a binary filter too: Sigkill of a copy of cat
	// opening a file of the test's.
	reader := copyBinary(t, "/bin/cat", "reader")
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret\n"), 0o600))
	writeManifest(t, node, "no-nc.yaml", tracingPolicyYAML("no-nc", nc, "enforce"))
	writeManifest(t, node, "kill.yaml", openPolicyYAML("kill-secret", reader, secret, "Sigkill"))
	require.Eventually(t, func() bool {
		_, ran := runMarked(t, locked, nc)
		_, sig := runCat(t, locked, reader, secret)
		return !ran && sig == syscall.SIGKILL
	}, 10*time.Second, 200*time.Millisecond, "the policies kill nc and the reader in pods labelled app=locked")
	killed := func(what string) {
		t.Helper()
		sig, ran := runMarked(t, locked, nc)
		assert.Equal(t, syscall.SIGKILL, sig, "%s: nc killed by SIGKILL (exit 137)", what)
		assert.False(t, ran, "%s: nc never ran", what)
		sig, ran = runMarked(t, free, nc)
		assert.True(t, ran && sig == 0, "%s: nc runs in a pod the policy does not select", what)
		out, sig := runCat(t, locked, reader, secret)
		assert.Equal(t, syscall.SIGKILL, sig, "%s: the reader killed at openat", what)
		assert.Empty(t, out, "%s: killed before it printed the file", what)
		out, sig = runCat(t, free, reader, secret)
		assert.True(t, out == "secret\n" && sig == 0, "%s: the reader reads in a pod the policy does not select", what)
	}
	killed("agent running")

	agent.Kill(t)
	killed("agent crashed")
	done := make(chan struct{})
	go func() {
		defer close(done)
		agent = node.StartAgentWith(t, args)
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		sig, ran := runMarked(t, locked, nc)
		require.True(t, sig == syscall.SIGKILL && !ran, "nc killed while the next agent starts")
		_, sig = runCat(t, locked, reader, secret)
		require.Equal(t, syscall.SIGKILL, sig, "the reader killed while the next agent starts")
	}
	killed("agent restarted")
	// The restarted agent has applied the policy again: still killed.
	time.Sleep(time.Second)
	killed("policy re-applied")

	agent.Stop(t)
	killed("agent stopped")
	agent = node.StartAgentWith(t, args)
	killed("agent started again")

	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "no-nc.yaml")))
	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "kill.yaml")))
	require.Eventually(t, func() bool {
		_, ran := runMarked(t, locked, nc)
		_, sig := runCat(t, locked, reader, secret)
		return ran && sig == 0
	}, 10*time.Second, 200*time.Millisecond, "no policy, no kill")

	// Uninstall: the policy is back, the agent stops, --cleanup unpins.
	writeManifest(t, node, "no-nc.yaml", tracingPolicyYAML("no-nc", nc, "enforce"))
	require.Eventually(t, func() bool { _, ran := runMarked(t, locked, nc); return !ran }, 10*time.Second, 200*time.Millisecond,
		"the policy is back")
	agent.Stop(t)
	out, err := exec.Command(harness.Bin(t, "sluice-agent"), "--cleanup", "--bpf-root", node.BPFRoot).CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = os.Stat(pin.LinkDir(node.BPFRoot, pin.TracingLinksName))
	assert.ErrorIs(t, err, os.ErrNotExist, "the sensor's links are unpinned")
	// An unpinned link detaches once the kernel frees it (after an RCU
	// grace period and a work item): moments, not at once.
	require.Eventually(t, func() bool { sig, ran := runMarked(t, locked, nc); return ran && sig == 0 }, 5*time.Second,
		100*time.Millisecond, "after --cleanup nothing kills nc")
}
