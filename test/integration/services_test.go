package integration

import (
	"context"
	"fmt"
	"os"
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

const (
	vip     = "10.96.0.10"
	svcPort = 80
)

// writeManifest writes a YAML file into the node's manifests directory.
func writeManifest(t *testing.T, node *harness.Node, name, yaml string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(node.ManifestsDir, name), []byte(yaml), 0o600))
}

// podYAML labels pod p with app=<app> (the agent joins it with p's endpoint).
func podYAML(p *harness.Pod, app string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
  labels:
    app: %s
spec:
  containers:
  - name: app
    image: none
    ports:
    - name: http
      containerPort: %d
---
`, p.Name, app, podPort)
}

func serviceYAML(name, clusterIP string, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  clusterIP: %s
  selector:
    app: %s
  ports:
  - name: http
    port: %d
    targetPort: http
    protocol: TCP
  - name: dns
    port: %d
    targetPort: %d
    protocol: UDP
%s`, name, clusterIP, name, svcPort, svcPort, podPort, extra)
}

// waitServices waits until the agent programs a frontend with n backends.
func waitBackends(t *testing.T, node *harness.Node, frontend string, n int) {
	t.Helper()
	var last []api.Service
	require.Eventually(t, func() bool {
		svcs, err := node.Client().ListServices(context.Background())
		if err != nil {
			return false
		}
		last = svcs
		for _, s := range svcs {
			if s.Frontend == frontend && s.Protocol == "TCP" && len(s.Backends) == n {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "frontend %s with %d backends; agent has %+v", frontend, n, last)
}

// askMany asks addr count times from ns and returns the replies by name.
func askMany(t *testing.T, ns *harness.NetNS, addr string, count int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < count; i++ {
		got, err := harness.Ask(ns, addr, timeout)
		require.NoError(t, err, "ask %s", addr)
		seen[got]++
	}
	return seen
}

func serviceNode(t *testing.T, socketLB bool) (*harness.Node, *harness.Pod, []*harness.Pod) {
	t.Helper()
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{SocketLB: socketLB})
	client := node.AddPod(t, "client")
	backends := []*harness.Pod{node.AddPod(t, "web-1"), node.AddPod(t, "web-2")}
	for _, b := range backends {
		harness.ServeTCP(t, b.NS, b.Addr(podPort), b.Name)
		harness.ServeUDP(t, b.NS, b.Addr(podPort), b.Name)
	}
	var pods strings.Builder
	for _, b := range backends {
		pods.WriteString(podYAML(b, "web"))
	}
	writeManifest(t, node, "pods.yaml", pods.String())
	writeManifest(t, node, "web.yaml", serviceYAML("web", vip, ""))
	waitBackends(t, node, fmt.Sprintf("%s:%d", vip, svcPort), 2)
	return node, client, backends
}

// Per-packet LB at the pod veth (the test process is not in the node's
// cgroup, so the socket hooks never see its connections).
func TestPrivilegedServiceClusterIPPerPacket(t *testing.T) {
	node, client, backends := serviceNode(t, false)
	addr := fmt.Sprintf("%s:%d", vip, svcPort)

	seen := askMany(t, client.NS, addr, 40)
	assert.Len(t, seen, 2, "both backends answer: %v", seen)
	for _, b := range backends {
		assert.Greater(t, seen[b.Name], 5, "%s got a fair share: %v", b.Name, seen)
	}
	udp := map[string]int{}
	for i := 0; i < 20; i++ {
		got, err := harness.AskUDP(client.NS, addr, timeout)
		require.NoError(t, err)
		udp[got]++
	}
	assert.Len(t, udp, 2, "UDP reaches both backends: %v", udp)

	// The connection sees the VIP as its peer (reverse NAT on replies).
	c, err := harness.Dial(client.NS, "tcp4", "", addr, timeout)
	require.NoError(t, err)
	assert.Equal(t, addr, c.RemoteAddr().String())
	c.Close()

	ct, err := node.Client().CT(context.Background())
	require.NoError(t, err)
	assert.NotEmpty(t, ct, "conntrack entries for the translated flows")
}

// Removing a backend keeps established connections to the other one and
// sends new connections only to the remaining backend.
func TestPrivilegedServiceBackendRemoval(t *testing.T) {
	node, client, backends := serviceNode(t, false)
	addr := fmt.Sprintf("%s:%d", vip, svcPort)

	// An established stream to each backend.
	streams := map[string]*streamer{}
	for len(streams) < 2 {
		c, err := harness.Dial(client.NS, "tcp4", "", addr, timeout)
		require.NoError(t, err)
		s, name := startStreamOn(t, c)
		if _, dup := streams[name]; dup {
			c.Close()
			continue
		}
		streams[name] = s
	}
	// web-2 leaves the service (its label changes).
	writeManifest(t, node, "pods.yaml", podYAML(backends[0], "web")+podYAML(backends[1], "other"))
	waitBackends(t, node, addr, 1)

	streams["web-1"].requireFlowing(t, 500*time.Millisecond, "stream to the remaining backend")
	seen := askMany(t, client.NS, addr, 20)
	assert.Equal(t, map[string]int{"web-1": 20}, seen, "new connections only reach web-1")
}

// With socket LB the translation happens at connect(): the client, running
// in the node's cgroup, reaches both backends and sees the VIP as its peer.
func TestPrivilegedServiceClusterIPSocketLB(t *testing.T) {
	node, client, _ := serviceNode(t, true)
	addr := fmt.Sprintf("%s:%d", vip, svcPort)
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		out, err := client.CommandInCgroup(t, harness.Bin(t, "crr"), "ask", "--target", addr).CombinedOutput()
		require.NoError(t, err, "%s", out)
		seen[strings.TrimSpace(string(out))]++
	}
	assert.Len(t, seen, 2, "both backends answer through the socket hook: %v", seen)

	lbm, err := node.Client().LBMaps(context.Background())
	require.NoError(t, err)
	assert.NotEmpty(t, lbm.Services)
}

// A service without backends refuses connections quickly instead of hanging.
func TestPrivilegedServiceNoBackends(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{})
	client := node.AddPod(t, "client")
	writeManifest(t, node, "empty.yaml", serviceYAML("empty", "10.96.0.20", ""))
	require.Eventually(t, func() bool {
		svcs, err := node.Client().ListServices(context.Background())
		return err == nil && len(svcs) > 0
	}, 10*time.Second, 50*time.Millisecond)

	// Through the pod's veth (per-packet path): the program answers the SYN
	// with ICMP port unreachable, so connect fails with ECONNREFUSED (as
	// README promises) instead of timing out. Another ICMP error (host or
	// net unreachable from the node's stack) would mean the program let the
	// SYN through.
	_, err := harness.Ask(client.NS, "10.96.0.20:80", 5*time.Second)
	require.Error(t, err)
	assert.False(t, harness.IsTimeout(err), "refused, not a timeout: %v", err)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED, "refused by ICMP port unreachable")
	assert.NotZero(t, count(t, client, "egress", "drop-no-service-backend"), "the pod program rejected the SYN")
}

