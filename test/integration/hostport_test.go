package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// hostPort, as the upstream conformance test "HostPort validates that there
// is no conflict between pods with same hostPort but different hostIP and
// protocol" sets it up, on a simulated node with the real sluice-cni and
// the runtime's runtimeConfig.portMappings:
//
//	pod1  127.0.0.1:54323/TCP     pod2  <node IP>:54323/TCP
//	pod3  <node IP>:54323/UDP     pod4  every address, 54324/TCP
//
// each reached from a process in the node's cgroup (socket hooks), from a
// pod (its veth's program) and from the ext netns through ext0 (host device
// programs), answering with its own
// name; a fifth pod asking for pod2's port fails at ADD; DEL removes the
// entry. Topology as in nodeport_test.go (ext0 192.168.250.1, client
// 192.168.250.2).
const hpPort = 54323

type hpEnv struct {
	node *harness.Node
	ext  *harness.NetNS
	pods map[string]*harness.Pod
}

func hpMapping(hostIP string, port int, proto string) api.PortMapping {
	return api.PortMapping{HostIP: hostIP, HostPort: port, ContainerPort: podPort, Protocol: proto}
}

func newHPEnv(t *testing.T) *hpEnv {
	t.Helper()
	e := &hpEnv{node: harness.NewNode(t, harness.NodeOptions{}), pods: map[string]*harness.Pod{}}
	e.ext = wire(t, e.node, "sl-ext-", "ext0", npNodeIP, npClientIP)
	e.node.StartAgentArgs(t, "--devices", "ext0", "--socket-lb=true")
	for _, p := range []struct {
		name string
		pm   api.PortMapping
	}{
		{"pod1", hpMapping("127.0.0.1", hpPort, "tcp")},
		{"pod2", hpMapping(npNodeIP, hpPort, "tcp")},
		{"pod3", hpMapping(npNodeIP, hpPort, "udp")},
		{"pod4", hpMapping("", hpPort+1, "tcp")},
	} {
		pod, err := e.node.TryAddPodWithPorts(t, "default", p.name, p.pm)
		require.NoError(t, err, "CNI ADD %s", p.name)
		if p.pm.Protocol == "udp" {
			harness.ServeUDP(t, pod.NS, pod.Addr(podPort), pod.Name)
		} else {
			servePeer(t, pod.NS, pod.Addr(podPort), pod.Name)
		}
		e.pods[p.name] = pod
	}
	return e
}

// hostPorts returns the agent's HostPort frontends ("addr:port/proto" →
// backend pod).
func (e *hpEnv) hostPorts(t *testing.T) map[string]string {
	t.Helper()
	out, err := e.listHostPorts()
	require.NoError(t, err)
	return out
}

// listHostPorts is hostPorts for a condition polled by require.Eventually
// (which runs it on another goroutine, where require cannot stop the test).
func (e *hpEnv) listHostPorts() (map[string]string, error) {
	svcs, err := e.node.Client().ListServices(context.Background())
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range svcs {
		if s.Kind != "HostPort" {
			continue
		}
		if len(s.Backends) != 1 {
			return nil, fmt.Errorf("%s: %d backends, want 1", s.Name, len(s.Backends))
		}
		if s.Error != "" {
			return nil, fmt.Errorf("%s not programmed: %s", s.Name, s.Error)
		}
		out[s.Frontend+"/"+s.Protocol] = s.Backends[0].Pod
	}
	return out, nil
}

// fromNode asks addr from a host process in the node's cgroup.
func (e *hpEnv) fromNode(t *testing.T, addr string, udp bool) (string, error) {
	t.Helper()
	args := []string{"ask", "--target", addr}
	if udp {
		args = append(args, "--udp")
	}
	cmd, release, err := harness.CommandIn(e.node.NS, e.node.Cgroup, harness.Bin(t, "crr"), args...)
	require.NoError(t, err)
	defer release()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	name, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ") // TCP: "<name> <peer>"
	return name, nil
}

