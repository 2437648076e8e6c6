package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// NodePort topology, all inside namespaces the test creates:
//
//	ext netns  eth0 192.168.250.2 ── ext0 192.168.250.1  node netns  (pods web-1, web-2)
//	rmt netns  eth0 192.168.251.2 ── rmt0 192.168.251.1
//
// The agent attaches the host programs to ext0 and rmt0 (--devices); the
// SNAT address is ext0's (the default). "rmt" stands in for a backend on
// another node, reached through the node's routing (cross-node routing is not
// part of this test). The 192.168.250-252 addresses exist only in these
// namespaces.
const (
	npNodeIP   = "192.168.250.1"
	npClientIP = "192.168.250.2"
	npRemoteIP = "192.168.251.2"
	npExtIP    = "192.168.252.10" // an ExternalIP, routed to the node by the client
)

type npEnv struct {
	node      *harness.Node
	ext, rmt  *harness.NetNS
	ext0Index uint32
	pods      []*harness.Pod
}

// servePeer serves "<name> <peer ip>\n" on addr in ns: the backend reports
// which client address it saw.
func servePeer(t *testing.T, ns *harness.NetNS, addr, name string) {
	t.Helper()
	var (
		ln  net.Listener
		err error
	)
	ns.Do(t, func() { ln, err = net.Listen("tcp4", addr) })
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			io.WriteString(c, name+" "+host+"\n")
			c.Close()
		}
	}()
}

// askPeer returns the backend's name and the client address it saw.
func askPeer(ns *harness.NetNS, addr string, timeout time.Duration) (name, peer string, err error) {
	c, err := harness.Dial(ns, "tcp4", "", addr, timeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", "", fmt.Errorf("bad reply %q", line)
	}
	return f[0], f[1], nil
}

