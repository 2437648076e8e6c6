package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// openPolicyYAML watches openat of file by bin in pods labelled app=locked
// (Tetragon's file-monitoring shape on syscalls/sys_enter_openat: format
// field 6 is the filename, 7 the flags) with action.
func openPolicyYAML(name, bin, file, action string) string {
	return fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: %s}
spec:
  podSelector: {matchLabels: {app: locked}}
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - {index: 6, type: string, label: filename}
    - {index: 7, type: int, label: flags}
    selectors:
    - matchBinaries: [{operator: In, values: [%q]}]
      matchArgs: [{index: 0, operator: Equal, values: [%q]}]
      matchActions: [{action: %s}]
`, name, bin, file, action)
}

// openEvents returns the syscall events of policy in the agent's history
// whose first argument is file.
func openEvents(t *testing.T, node *harness.Node, policy, file string) []*api.ProcessTracepoint {
	t.Helper()
	return openEventsSince(t, node, policy, file, time.Time{})
}

// openEventsSince is openEvents of the events stamped after since (the
// node's history keeps a bounded number of events of every process on the
// machine: on a busy machine older ones leave it, so counts go down).
func openEventsSince(t *testing.T, node *harness.Node, policy, file string, since time.Time) []*api.ProcessTracepoint {
	t.Helper()
	var out []*api.ProcessTracepoint
	for _, ev := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessTracepoint}, Policy: policy}) {
		if ev.Time.Before(since) {
			continue
		}
		tp := ev.ProcessTracepoint
		if len(tp.Args) > 0 && tp.Args[0].StringArg != nil && *tp.Args[0].StringArg == file {
			out = append(out, tp)
		}
	}
	return out
}

// runCat runs bin (a copy of cat) on file in pod p and returns its output
// and the signal that ended it (0 when it exited).
func runCat(t *testing.T, p *harness.Pod, bin, file string) (string, syscall.Signal) {
	t.Helper()
	out, err := p.NS.Command(bin, file).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return string(out), ws.Signal()
		}
	}
	require.NoError(t, err, "%s %s", bin, file)
	return string(out), 0
}

// A syscall tracepoint policy: an openat of the watched file by the selected
// binary in a selected pod posts an event with the path and flags; other
// paths, other binaries and other pods post nothing; Sigkill kills the
// reader before it prints the file (the open itself completes, as
// documented); removing the policy stops both.
func TestPrivilegedTracingPolicySyscallOpenat(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor"}})
	locked, free := node.AddPod(t, "locked"), node.AddPod(t, "free")
	writeManifest(t, node, "pods.yaml", podYAML(locked, "locked")+podYAML(free, "free"))
	reader, other := copyBinary(t, "/bin/cat", "reader"), copyBinary(t, "/bin/cat", "other")
	dir := t.TempDir()
	shadow, hosts, secret := filepath.Join(dir, "shadow"), filepath.Join(dir, "hosts"), filepath.Join(dir, "secret")
	for _, f := range []string{shadow, hosts, secret} {
		require.NoError(t, os.WriteFile(f, []byte("content of "+filepath.Base(f)+"\n"), 0o600))
	}

	writeManifest(t, node, "watch.yaml", openPolicyYAML("watch-shadow", reader, shadow, "Post"))
	require.Eventually(t, func() bool {
		runCat(t, locked, reader, shadow)
		return len(openEvents(t, node, "watch-shadow", shadow)) > 0
	}, 10*time.Second, 200*time.Millisecond, "an openat of the watched file posts an event")
	ev := openEvents(t, node, "watch-shadow", shadow)[0]
	assert.Equal(t, "syscalls", ev.Subsys)
	assert.Equal(t, "sys_enter_openat", ev.Event)
	assert.Equal(t, "openat", ev.Syscall)
	assert.Equal(t, reader, ev.Process.Binary)
	require.NotNil(t, ev.Process.Pod)
	assert.Equal(t, "locked", ev.Process.Pod.Name)
	require.Len(t, ev.Args, 2)
	require.NotNil(t, ev.Args[1].IntArg, "flags captured as an int")
	assert.Equal(t, int64(syscall.O_RDONLY), *ev.Args[1].IntArg&3, "cat opens read-only")
	assert.Equal(t, "filename", ev.Args[0].Label)

	// Nothing for another path, another binary, another pod.
	out, sig := runCat(t, locked, reader, hosts)
	assert.Equal(t, "content of hosts\n", out)
	assert.Zero(t, sig)
	runCat(t, locked, other, shadow)
	runCat(t, free, reader, shadow)
	fence := time.Now()
	runCat(t, locked, reader, shadow) // a matching one after them, as a fence
	require.Eventually(t, func() bool { return len(openEventsSince(t, node, "watch-shadow", shadow, fence)) > 0 }, 5*time.Second,
		100*time.Millisecond, "the fence arrives")
	assert.Empty(t, openEvents(t, node, "watch-shadow", hosts), "another path posts nothing")
	for _, e := range openEvents(t, node, "watch-shadow", shadow) {
		assert.Equal(t, reader, e.Process.Binary, "another binary posts nothing")
		assert.Equal(t, "locked", e.Process.Pod.Name, "another pod posts nothing")
	}

	// Sigkill: the reader dies before it prints the secret.
	writeManifest(t, node, "kill.yaml", openPolicyYAML("kill-secret", reader, secret, "Sigkill"))
	require.Eventually(t, func() bool { _, sig := runCat(t, locked, reader, secret); return sig == syscall.SIGKILL }, 10*time.Second,
		200*time.Millisecond, "Sigkill on openat of the secret")
	requireRuleEntries(t, node, "syscall.slots", "syscall.nrs", "syscall.strings", "syscall.scope", "class.exact", "class.procs")
	out, sig = runCat(t, locked, reader, secret)
	assert.Equal(t, syscall.SIGKILL, sig)
	assert.Empty(t, out, "killed before it printed the file")
	out, sig = runCat(t, free, reader, secret)
	assert.Equal(t, "content of secret\n", out, "not in a pod the policy does not select")
	assert.Zero(t, sig)
	require.Eventually(t, func() bool {
		for _, e := range openEvents(t, node, "kill-secret", secret) {
			if e.Enforced && e.Action == "KPROBE_ACTION_SIGKILL" {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "an enforced sigkill event")

	// Removing the policies removes their rules.
	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "kill.yaml")))
	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "watch.yaml")))
	require.Eventually(t, func() bool { _, sig := runCat(t, locked, reader, secret); return sig == 0 }, 10*time.Second,
		200*time.Millisecond, "no policy, no kill")
	removed := time.Now()
	runCat(t, locked, reader, shadow)
	time.Sleep(500 * time.Millisecond) // no fence exists without a policy: give a stray event time to arrive
	assert.Empty(t, openEventsSince(t, node, "watch-shadow", shadow, removed), "no policy, no event")
	requireRuleEntries(t, node) // removing the policies removed every entry they added
}

// A Tetragon policy that uses only tracepoints (raw_syscalls/sys_enter with
// the syscall id as a syscall64 argument, a list of syscalls and InMap, as
// in Tetragon's documentation) applies after the apiVersion and kind
// change; its binary filter names the test's own copy of bash.
func TestPrivilegedTracingPolicyTetragonRawSyscalls(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor"}})
	pod := node.AddPod(t, "p")
	writeManifest(t, node, "pods.yaml", podYAML(pod, "p"))
	sh := copyBinary(t, "/bin/bash", "dupper")
	writeManifest(t, node, "dups.yaml", fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata:
  name: "syscalls-dup"
spec:
  lists:
  - name: "dups"
    type: "syscalls"
    values:
    - "sys_dup"
    - "sys_dup2"
    - "sys_dup3"
  tracepoints:
  - subsystem: "raw_syscalls"
    event: "sys_enter"
    args:
    - index: 4
      type: "syscall64"
    - index: 5
      type: "uint64"
    selectors:
    - matchArgs:
      - index: 0
        operator: "InMap"
        values:
        - "list:dups"
      - index: 1
        operator: "Equal"
        values:
        - 7
      matchBinaries:
      - operator: "In"
        values:
        - %q
`, sh))
	require.Eventually(t, func() bool {
		// exec 9>&7 is dup2(7, 9) in bash (fd 7 opened first).
		require.NoError(t, pod.NS.Command(sh, "-c", "exec 7</dev/null; exec 9>&7; exec 8</dev/null; exec 9>&8").Run())
		for _, ev := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessTracepoint}, Policy: "syscalls-dup"}) {
			tp := ev.ProcessTracepoint
			if tp.Process.Binary != sh || len(tp.Args) != 2 || tp.Args[1].SizeArg == nil {
				continue
			}
			if tp.Syscall == "dup2" && *tp.Args[1].SizeArg == 7 {
				return true
			}
		}
		return false
	}, 10*time.Second, 200*time.Millisecond, "dup2(7, 9) posts an event; dup2(8, 9) is filtered out by the second matchArgs")
	for _, ev := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessTracepoint}, Policy: "syscalls-dup"}) {
		tp := ev.ProcessTracepoint
		assert.Equal(t, sh, tp.Process.Binary)
		assert.Contains(t, []string{"dup", "dup2", "dup3"}, tp.Syscall)
		if assert.Len(t, tp.Args, 2) && assert.NotNil(t, tp.Args[1].SizeArg) {
			assert.Equal(t, uint64(7), *tp.Args[1].SizeArg, "only the first argument 7 passes")
		}
	}
}