func TestPrivilegedHostPort(t *testing.T) {
	e := newHPEnv(t)
	wantAll := map[string]string{
		fmt.Sprintf("127.0.0.1:%d/TCP", hpPort):    "default/pod1",
		fmt.Sprintf("%s:%d/TCP", npNodeIP, hpPort): "default/pod2",
		fmt.Sprintf("%s:%d/UDP", npNodeIP, hpPort): "default/pod3",
		fmt.Sprintf("0.0.0.0:%d/TCP", hpPort+1):    "default/pod4",
	}
	require.Eventually(t, func() bool {
		got, err := e.listHostPorts()
		return err == nil && len(got) == 4
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, wantAll, e.hostPorts(t), "sluice service list: kind HostPort")
	nodeAddr := fmt.Sprintf("%s:%d", npNodeIP, hpPort)
	anyPort := fmt.Sprintf("%d", hpPort+1)

	t.Run("from the node, each address and protocol its own pod", func(t *testing.T) {
		for _, c := range []struct {
			addr string
			udp  bool
			want string
		}{
			{fmt.Sprintf("127.0.0.1:%d", hpPort), false, "pod1"},
			{nodeAddr, false, "pod2"},
			{nodeAddr, true, "pod3"},
			{"127.0.0.1:" + anyPort, false, "pod4"},
			{npNodeIP + ":" + anyPort, false, "pod4"},
		} {
			for i := 0; i < 3; i++ {
				got, err := e.fromNode(t, c.addr, c.udp)
				require.NoError(t, err, "%s udp=%v", c.addr, c.udp)
				assert.Equal(t, c.want, got, "%s udp=%v", c.addr, c.udp)
			}
		}
	})

	t.Run("hostIP scopes the port", func(t *testing.T) {
		// pod1 is on 127.0.0.1 only, pod3 on UDP only: nothing else answers
		// there (no listener on the node).
		_, err := e.fromNode(t, fmt.Sprintf("127.0.0.1:%d", hpPort), true)
		assert.Error(t, err, "UDP on 127.0.0.1 is nobody's")
		_, _, err = askPeer(e.ext, fmt.Sprintf("%s:%d", npNodeIP, hpPort+2), time.Second)
		assert.Error(t, err, "a port without hostPort")
	})

	t.Run("from outside through the device", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			name, peer, err := askPeer(e.ext, nodeAddr, timeout)
			require.NoError(t, err)
			assert.Equal(t, "pod2", name)
			assert.Equal(t, npClientIP, peer, "the pod sees the client's address")
			got, err := harness.AskUDP(e.ext, nodeAddr, timeout)
			require.NoError(t, err)
			assert.Equal(t, "pod3", got)
			name, _, err = askPeer(e.ext, npNodeIP+":"+anyPort, timeout)
			require.NoError(t, err)
			assert.Equal(t, "pod4", name)
		}
	})

	t.Run("from a pod (per-packet translation at its veth)", func(t *testing.T) {
		client := e.node.AddPod(t, "client")
		for i := 0; i < 3; i++ {
			name, peer, err := askPeer(client.NS, nodeAddr, timeout)
			require.NoError(t, err)
			assert.Equal(t, "pod2", name)
			assert.Equal(t, client.IP.String(), peer)
			got, err := harness.AskUDP(client.NS, nodeAddr, timeout)
			require.NoError(t, err)
			assert.Equal(t, "pod3", got)
			name, _, err = askPeer(client.NS, npNodeIP+":"+anyPort, timeout)
			require.NoError(t, err)
			assert.Equal(t, "pod4", name)
		}
	})

	t.Run("a second pod on a held port fails at ADD", func(t *testing.T) {
		_, err := e.node.TryAddPodWithPorts(t, "default", "pod5", hpMapping("", hpPort, "tcp"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "already used by pod default/pod1")
		assert.Equal(t, wantAll, e.hostPorts(t), "nothing changed")
	})

	t.Run("CHECK compares the runtime's port mappings", func(t *testing.T) {
		p := e.pods["pod2"]
		require.NoError(t, p.Check())
		p.PortMappings = []api.PortMapping{hpMapping(npNodeIP, hpPort, "udp")}
		err := p.Check()
		p.PortMappings = []api.PortMapping{hpMapping(npNodeIP, hpPort, "tcp")}
		require.Error(t, err)
		assert.Contains(t, err.Error(), "port mappings")
	})

	outer := t // the restarted agent outlives the subtest
	t.Run("agent restart keeps the hostPorts", func(t *testing.T) {
		e.node.Agent().Stop(t)
		e.node.StartAgentArgs(outer, "--devices", "ext0", "--socket-lb=true")
		require.Eventually(t, func() bool {
			name, _, err := askPeer(e.ext, nodeAddr, time.Second)
			return err == nil && name == "pod2"
		}, 20*time.Second, 100*time.Millisecond)
		// The pinned entries answered above before the restarted agent's
		// first sync; its service list shows them once it has synced.
		require.Eventually(t, func() bool {
			got, err := e.listHostPorts()
			return err == nil && assert.ObjectsAreEqual(wantAll, got)
		}, 20*time.Second, 100*time.Millisecond)
		assert.Equal(t, wantAll, e.hostPorts(t))
	})

	t.Run("DEL removes the entry and frees the port", func(t *testing.T) {
		require.NoError(t, e.pods["pod2"].Del())
		want := map[string]string{}
		for k, v := range wantAll {
			if v != "default/pod2" {
				want[k] = v
			}
		}
		require.Eventually(t, func() bool {
			got, err := e.listHostPorts()
			return err == nil && len(got) == 3
		}, 10*time.Second, 50*time.Millisecond)
		assert.Equal(t, want, e.hostPorts(t))
		_, _, err := askPeer(e.ext, nodeAddr, time.Second)
		assert.Error(t, err, "pod2's port is closed")
		got, err := harness.AskUDP(e.ext, nodeAddr, timeout)
		require.NoError(t, err)
		assert.Equal(t, "pod3", got, "the UDP one stays")

		p5, err := e.node.TryAddPodWithPorts(t, "default", "pod5", hpMapping(npNodeIP, hpPort, "tcp"))
		require.NoError(t, err, "the port is free again")
		servePeer(t, p5.NS, p5.Addr(podPort), p5.Name)
		require.Eventually(t, func() bool {
			name, _, err := askPeer(e.ext, nodeAddr, time.Second)
			return err == nil && name == "pod5"
		}, 10*time.Second, 100*time.Millisecond)
		got, err = e.fromNode(t, nodeAddr, false)
		require.NoError(t, err)
		assert.Equal(t, "pod5", got)
	})
}
