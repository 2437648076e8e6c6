package daemon_test

import (
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/test/harness"
)

// newIdleDaemon starts a daemon in a fresh netns without running its
// background loops: only what a test calls changes the kernel.
func newIdleDaemon(t *testing.T) (*daemon.Daemon, *harness.NetNS) {
	t.Helper()
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sl-agent-")
	cfg := daemon.Config{BPFRoot: filepath.Join(harness.BPFFS(t), "sluice"), RunDir: t.TempDir(), NodeName: "node-1", Log: logrus.New()}
	return idleDaemon(t, ns, cfg), ns
}

// idleDaemon starts a daemon with cfg in ns without running its background
// loops, and closes it at the end of the test.
func idleDaemon(t *testing.T, ns *harness.NetNS, cfg daemon.Config) *daemon.Daemon {
	t.Helper()
	var (
		d   *daemon.Daemon
		err error
	)
	ns.Do(t, func() { d, err = daemon.New(cfg) })
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// putLocked hands d the pod default/locked (app=locked) and a policy that
// denies all its ingress, and puts its endpoint (at 10.244.1.5 on h).
func putLocked(t *testing.T, d *daemon.Daemon, h hostIf) api.Endpoint {
	t.Helper()
	setLocked(d, map[string]string{"app": "locked"})
	ep, err := d.PutEndpoint(api.Endpoint{
		ContainerID: "c1", IfName: "eth0", IPv4: "10.244.1.5", MAC: "02:00:00:00:00:05",
		HostIfName: h.name, HostIfIndex: h.index, HostMAC: h.mac.String(),
		PodNamespace: "default", PodName: "locked",
	})
	require.NoError(t, err)
	return ep
}

// setLocked hands d the pod default/locked with labels and the policy
// deny-locked that denies all ingress of pods labelled app=locked.
func setLocked(d *daemon.Daemon, labels map[string]string) {
	d.Identities().SetObjects(identitymgr.Objects{Pods: []*corev1.Pod{{
		ObjectMeta: metav1.ObjectMeta{Name: "locked", Namespace: "default", Labels: labels},
	}}})
	d.Policies().SetObjects([]source.Raw{{
		APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: "default", Name: "deny-locked",
		JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny-locked","namespace":"default"},` +
			`"spec":{"podSelector":{"matchLabels":{"app":"locked"}},"policyTypes":["Ingress"]}}`),
	}})
}

// The endpoint PUT (what CNI ADD waits for) returns only once the pod's
// identity and policy are in the kernel. The daemon's background loops are
// not running here, so nothing but the PUT itself can have written them.
func TestPrivilegedPutEndpointWaitsForIdentityAndPolicy(t *testing.T) {
	d, ns := newIdleDaemon(t)
	ep := putLocked(t, d, addVeth(t, ns, "lxctest0"))

	pc, err := d.Datapath().Policy().Config(ep.ID)
	require.NoError(t, err)
	assert.Equal(t, policymap.Config{IngressEnforced: true}, pc, "deny-all ingress enforced when PUT returns")
	eps, err := d.Datapath().Endpoints().List()
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.GreaterOrEqual(t, eps[0].Identity, uint32(256), "the endpoint carries its allocated identity")
}

// Policy entries of an endpoint that went away while the agent was down are
// pruned by the next full policy sync.
func TestPrivilegedFullPolicySyncPrunesUnknownEndpoints(t *testing.T) {
	d, _ := newIdleDaemon(t)
	var err error

	const gone = 77
	dp := d.Datapath().Policy()
	require.NoError(t, dp.Upsert(gone, policymap.Key{Ingress: true, Identity: 300, Proto: 6, Port: 80, PortPrefixLen: 16}, policymap.Entry{}))
	require.NoError(t, dp.SetConfig(gone, policymap.Config{IngressEnforced: true}))
	ids, err := dp.Endpoints()
	require.NoError(t, err)
	assert.True(t, ids[gone])

	_, err = d.Policies().Sync(false)
	require.NoError(t, err)
	ids, err = dp.Endpoints()
	require.NoError(t, err)
	assert.True(t, ids[gone], "an incremental sync only touches what it wrote")

	_, err = d.Policies().Sync(true)
	require.NoError(t, err)
	ids, err = dp.Endpoints()
	require.NoError(t, err)
	assert.Empty(t, ids, "the full sync pruned the unknown endpoint's policy")
}
