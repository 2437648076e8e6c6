package tracingmgr

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

func containerName(op metav1.LabelSelectorOperator, names ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "name", Operator: op, Values: names}}}
}

// cid is a container id (64 hex digits) made of one repeated character.
func cid(c string) string { return strings.Repeat(c, 64) }

var containerTests = compiler{
	// app=locked pods, their containers named web.
	"locked-web": {Mode: tracing.ModeEnforce, PodSelector: locked, ContainerSelector: containerName(metav1.LabelSelectorOpIn, "web"),
		Execs: []tracing.ExecSelector{sigkill("/usr/bin/nc")}},
	// Every pod, its containers named web (cluster kind: not global).
	"any-web": {Mode: tracing.ModeEnforce, ContainerSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "web"}},
		Execs: []tracing.ExecSelector{sigkill("/bin/sh")}},
	// The namespace's pods, their containers not named web.
	"not-web": {Mode: tracing.ModeEnforce, ContainerSelector: containerName(metav1.LabelSelectorOpNotIn, "web"),
		Execs: []tracing.ExecSelector{sigkill("/bin/cat")}},
	// Every container of app=locked pods.
	"locked-all": {Mode: tracing.ModeEnforce, PodSelector: locked, ContainerSelector: &metav1.LabelSelector{},
		Execs: []tracing.ExecSelector{sigkill("/bin/ls")}},
}

// A containerSelector scopes a policy's rules by the cgroups of the
// selected containers of the selected pods: never by a netns, never global;
// pod and container selectors are ANDed; a container not started or whose
// cgroup is not found gets no scope.
func TestContainerSelectorScopesByCgroup(t *testing.T) {
	h := newHarness(t, containerTests)
	pathA, inoA := netnsFile(t, "a")
	pathB, _ := netnsFile(t, "b")
	pathC, inoC := netnsFile(t, "c")
	h.eps.eps = []api.Endpoint{endpoint(1, pathA, "default", "a"), endpoint(2, pathB, "default", "b"), endpoint(3, pathC, "other", "c")}
	webA, sideA, webB, webC, sideC := h.containerCgroup(t, cid("a")), h.containerCgroup(t, cid("b")),
		h.containerCgroup(t, cid("c")), h.containerCgroup(t, cid("d")), h.containerCgroup(t, cid("e"))
	h.m.SetPods([]*corev1.Pod{
		podWith("default", "a", map[string]string{"app": "locked"}, [2]string{"web", cid("a")}, [2]string{"sidecar", cid("b")}),
		podWith("default", "b", map[string]string{"app": "web"}, [2]string{"web", cid("c")}, [2]string{"pending", ""}),
		podWith("other", "c", map[string]string{"app": "locked"}, [2]string{"web", cid("d")}, [2]string{"sidecar", cid("e")},
			[2]string{"gone", cid("f")}),
	})
	h.m.SetObjects([]source.Raw{
		cluster(t, "a", "locked-web"), cluster(t, "b", "any-web"), namespaced(t, "other", "c", "not-web"),
		cluster(t, "d", "locked-all"),
	})
	h.sync(t, false)
	// Slots in policy order: a 0, b 1, d 2 (cluster kind), c 3.
	require.Len(t, h.dp.rules, 4)
	for _, r := range h.dp.rules {
		assert.True(t, r.Cgroup, "slot %d scoped by cgroup", r.Slot)
		assert.False(t, r.Global, "slot %d not global", r.Slot)
	}
	assert.Empty(t, h.dp.scopes, "no netns scope")
	assert.Equal(t, map[uint64]uint64{
		webA:  0b0111, // locked-web, any-web, locked-all
		sideA: 0b0100, // locked-all
		webB:  0b0010, // any-web (b is not app=locked)
		webC:  0b0111, // locked-web, any-web, locked-all
		sideC: 0b1100, // locked-all, not-web (namespace other)
	}, h.dp.cgScopes)

	// A policy without containerSelector next to them keeps its netns
	// scope, and the cgroup scopes are unchanged.
	containerTests["locked-nc"] = tests["locked-nc"]
	t.Cleanup(func() { delete(containerTests, "locked-nc") })
	h.m.SetObjects([]source.Raw{
		cluster(t, "a", "locked-web"), cluster(t, "b", "any-web"), namespaced(t, "other", "c", "not-web"),
		cluster(t, "d", "locked-all"), cluster(t, "e", "locked-nc"),
	})
	h.sync(t, false)
	require.Len(t, h.dp.rules, 5)
	assert.Equal(t, procsensor.ExecRule{Slot: 3, PolicyID: 5, Exact: []string{"/usr/bin/nc"}, Action: procsensor.ExecSigkill, Signal: 9, Enforce: true},
		h.dp.rules[3], "the policy without containerSelector: not by cgroup")
	assert.Equal(t, map[uint32]uint64{inoA: 0b1000, inoC: 0b1000}, h.dp.scopes)
	assert.Equal(t, uint64(0b10000), h.dp.cgScopes[sideC]&0b10000, "not-web moved to slot 4")
}

