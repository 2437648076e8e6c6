package integration

import (
	"context"
	"errors"
	"fmt"
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

// copyBinary copies a host binary into the test's own directory as name, so
// every event the test looks for names a path no other process on the
// machine runs.
func copyBinary(t *testing.T, src, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	require.NoError(t, harness.CopyExecutable(src, dst))
	return dst
}

// processEvents returns the events of the agent's history that f selects.
func processEvents(t *testing.T, node *harness.Node, f api.EventFilter) []*api.ProcessEvent {
	t.Helper()
	var out []*api.ProcessEvent
	err := node.Client().Events(context.Background(), f, func(ev *api.ProcessEvent) error {
		out = append(out, ev)
		return nil
	})
	require.NoError(t, err)
	return out
}

// storyEvents is what one process did: its exec, connect and exit events.
type storyEvents struct {
	exec    *api.ProcessExec
	connect *api.ProcessConnect
	exit    *api.ProcessExit
}

// findStory waits until the pod's history holds the exec, connect and exit
// of the process running binary with an argument containing marker.
func findStory(t *testing.T, node *harness.Node, pod, binary, marker string) storyEvents {
	t.Helper()
	var s storyEvents
	require.Eventually(t, func() bool {
		s = storyEvents{}
		for _, ev := range processEvents(t, node, api.EventFilter{Namespace: "default", Pod: pod}) {
			switch {
			case ev.ProcessExec != nil && ev.ProcessExec.Process.Binary == binary &&
				strings.Contains(ev.ProcessExec.Process.Arguments, marker):
				s.exec = ev.ProcessExec
			case s.exec != nil && ev.ProcessConnect != nil && ev.ProcessConnect.Process.ExecID == s.exec.Process.ExecID:
				s.connect = ev.ProcessConnect
			case s.exec != nil && ev.ProcessExit != nil && ev.ProcessExit.Process.ExecID == s.exec.Process.ExecID:
				s.exit = ev.ProcessExit
			}
		}
		return s.exec != nil && s.connect != nil && s.exit != nil
	}, 10*time.Second, 100*time.Millisecond, "exec, connect and exit of %s (%s) in pod %s", binary, marker, pod)
	return s
}

// A shell in a pod (entered from the host with nsenter, as kubectl exec
// does) spawns a shell that connects to a ClusterIP Service: the events name
// the pod, the processes' chain and the connection's service and backend
// with one exec id, and the flow of that connection names the process.
func TestPrivilegedProcessEventsShellConnects(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{SocketLB: true, Args: []string{"--process-sensor"}})
	client := node.AddPod(t, "client")
	backends := []*harness.Pod{node.AddPod(t, "web-1"), node.AddPod(t, "web-2")}
	var pods strings.Builder
	pods.WriteString(podYAML(client, "client"))
	for _, b := range backends {
		harness.ServeTCP(t, b.NS, b.Addr(podPort), b.Name)
		pods.WriteString(podYAML(b, "web"))
	}
	writeManifest(t, node, "pods.yaml", pods.String())
	writeManifest(t, node, "web.yaml", serviceYAML("web", vip, ""))
	waitBackends(t, node, fmt.Sprintf("%s:%d", vip, svcPort), 2)

	app, sh := copyBinary(t, "/bin/bash", "app"), copyBinary(t, "/bin/bash", "sh")
	marker := harness.RandName("story")
	inner := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && read -r reply <&3 && echo \"$reply\" # %s", vip, svcPort, marker)
	cmd := client.CommandInCgroup(t, app, "-c", fmt.Sprintf("%s -c '%s'; true", sh, inner))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	backend := strings.TrimSpace(string(out))
	require.Contains(t, []string{"web-1", "web-2"}, backend, "the service answered through the shell")

	s := findStory(t, node, "client", sh, marker)
	p := s.exec.Process
	require.NotNil(t, p.Pod, "the shell runs in a pod")
	assert.Equal(t, "client", p.Pod.Name)
	assert.Equal(t, "client", p.Pod.Labels["app"], "the pod's labels from its Pod object")
	assert.Equal(t, uint32(cmd.ProcessState.Pid()), mustParent(t, s.exec).PID, "the parent is the app shell")
	assert.Equal(t, app, s.exec.Parent.Binary)
	assert.Equal(t, p.ParentExecID, s.exec.Parent.ExecID)
	assert.Contains(t, p.Flags, "execve")
	require.NotEmpty(t, s.exec.Ancestors, "the app shell's own ancestors (the test) follow")
	assert.Equal(t, s.exec.Parent.ParentExecID, s.exec.Ancestors[0].ExecID)

	c := s.connect
	assert.Equal(t, p.ExecID, c.Process.ExecID, "one exec id in exec and connect")
	assert.Equal(t, "TCP", c.Protocol)
	require.NotNil(t, c.Service, "the socket asked for the service")
	assert.Equal(t, fmt.Sprintf("%s:%d", vip, svcPort), c.Service.Address)
	assert.Equal(t, "web", c.Service.Name)
	assert.Equal(t, "default/"+backend, c.DestinationPod, "the destination is the backend that answered")
	assert.True(t, strings.HasPrefix(c.Source, client.IP.String()+":"), "source %s is the pod", c.Source)
	assert.Equal(t, p.ExecID, s.exit.Process.ExecID, "one exec id in exec and exit")
	assert.Equal(t, uint32(0), s.exit.Status)
	assert.Empty(t, s.exit.Signal)

	// The flow of that connection names the shell.
	require.Eventually(t, func() bool {
		var named bool
		err := node.Client().Flows(context.Background(), api.FlowFilter{FromPod: "default/client"}, func(f api.Flow) error {
			if f.Process != nil && f.Process.ExecID == p.ExecID && f.Source == c.Source {
				named = f.Process.Binary == sh
			}
			return nil
		})
		return err == nil && named
	}, 5*time.Second, 100*time.Millisecond, "a flow from %s naming %s", c.Source, sh)

	// Outside the socket LB's cgroup the connection is translated per
	// packet: the socket saw the frontend, conntrack knows the backend.
	marker = harness.RandName("perpacket")
	inner = fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && read -r reply <&3 && echo \"$reply\" # %s", vip, svcPort, marker)
	out, err = client.NS.Command(sh, "-c", inner).CombinedOutput()
	require.NoError(t, err, "%s", out)
	backend = strings.TrimSpace(string(out))
	s = findStory(t, node, "client", sh, marker)
	require.NotNil(t, s.connect.Service, "the connection names the service")
	assert.Equal(t, "web", s.connect.Service.Name)
	assert.Equal(t, fmt.Sprintf("%s:%d", vip, svcPort), s.connect.Service.Address)
	assert.Equal(t, "default/"+backend, s.connect.DestinationPod, "the backend conntrack chose is the one that answered")
	assert.True(t, strings.HasSuffix(s.connect.Destination, fmt.Sprintf(":%d", podPort)), "destination %s is the backend", s.connect.Destination)
}

