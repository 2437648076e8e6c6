package process

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

// A process that nsenter'ed into the network namespace of an endpoint is
// attributed to the endpoint's pod; the host's namespaces are not a pod's.
func TestPrivilegedAssociationNetNS(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "proc")
	cmd := ns.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	host, err := HostNamespaces("/proc")
	require.NoError(t, err)
	nsIno, err := NSInode(ns.Path())
	require.NoError(t, err)
	require.NotEqual(t, host.Net, nsIno)
	// nsenter execs sleep in the same process once it entered the namespace.
	var procIno uint32
	require.Eventually(t, func() bool {
		procIno, err = NSInode(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		return err == nil && procIno == nsIno
	}, 5*time.Second, 10*time.Millisecond, "sleep in %s", ns.Name)

	eps := &endpointList{}
	eps.set(api.Endpoint{ContainerID: "c1", IfName: "eth0", NetNS: ns.Path(), PodNamespace: "default", PodName: "web-1"})
	a := NewAssociation(AssociationConfig{Endpoints: eps, HostNetNS: host.Net})
	a.SetPods([]*corev1.Pod{testPod("default", "web-1", map[string]string{"app": "web"}, owned("ReplicaSet", "web-5d4b9c7f8"))})

	f := newFixture(t, Config{Pods: a, HostNS: host})
	e := execOf(uint32(cmd.Process.Pid), 0, "/usr/bin/sleep", "60")
	e.NS = procsensor.Namespaces{PID: host.PID, Mnt: host.Mnt, Net: procIno}
	f.m.Handle(procsensor.Event{Exec: e})
	p := f.rec.last(t).ProcessExec.Process
	require.NotNil(t, p.Pod)
	assert.Equal(t, "default", p.Pod.Namespace)
	assert.Equal(t, "web-1", p.Pod.Name)
	assert.Equal(t, map[string]string{"app": "web"}, p.Pod.Labels)
	assert.Equal(t, "ReplicaSet", p.Pod.WorkloadKind)
	assert.True(t, p.NS.PID.IsHost)
	assert.False(t, p.NS.Net.IsHost)

	assert.Nil(t, a.PodFor(0, 0, host.Net), "host")
	self, err := NSInode("/proc/self/ns/net")
	require.NoError(t, err)
	assert.Nil(t, a.PodFor(0, 0, self), "the test's own namespace is no endpoint's")

	// The endpoint goes away: its namespace is no pod's any more.
	eps.set()
	a.EndpointsChanged()
	assert.Nil(t, a.PodFor(0, 0, procIno))
}