// A container that restarts gets a new id in the pod's status: its new
// cgroup gets the scope and the old cgroup's scope goes, with no rule
// rewritten; a pod losing its label loses its containers' scopes.
func TestContainerScopeFollowsRestarts(t *testing.T) {
	h := newHarness(t, containerTests)
	path, _ := netnsFile(t, "a")
	h.eps.eps = []api.Endpoint{endpoint(1, path, "default", "a")}
	old := h.containerCgroup(t, cid("a"))
	h.m.SetPods([]*corev1.Pod{podWith("default", "a", map[string]string{"app": "locked"}, [2]string{"web", cid("a")})})
	h.m.SetObjects([]source.Raw{cluster(t, "a", "locked-web")})
	h.sync(t, false)
	assert.Equal(t, map[uint64]uint64{old: 1}, h.dp.cgScopes)

	// Restarted: not started yet (the status has no id), then running.
	h.m.SetPods([]*corev1.Pod{podWith("default", "a", map[string]string{"app": "locked"}, [2]string{"web", ""})})
	h.dp.takeCalls()
	h.sync(t, false)
	assert.Equal(t, []string{fmt.Sprintf("cgdelete %d", old)}, h.dp.takeCalls())
	restarted := h.containerCgroup(t, cid("9"))
	h.m.SetPods([]*corev1.Pod{podWith("default", "a", map[string]string{"app": "locked"}, [2]string{"web", cid("9")})})
	h.sync(t, false)
	assert.Equal(t, []string{fmt.Sprintf("cgscope %d 0x1", restarted)}, h.dp.takeCalls())
	assert.Equal(t, map[uint64]uint64{restarted: 1}, h.dp.cgScopes)

	// Terminated (its cgroup gone, the id still in the status): no scope,
	// and no search for its cgroup.
	done := podWith("default", "a", map[string]string{"app": "locked"}, [2]string{"web", cid("9")})
	done.Status.ContainerStatuses[0].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0}
	h.m.SetPods([]*corev1.Pod{done})
	h.sync(t, false)
	assert.Empty(t, h.dp.cgScopes)

	h.m.SetPods([]*corev1.Pod{podWith("default", "a", nil, [2]string{"web", cid("9")})})
	h.sync(t, false)
	assert.Empty(t, h.dp.cgScopes)
}

// Syscall and connect rules of a containerSelector policy are scoped by
// cgroup too.
func TestContainerScopeOfSyscallAndConnectRules(t *testing.T) {
	c := compiler{"p": {PodSelector: locked, ContainerSelector: containerName(metav1.LabelSelectorOpIn, "web"),
		Tracepoints: []tracing.Tracepoint{openat(shadowKill("/usr/bin/cat"))},
		Connects:    [][]tracing.ConnectSelector{{{Ports: []uint16{80}, Action: tracing.ActionOverride}}}}}
	h := newFullHarness(t, c, true)
	path, _ := netnsFile(t, "a")
	h.eps.eps = []api.Endpoint{endpoint(1, path, "default", "a")}
	web, _ := h.containerCgroup(t, cid("a")), h.containerCgroup(t, cid("b"))
	h.m.SetPods([]*corev1.Pod{podWith("default", "a", map[string]string{"app": "locked"}, [2]string{"web", cid("a")}, [2]string{"db", cid("b")})})
	h.m.SetObjects([]source.Raw{cluster(t, "p", "p")})
	h.sync(t, false)
	require.Len(t, h.s.sys, 1)
	require.Len(t, h.s.conn, 1)
	assert.True(t, h.s.sys[0].Cgroup && !h.s.sys[0].Global)
	assert.True(t, h.s.conn[0].Cgroup && !h.s.conn[0].Global)
	assert.Equal(t, map[uint64]uint64{web: 1}, h.s.sysCg)
	assert.Equal(t, map[uint64]uint64{web: 1}, h.s.connCg)
	assert.Empty(t, h.s.sysScopes)
	assert.Empty(t, h.s.connScopes)

	h.m.SetObjects(nil)
	h.sync(t, false)
	assert.Empty(t, h.s.sysCg)
	assert.Empty(t, h.s.connCg)
}

// Without a CgroupFinder a containerSelector policy is rejected, naming the
// field.
func TestContainerSelectorNeedsCgroupFinder(t *testing.T) {
	h := newHarness(t, containerTests)
	h.m = New(Config{Rules: h.dp, Compile: containerTests.compile, Endpoints: h.eps}, nil)
	h.m.SetObjects([]source.Raw{cluster(t, "a", "locked-web")})
	h.sync(t, false)
	p, err := h.m.Get(clusterRef("a"))
	require.NoError(t, err)
	assert.False(t, p.Accepted)
	assert.Equal(t, "spec.containerSelector: this agent cannot find containers' cgroups", p.Reason)
}