// wire creates netns peer with a veth to the node: dev on the node side
// with nodeAddr, eth0 on the peer side with peerAddr (both /24).
func wire(t *testing.T, node *harness.Node, prefix, dev, nodeAddr, peerAddr string) *harness.NetNS {
	t.Helper()
	ns := harness.NewNetNS(t, prefix)
	node.NS.Run(t, "ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	node.NS.Run(t, "ip", "addr", "add", nodeAddr+"/24", "dev", dev)
	node.NS.Run(t, "ip", "link", "set", dev, "up")
	ns.Run(t, "ip", "addr", "add", peerAddr+"/24", "dev", "eth0")
	ns.Run(t, "ip", "link", "set", "eth0", "up")
	ns.Run(t, "ip", "route", "add", "default", "via", nodeAddr)
	return ns
}

func newNPEnv(t *testing.T) *npEnv {
	t.Helper()
	return newNPEnvArgs(t)
}

// newNPEnvArgs is newNPEnv with extra agent arguments.
func newNPEnvArgs(t *testing.T, agentArgs ...string) *npEnv {
	t.Helper()
	e := &npEnv{node: harness.NewNode(t, harness.NodeOptions{})}
	// The external netns and the veths die with the namespaces (cleanup).
	e.ext = wire(t, e.node, "sl-ext-", "ext0", npNodeIP, npClientIP)
	e.rmt = wire(t, e.node, "sl-rmt-", "rmt0", "192.168.251.1", npRemoteIP)
	e.ext.Run(t, "ip", "route", "add", npExtIP+"/32", "via", npNodeIP)
	e.node.NS.Do(t, func() {
		ifc, err := net.InterfaceByName("ext0")
		require.NoError(t, err)
		e.ext0Index = uint32(ifc.Index)
	})
	// Socket LB on the node's cgroup: host processes there reach NodePorts
	// at the node's own addresses (the ext/rmt clients are outside it).
	e.node.StartAgentArgs(t, append([]string{"--devices", "ext0,rmt0", "--socket-lb=true"}, agentArgs...)...)
	for _, name := range []string{"web-1", "web-2"} {
		p := e.node.AddPod(t, name)
		servePeer(t, p.NS, p.Addr(podPort), p.Name)
		e.pods = append(e.pods, p)
	}
	servePeer(t, e.rmt, npRemoteIP+":"+fmt.Sprint(podPort), "remote")
	return e
}

// nodePortYAML is a NodePort service named name on nodePort (port svcPort,
// target podPort) with a selector app=<name> unless selector is false.
func nodePortYAML(name, clusterIP string, nodePort int, selector bool, extra string) string {
	sel := ""
	if selector {
		sel = fmt.Sprintf("  selector:\n    app: %s\n", name)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  type: NodePort
  clusterIP: %s
%s  ports:
  - name: http
    port: %d
    targetPort: %d
    nodePort: %d
    protocol: TCP
%s---
`, name, clusterIP, sel, svcPort, podPort, nodePort, extra)
}

func (e *npEnv) hostCounter(t *testing.T, ifindex uint32, r metricsmap.Reason) uint64 {
	t.Helper()
	cs, err := metricsmap.PinnedCounters(e.node.BPFRoot)
	require.NoError(t, err)
	var n uint64
	for _, c := range cs {
		if c.Ifindex == ifindex && c.Reason == r && c.Direction == metricsmap.DirIngress {
			n += c.Packets
		}
	}
	return n
}

func askManyPeer(t *testing.T, ns *harness.NetNS, addr string, count int) (map[string]int, map[string]bool) {
	t.Helper()
	names, peers := map[string]int{}, map[string]bool{}
	for i := 0; i < count; i++ {
		name, peer, err := askPeer(ns, addr, timeout)
		require.NoError(t, err, "ask %s", addr)
		names[name]++
		peers[peer] = true
	}
	return names, peers
}

func TestPrivilegedNodePort(t *testing.T) {
	e := newNPEnv(t)
	var pods strings.Builder
	for _, p := range e.pods {
		pods.WriteString(podYAML(p, "web"))
	}
	writeManifest(t, e.node, "pods.yaml", pods.String())
	writeManifest(t, e.node, "web.yaml", nodePortYAML("web", "10.96.0.30", 30080, true, ""))
	waitBackends(t, e.node, "0.0.0.0:30080", 2)

	t.Run("cluster policy reaches both local backends", func(t *testing.T) {
		names, peers := askManyPeer(t, e.ext, npNodeIP+":30080", 30)
		assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names), "replies: %v", names)
		assert.Equal(t, map[string]bool{npClientIP: true}, peers, "local backends see the client's address")
	})

	t.Run("from the node itself at its own addresses", func(t *testing.T) {
		// A host process in the node's cgroup (not a pod): the socket hook
		// gives its connect() a backend; loopback counts as a node address
		// (kube-proxy's localhost NodePorts).
		for _, addr := range []string{npNodeIP + ":30080", "127.0.0.1:30080"} {
			seen := map[string]int{}
			for i := 0; i < 12; i++ {
				cmd, release, err := harness.CommandIn(e.node.NS, e.node.Cgroup, harness.Bin(t, "crr"), "ask", "--target", addr)
				require.NoError(t, err)
				out, err := cmd.CombinedOutput()
				release()
				require.NoError(t, err, "%s: %s", addr, out)
				name, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ") // "<backend> <peer>"
				seen[name]++
			}
			assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(seen), "%s from the node: %v", addr, seen)
		}
	})

	t.Run("externalTrafficPolicy Local keeps the client address", func(t *testing.T) {
		writeManifest(t, e.node, "local.yaml", nodePortYAML("local", "10.96.0.31", 30081, false, "  externalTrafficPolicy: Local\n")+
			sliceYAML("local",
				[5]string{e.pods[0].IP.String(), e.node.Name, "true", "true", "false"},
				[5]string{npRemoteIP, "node-2", "true", "true", "false"},
			))
		waitBackends(t, e.node, "0.0.0.0:30081", 1)
		names, peers := askManyPeer(t, e.ext, npNodeIP+":30081", 10)
		assert.Equal(t, map[string]int{"web-1": 10}, names, "only the node-local endpoint")
		assert.Equal(t, map[string]bool{npClientIP: true}, peers)
	})

	t.Run("externalTrafficPolicy Local without local backend drops", func(t *testing.T) {
		writeManifest(t, e.node, "nolocal.yaml", nodePortYAML("nolocal", "10.96.0.32", 30082, false, "  externalTrafficPolicy: Local\n")+
			sliceYAML("nolocal", [5]string{npRemoteIP, "node-2", "true", "true", "false"}))
		require.Eventually(t, func() bool {
			svcs, err := e.node.Client().ListServices(t.Context())
			if err != nil {
				return false
			}
			for _, s := range svcs {
				if s.Frontend == "0.0.0.0:30082" {
					return true
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond)
		before := e.hostCounter(t, e.ext0Index, metricsmap.DropNoLocalBackend)
		_, _, err := askPeer(e.ext, npNodeIP+":30082", time.Second)
		require.Error(t, err, "no local endpoint: no reply")
		assert.True(t, harness.IsTimeout(err), "dropped, not refused: %v", err)
		assert.Greater(t, e.hostCounter(t, e.ext0Index, metricsmap.DropNoLocalBackend), before, "drop counted on ext0")
	})

	t.Run("remote backend through SNAT", func(t *testing.T) {
		writeManifest(t, e.node, "remote.yaml", nodePortYAML("remote", "10.96.0.33", 30083, false, "")+
			sliceYAML("remote", [5]string{npRemoteIP, "node-2", "true", "true", "false"}))
		waitBackends(t, e.node, "0.0.0.0:30083", 1)
		before := e.hostCounter(t, e.ext0Index, metricsmap.ReasonLBSNAT)
		names, peers := askManyPeer(t, e.ext, npNodeIP+":30083", 10)
		assert.Equal(t, map[string]int{"remote": 10}, names)
		assert.Equal(t, map[string]bool{npNodeIP: true}, peers, "the remote backend sees the node IP")
		assert.GreaterOrEqual(t, e.hostCounter(t, e.ext0Index, metricsmap.ReasonLBSNAT)-before, uint64(10), "SNAT counted on ext0")
	})

	t.Run("ExternalIP", func(t *testing.T) {
		writeManifest(t, e.node, "extip.yaml", fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: webext
  namespace: default
spec:
  clusterIP: 10.96.0.34
  externalIPs: [%q]
  selector:
    app: web
  ports:
  - name: http
    port: %d
    targetPort: %d
    protocol: TCP
---
`, npExtIP, svcPort, podPort))
		waitBackends(t, e.node, npExtIP+":80", 2)
		names, peers := askManyPeer(t, e.ext, npExtIP+":80", 30)
		assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names), "replies: %v", names)
		assert.Equal(t, map[string]bool{npClientIP: true}, peers)
	})
}

