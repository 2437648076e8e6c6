package integration

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/harness"
)

// restartPods are the Pod objects of TestPrivilegedPolicyHeldUntilFirstSnapshot.
const restartPods = `apiVersion: v1
kind: Pod
metadata: {name: locked, namespace: default, labels: {app: locked}}
spec: {containers: [{name: app, image: none}]}
---
apiVersion: v1
kind: Pod
metadata: {name: locked-2, namespace: default, labels: {app: locked}}
spec: {containers: [{name: app, image: none}]}
---
apiVersion: v1
kind: Pod
metadata: {name: open, namespace: default, labels: {app: open}}
spec: {containers: [{name: app, image: none}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bad, namespace: default, labels: {app: bad}}
spec: {containers: [{name: app, image: none}]}
`

// restartPolicies deny every ingress of app=locked (the policy config of
// its endpoint) and deny app=bad into app=open (the peer's identity, from
// the endpoint and IP cache maps).
const restartPolicies = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-locked, namespace: default}
spec:
  podSelector: {matchLabels: {app: locked}}
  policyTypes: [Ingress]
---
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: open-but-bad, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: open}}
  ingress:
  - fromEntities: [cluster]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: bad}}]
`

// A restarted agent whose state source has not delivered its first
// snapshot yet (here the manifests directory's first read is held back; in
// Kubernetes mode, an API server that cannot be reached) leaves the policy
// and identities its predecessor programmed as they are: traffic a policy
// denies stays denied, and a pod added meanwhile is answered only with its
// policy in place.
func TestPrivilegedPolicyHeldUntilFirstSnapshot(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	agent := node.StartAgent(t)
	writeManifest(t, node, "pods.yaml", restartPods)
	writeManifest(t, node, "policy.yaml", restartPolicies)
	require.Eventually(t, func() bool {
		st, err := node.Client().PolicyStatus(context.Background())
		return err == nil && len(st) == 2 && st[0].Accepted && st[1].Accepted
	}, 10*time.Second, 20*time.Millisecond)
	client, locked, open, bad := node.AddPod(t, "client"), node.AddPod(t, "locked"), node.AddPod(t, "open"), node.AddPod(t, "bad")
	servePods(t, client, locked, open, bad)
	requireEnforced := func(when string) {
		t.Helper()
		requireReply(t, client.NS, open.Addr(podPort), "open")
		_, err := harness.Ask(client.NS, locked.Addr(podPort), 500*time.Millisecond)
		require.Error(t, err, "%s: client reached locked", when)
		_, err = harness.Ask(bad.NS, open.Addr(podPort), 500*time.Millisecond)
		require.Error(t, err, "%s: bad reached open", when)
	}
	requireEnforced("before the restart")

	agent.Kill(t)
	release := holdOpen(t, filepath.Join(node.ManifestsDir, "policy.yaml"))
	node.StartAgent(t)
	t.Cleanup(release) // before the agent is stopped: it may wait in open(2)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		requireEnforced("restarted, no snapshot yet")
	}
	type added struct {
		p   *harness.Pod
		err error
	}
	addc := make(chan added, 1)
	go func() {
		p, err := node.TryAddPod(t, "locked-2")
		addc <- added{p, err}
	}()
	select {
	case a := <-addc:
		// Answered before the snapshot: only with its policy in place.
		require.NoError(t, a.err, "CNI ADD before the first snapshot")
		harness.ServeTCP(t, a.p.NS, a.p.Addr(podPort), a.p.Name)
		_, err := harness.Ask(client.NS, a.p.Addr(podPort), 500*time.Millisecond)
		require.Error(t, err, "locked-2 reachable right after ADD answered before the first snapshot")
		addc <- a
	case <-time.After(time.Second):
	}
	requireEnforced("restarted, ADD pending, no snapshot yet")

	release()
	a := <-addc
	require.NoError(t, a.err, "CNI ADD once the snapshot arrived")
	harness.ServeTCP(t, a.p.NS, a.p.Addr(podPort), a.p.Name)
	_, err := harness.Ask(client.NS, a.p.Addr(podPort), 500*time.Millisecond)
	require.Error(t, err, "locked-2 reachable right after ADD")
	require.Eventually(t, func() bool {
		st, err := node.Client().PolicyStatus(context.Background())
		return err == nil && len(st) == 2
	}, 10*time.Second, 20*time.Millisecond, "the snapshot arrived")
	requireEnforced("after the first snapshot")
}

// holdOpen takes a write lease (fcntl F_SETLEASE) on path: until release,
// another process's open(2) of the file blocks, at most
// /proc/sys/fs/lease-break-time (45s by default). The kernel signals the
// breaker with SIGIO, which the Go runtime ignores here (no signal.Notify).
func holdOpen(t *testing.T, path string) (release func()) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK)
	require.NoError(t, err, "take a write lease on %s", path)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
			f.Close()
			require.NoError(t, err, "release the lease on %s", path)
		})
	}
	t.Cleanup(release)
	return release
}