func mustParent(t *testing.T, e *api.ProcessExec) *api.Process {
	t.Helper()
	require.NotNil(t, e.Parent, "exec event without a parent")
	return e.Parent
}

// A process running in a pod before the agent starts is in the process
// cache at start (flag procFS), attributed to its pod, and its exit is
// reported with the same exec id.
func TestPrivilegedProcessCacheSeededFromProc(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	agent := node.StartAgent(t)
	client := node.AddPod(t, "client")
	writeManifest(t, node, "pods.yaml", podYAML(client, "client"))
	agent.Stop(t)

	sleep := copyBinary(t, "/bin/sleep", "sleep")
	cmd := client.NS.Command(sleep, "300")
	require.NoError(t, cmd.Start())
	pid := uint32(cmd.Process.Pid)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor"}})
	var seeded, last *api.Process
	found := assert.Eventually(t, func() bool {
		procs, err := node.Client().Processes(context.Background())
		if err != nil {
			return false
		}
		for _, p := range procs {
			if p.PID == pid {
				last = p
			}
			if p.PID == pid && p.Binary == sleep && p.Pod != nil && p.Pod.Labels["app"] == "client" {
				seeded = p
			}
		}
		return seeded != nil
	}, 10*time.Second, 100*time.Millisecond, "pid %d (%s) in the process cache with its pod", pid, sleep)
	if !found {
		if last != nil {
			t.Fatalf("the cache has pid %d as %+v, pod %+v", pid, *last, last.Pod)
		}
		t.FailNow()
	}
	assert.Contains(t, seeded.Flags, "procFS")
	assert.Equal(t, "300", seeded.Arguments)
	detail, err := node.Client().Process(context.Background(), seeded.ExecID)
	require.NoError(t, err)
	require.NotEmpty(t, detail.Ancestors, "the seeded process has ancestors (nsenter, the test)")

	require.NoError(t, cmd.Process.Kill())
	var werr *exec.ExitError
	require.True(t, errors.As(cmd.Wait(), &werr))
	require.Eventually(t, func() bool {
		for _, ev := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessExit}, ExecID: seeded.ExecID}) {
			if ev.ProcessExit.Process.ExecID == seeded.ExecID {
				return ev.ProcessExit.Signal == "SIGKILL"
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "the exit of the seeded process, SIGKILL, with its exec id")
}

// sluice-cni records the inode of the pod's network namespace as it sees it
// on the host: the agent matches processes and tracing-policy scopes to pods
// by it even when its own mount namespace lacks the runtime's netns mounts.
func TestPrivilegedCNIRecordsNetNSInode(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	p := node.AddPod(t, "a")
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(p.NS.Path(), &st))
	assert.Equal(t, uint32(st.Ino), endpointOf(t, p).NetNSInode)
}
