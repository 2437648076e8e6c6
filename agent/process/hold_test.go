package process

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// holdFixture: process 1 on the host, process 100 (cgroup 55) the first
// process of container testCID of pod web-1, whose Pod object does not list
// the container yet.
func holdFixture(t *testing.T, hold time.Duration) (*fixture, *Association, *corev1.Pod) {
	root := t.TempDir()
	writeProcCgroup(t, root, "100", "0::/kubepods/besteffort/pod"+testUID+"/"+testCID+"\n")
	a := NewAssociation(AssociationConfig{ProcRoot: root, Kubernetes: true, HostNetNS: 3})
	pod := testPod("default", "web-1", map[string]string{"app": "web"}, nil)
	starting := pod.DeepCopy()
	starting.Status.ContainerStatuses = starting.Status.ContainerStatuses[:1] // "side" only
	a.SetPods([]*corev1.Pod{starting})
	f := newFixture(t, Config{Pods: a, HostNS: procsensor.Namespaces{Net: 3}, HoldUnnamed: hold})
	f.seedChain(t, 1)
	return f, a, pod
}

func containerExec(tgid, parent uint32, binary string) *procsensor.Exec {
	e := execOf(tgid, parent, binary)
	e.CgroupID, e.NS.Net = 55, 4
	return e
}

// The events of a container's first process wait until the Pod's status
// names the container, then go out in order, named; other processes'
// events are not held.
func TestHoldUntilContainerNamed(t *testing.T) {
	f, a, pod := holdFixture(t, time.Minute)
	f.m.Handle(procsensor.Event{Exec: containerExec(100, 1, "/bin/app")})
	f.fork(101, 100)
	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{Key: key(101), Proto: 6, NetNS: 4}})
	f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Time: t0, Key: key(101)}})
	f.exec(2, 1, "/bin/host") // not held
	f.m.releaseHeld(time.Now(), false)
	assert.Empty(t, f.rec.take(), "still unnamed: held")

	a.SetPods([]*corev1.Pod{pod}) // the kubelet's status update
	f.m.releaseHeld(time.Now(), false)
	evs := f.rec.take()
	require.Len(t, evs, 3)
	assert.Equal(t, []string{api.EventProcessExec, api.EventProcessConnect, api.EventProcessExit},
		[]string{evs[0].Kind(), evs[1].Kind(), evs[2].Kind()})
	for _, p := range []*api.Process{evs[0].ProcessExec.Process, evs[1].ProcessConnect.Process, evs[2].ProcessExit.Process, evs[2].ProcessExit.Parent} {
		require.NotNil(t, p.Pod)
		require.NotNil(t, p.Pod.Container)
		assert.Equal(t, "app", p.Pod.Container.Name, "pid %d", p.PID)
		assert.Equal(t, "docker.io/library/nginx:1.27", p.Pod.Container.Image.Name)
	}
	p, _, ok := f.m.Get(ExecID(testNode, key(100)))
	require.True(t, ok)
	assert.Equal(t, "app", p.Pod.Container.Name, "the cached process is named too")
	assert.Equal(t, 1.0, f.metricLabel(t, "sluice_process_events_held_pods_total", "named"))

	// Later events are not held.
	f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Time: t0, Key: key(100)}})
	ev := f.rec.last(t).ProcessExit
	assert.Equal(t, "app", ev.Process.Pod.Container.Name)
}

// A container the Pod never names: its events go out unnamed after the
// hold time, and when the manager stops.
func TestHoldTimesOut(t *testing.T) {
	f, _, _ := holdFixture(t, 50*time.Millisecond)
	f.m.Handle(procsensor.Event{Exec: containerExec(100, 1, "/bin/app")})
	f.m.releaseHeld(time.Now(), false)
	assert.Empty(t, f.rec.take())
	f.m.releaseHeld(time.Now().Add(time.Second), false)
	ev := f.rec.last(t).ProcessExec
	assert.Equal(t, testCID, ev.Process.Pod.Container.ID)
	assert.Empty(t, ev.Process.Pod.Container.Name)
	assert.Equal(t, 1.0, f.metricLabel(t, "sluice_process_events_held_pods_total", "timeout"))

	f.m.Handle(procsensor.Event{Exec: containerExec(102, 1, "/bin/app2")})
	f.m.releaseHeld(time.Now(), true)
	assert.Equal(t, "/bin/app2", f.rec.last(t).ProcessExec.Process.Binary, "flushed")

	off, _, _ := holdFixture(t, -1)
	off.m.Handle(procsensor.Event{Exec: containerExec(100, 1, "/bin/app")})
	assert.Equal(t, "/bin/app", off.rec.last(t).ProcessExec.Process.Binary, "holding off")
}

// metricLabel returns the value of a counter vector's series whose only
// label has value v (0 when absent).
func (f *fixture) metricLabel(t testing.TB, name, v string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == v {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
