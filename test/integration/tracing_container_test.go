package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// containerID returns a random container id (64 hex digits).
func containerID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// runMarkedIn is runMarked with the binary started straight into the
// cgroup v2 directory cg (a "container" of pod p).
func runMarkedIn(t *testing.T, p *harness.Pod, cg, bin string) (sig syscall.Signal, ran bool) {
	t.Helper()
	marker := filepath.Join(t.TempDir(), "ran")
	cmd, release, err := harness.CommandIn(p.NS, cg, bin, marker)
	require.NoError(t, err)
	defer release()
	err = cmd.Run()
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

// multiPodYAML is pod p labelled app=locked whose status lists two
// containers, app and sidecar, with their ids (as the kubelet reports
// them): in standalone mode the manifest gives the agent what Kubernetes
// would.
func multiPodYAML(p *harness.Pod, appID, sidecarID string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default, labels: {app: locked}}
spec:
  containers:
  - {name: app, image: none}
  - {name: sidecar, image: none}
status:
  containerStatuses:
  - {name: app, image: docker.io/library/app:1, containerID: "containerd://%s"}
  - {name: sidecar, image: docker.io/library/sidecar:1, containerID: "containerd://%s"}
`, p.Name, appID, sidecarID)
}

// A containerSelector narrows an exec-prevention policy to one container of
// a pod: two "containers" of one simulated pod (two cgroups of the test's
// under the node's cgroup, the agent's cgroup root; one network namespace)
// run a binary (a copy of touch named nc, in the test's directory), killed
// in the selected container only, and a process of the pod's netns outside
// both containers (as nsenter would start) is not selected either. When the
// container restarts (a new id in the pod's status, a new cgroup) the scope
// follows it and leaves the old cgroup.
func TestPrivilegedTracingPolicyContainerSelector(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor"}})
	p := node.AddPod(t, "multi")
	appID, sidecarID := containerID(t), containerID(t)
	// The two kubelet layouts: cgroupfs (the id) and systemd (a scope).
	appCg, _ := harness.SubCgroup(t, node.Cgroup, appID)
	sidecarCg, _ := harness.SubCgroup(t, node.Cgroup, "cri-containerd-"+sidecarID+".scope")
	writeManifest(t, node, "pods.yaml", multiPodYAML(p, appID, sidecarID))
	nc := copyBinary(t, "/usr/bin/touch", "nc")
	sig, ran := runMarkedIn(t, p, appCg, nc)
	require.True(t, ran && sig == 0, "no policy: nc runs in container app")

	writeManifest(t, node, "no-nc.yaml", fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: no-nc-app}
spec:
  podSelector: {matchLabels: {app: locked}}
  containerSelector:
    matchExpressions: [{key: name, operator: In, values: [app]}]
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [%q]}]
      matchActions: [{action: Sigkill}]
`, nc))
	require.Eventually(t, func() bool { _, ran := runMarkedIn(t, p, appCg, nc); return !ran }, 10*time.Second, 200*time.Millisecond,
		"the policy kills nc in container app")
	sig, ran = runMarkedIn(t, p, appCg, nc)
	assert.Equal(t, syscall.SIGKILL, sig, "killed by SIGKILL (exit 137)")
	assert.False(t, ran, "the binary never ran: no marker")
	sig, ran = runMarkedIn(t, p, sidecarCg, nc)
	assert.True(t, ran && sig == 0, "nc runs in container sidecar of the same pod (same netns)")
	sig, ran = runMarked(t, p, nc)
	assert.True(t, ran && sig == 0, "nc runs in the pod's netns outside its containers")
	require.Eventually(t, func() bool {
		for _, tp := range tracepointEvents(t, node, nc) {
			if tp.Enforced && tp.PolicyName == "no-nc-app" && tp.Process.Pod != nil && tp.Process.Pod.Name == "multi" {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "an enforced event naming the policy and the pod")

	// Container app restarts: a new id, a new cgroup.
	restartedID := containerID(t)
	restartedCg, _ := harness.SubCgroup(t, node.Cgroup, restartedID)
	writeManifest(t, node, "pods.yaml", multiPodYAML(p, restartedID, sidecarID))
	require.Eventually(t, func() bool { _, ran := runMarkedIn(t, p, restartedCg, nc); return !ran }, 10*time.Second, 200*time.Millisecond,
		"the scope follows the restarted container")
	require.Eventually(t, func() bool { _, ran := runMarkedIn(t, p, appCg, nc); return ran }, 10*time.Second, 200*time.Millisecond,
		"the old container's cgroup leaves the scope")
	sig, ran = runMarkedIn(t, p, sidecarCg, nc)
	assert.True(t, ran && sig == 0, "still not in sidecar")

	entries := func() api.TracingRuleEntries {
		es, err := node.Client().TracingRuleEntries(context.Background())
		require.NoError(t, err)
		return es
	}
	es := entries()
	assert.Equal(t, 1, es["exec.cgscope"], "one cgroup scope: the restarted container's")
	assert.Zero(t, es["exec.scope"], "no netns scope")

	// Removing the policy removes its cgroup scope entries.
	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "no-nc.yaml")))
	require.Eventually(t, func() bool { _, ran := runMarkedIn(t, p, restartedCg, nc); return ran }, 10*time.Second, 200*time.Millisecond,
		"no policy: runs again")
	require.Eventually(t, func() bool { es := entries(); return es["exec.cgscope"] == 0 && es["exec.slots"] == 0 },
		5*time.Second, 100*time.Millisecond, "every exec rule entry removed")
}