func nameSet(m map[string]int) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// askable reports whether addr answers from ns with the backend name want
// (any backend when want is "").
func askable(ns *harness.NetNS, addr, want string) bool {
	name, _, err := askPeer(ns, addr, time.Second)
	return err == nil && (want == "" || name == want)
}

// NodePort traffic redirected into a local backend meets the backend's
// policy: an ingress policy denying world closes the NodePort to outside
// clients while pods it allows still connect; an egress policy allowing
// nothing leaves the NodePort's replies alone.
func TestPrivilegedNodePortPolicy(t *testing.T) {
	e := newNPEnv(t)
	client := e.node.AddPod(t, "client")
	servePeer(t, client.NS, client.Addr(podPort), client.Name)
	var pods strings.Builder
	for _, p := range e.pods {
		pods.WriteString(podYAML(p, "web"))
	}
	pods.WriteString(podYAML(client, "client"))
	writeManifest(t, e.node, "pods.yaml", pods.String())
	writeManifest(t, e.node, "web.yaml", nodePortYAML("web", "10.96.0.30", 30080, true, ""))
	waitBackends(t, e.node, "0.0.0.0:30080", 2)
	nodePort := npNodeIP + ":30080"
	web1 := e.pods[0]

	names, _ := askManyPeer(t, e.ext, nodePort, 20)
	require.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names))

	t.Run("egress policy allowing nothing keeps NodePort replies", func(t *testing.T) {
		writeManifest(t, e.node, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-no-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
`)
		// Enforced once web-1 can no longer open a flow to the client pod.
		require.Eventually(t, func() bool { return !askable(web1.NS, client.Addr(podPort), client.Name) },
			20*time.Second, 200*time.Millisecond, "egress policy applied")
		names, peers := askManyPeer(t, e.ext, nodePort, 20)
		assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names), "replies pass by conntrack: %v", names)
		assert.Equal(t, map[string]bool{npClientIP: true}, peers)
		assert.True(t, askable(client.NS, web1.Addr(podPort), web1.Name), "pod-to-pod replies too")
		require.NoError(t, os.Remove(filepath.Join(e.node.ManifestsDir, "10-policy.yaml")))
		require.Eventually(t, func() bool { return askable(web1.NS, client.Addr(podPort), client.Name) },
			20*time.Second, 200*time.Millisecond, "egress policy removed")
	})

	t.Run("ingress policy denying world closes the NodePort", func(t *testing.T) {
		before := e.hostCounter(t, e.ext0Index, metricsmap.DropPolicyDeny)
		writeManifest(t, e.node, "10-policy.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: web-no-world, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
  ingressDeny:
  - fromEntities: [world]
`)
		require.Eventually(t, func() bool { return !askable(e.ext, nodePort, "") },
			20*time.Second, 200*time.Millisecond, "NodePort closed to the external client")
		for i := 0; i < 3; i++ {
			_, _, err := askPeer(e.ext, nodePort, time.Second)
			require.Error(t, err, "NodePort from outside")
			assert.True(t, harness.IsTimeout(err), "dropped, not refused: %v", err)
		}
		assert.GreaterOrEqual(t, e.hostCounter(t, e.ext0Index, metricsmap.DropPolicyDeny)-before, uint64(3),
			"policy drops counted on ext0")
		requireFlow(t, e.node, api.FlowFilter{Verdict: "DROPPED", Labels: []string{"app=web"}}, "default/web-no-world[ingressDeny:0]")
		for _, p := range e.pods {
			assert.True(t, askable(client.NS, p.Addr(podPort), p.Name), "client pod -> %s allowed", p.Name)
		}
	})

	t.Run("removing the policy restores the NodePort", func(t *testing.T) {
		require.NoError(t, os.Remove(filepath.Join(e.node.ManifestsDir, "10-policy.yaml")))
		require.Eventually(t, func() bool { return askable(e.ext, nodePort, "") },
			20*time.Second, 200*time.Millisecond, "NodePort open again")
		names, peers := askManyPeer(t, e.ext, nodePort, 20)
		assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names), "replies: %v", names)
		assert.Equal(t, map[string]bool{npClientIP: true}, peers)
	})
}