// sliceYAML is an EndpointSlice for service svc with the given endpoints,
// each "ip:node:ready:serving:terminating".
func sliceYAML(svc string, eps ...[5]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-1
  namespace: default
  labels:
    kubernetes.io/service-name: %s
addressType: IPv4
ports:
- name: http
  port: %d
  protocol: TCP
endpoints:
`, svc, svc, podPort)
	for _, e := range eps {
		fmt.Fprintf(&b, `- addresses: [%q]
  nodeName: %s
  conditions: {ready: %s, serving: %s, terminating: %s}
`, e[0], e[1], e[2], e[3], e[4])
	}
	return b.String()
}

func plainServiceYAML(name, clusterIP, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  clusterIP: %s
  ports:
  - name: http
    port: %d
    targetPort: %d
    protocol: TCP
%s---
`, name, clusterIP, svcPort, podPort, extra)
}

// kube-proxy's fallback: with no ready endpoint, serving-and-terminating
// endpoints take the traffic; once a ready one exists, only it does.
func TestPrivilegedServiceTerminatingFallback(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{})
	client := node.AddPod(t, "client")
	old, next := node.AddPod(t, "old"), node.AddPod(t, "new")
	for _, b := range []*harness.Pod{old, next} {
		harness.ServeTCP(t, b.NS, b.Addr(podPort), b.Name)
	}
	addr := fmt.Sprintf("%s:%d", vip, svcPort)
	writeManifest(t, node, "svc.yaml", plainServiceYAML("web", vip, "")+sliceYAML("web",
		[5]string{old.IP.String(), node.Name, "false", "true", "true"},
		[5]string{next.IP.String(), node.Name, "false", "false", "false"},
	))
	waitBackends(t, node, addr, 1)
	assert.Equal(t, map[string]int{"old": 10}, askMany(t, client.NS, addr, 10), "the terminating endpoint serves while nothing is ready")

	writeManifest(t, node, "svc.yaml", plainServiceYAML("web", vip, "")+sliceYAML("web",
		[5]string{old.IP.String(), node.Name, "false", "true", "true"},
		[5]string{next.IP.String(), node.Name, "true", "true", "false"},
	))
	require.Eventually(t, func() bool {
		svcs, err := node.Client().ListServices(context.Background())
		if err != nil {
			return false
		}
		for _, s := range svcs {
			if s.Frontend == addr && len(s.Backends) == 1 && s.Backends[0].Address == next.Addr(podPort) {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, map[string]int{"new": 10}, askMany(t, client.NS, addr, 10), "only the ready endpoint once there is one")
}

// sessionAffinity: ClientIP pins a client to one backend; without it the
// same client reaches both.
func TestPrivilegedServiceSessionAffinity(t *testing.T) {
	node, client, backends := serviceNode(t, false)
	affine := serviceYAML("web", "10.96.0.30", "  sessionAffinity: ClientIP\n")
	affine = strings.Replace(affine, "name: web\n", "name: sticky\n", 1)
	writeManifest(t, node, "sticky.yaml", affine)
	addr := fmt.Sprintf("10.96.0.30:%d", svcPort)
	waitBackends(t, node, addr, 2)

	seen := askMany(t, client.NS, addr, 20)
	assert.Len(t, seen, 1, "one backend for one client: %v", seen)
	other := node.AddPod(t, "client-2")
	seen2 := askMany(t, other.NS, addr, 10)
	assert.Len(t, seen2, 1, "the second client is pinned too: %v", seen2)
	assert.Len(t, askMany(t, client.NS, fmt.Sprintf("%s:%d", vip, svcPort), 30), len(backends), "the non-affine service still spreads")
}

// internalTrafficPolicy: Local uses only endpoints on this node; with none,
// ClusterIP traffic is dropped (counted) rather than sent elsewhere.
func TestPrivilegedServiceInternalTrafficPolicyLocal(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{})
	client := node.AddPod(t, "client")
	local := node.AddPod(t, "local")
	harness.ServeTCP(t, local.NS, local.Addr(podPort), local.Name)
	addr := fmt.Sprintf("%s:%d", vip, svcPort)
	writeManifest(t, node, "svc.yaml", plainServiceYAML("web", vip, "  internalTrafficPolicy: Local\n")+sliceYAML("web",
		[5]string{local.IP.String(), node.Name, "true", "true", "false"},
		[5]string{"10.244.9.9", "node-elsewhere", "true", "true", "false"},
	))
	waitBackends(t, node, addr, 1)
	assert.Equal(t, map[string]int{"local": 10}, askMany(t, client.NS, addr, 10), "only the node-local endpoint")

	writeManifest(t, node, "svc.yaml", plainServiceYAML("web", vip, "  internalTrafficPolicy: Local\n")+sliceYAML("web",
		[5]string{"10.244.9.9", "node-elsewhere", "true", "true", "false"},
	))
	waitBackends(t, node, addr, 0)
	before := count(t, client, "egress", "drop-no-local-backend")
	_, err := harness.Ask(client.NS, addr, time.Second)
	require.Error(t, err, "no local endpoint: no reply")
	assert.Greater(t, count(t, client, "egress", "drop-no-local-backend"), before, "drop counted as no local backend")
}