// A node in VXLAN routing cannot send DSR: a Service annotated dsr is
// programmed with SNAT, and the reason is in service list (the API's
// warnings, the CLI's WARNING flag and line) rather than silently ignored;
// a misspelt algorithm keeps the node's. The Service still answers.
func TestPrivilegedServiceAnnotationRefused(t *testing.T) {
	e := newNPEnvArgs(t, "--routing", "vxlan")
	var pods strings.Builder
	for _, p := range e.pods {
		pods.WriteString(podYAML(p, "web"))
	}
	writeManifest(t, e.node, "pods.yaml", pods.String())
	svc := strings.Replace(nodePortYAML("web", "10.96.0.30", 30080, true, ""), "  namespace: default\n",
		"  namespace: default\n  annotations:\n    service.sluice.io/lb-mode: dsr\n    service.sluice.io/lb-algorithm: magleV2\n", 1)
	writeManifest(t, e.node, "web.yaml", svc)
	waitBackends(t, e.node, "0.0.0.0:30080", 2)

	svcs, err := e.node.Client().ListServices(t.Context())
	require.NoError(t, err)
	var found bool
	for _, s := range svcs {
		if s.Frontend != "0.0.0.0:30080" {
			continue
		}
		found = true
		assert.Equal(t, "snat", s.Mode)
		assert.Equal(t, "random", s.Algorithm)
		require.Len(t, s.Warnings, 2)
		assert.Contains(t, s.Warnings[0], "this node cannot send DSR (routing vxlan")
		assert.Contains(t, s.Warnings[1], `"magleV2": want random or maglev`)
	}
	require.True(t, found)
	out, err := e.node.NS.Command(harness.Bin(t, "sluice"), "--socket", e.node.Socket(), "service", "list").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `(?m)^default/web:http +NodePort +0\.0\.0\.0:30080/TCP +random +snat +\S+ +\S+ +WARNING$`, string(out))
	assert.Contains(t, string(out), "\nWARNING default/web: annotation service.sluice.io/lb-mode=\"dsr\": this node cannot send DSR (routing vxlan")

	names, _ := askManyPeer(t, e.ext, npNodeIP+":30080", 10)
	assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names))
}
