package integration

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/test/harness"
)

// twoNodes is two simulated nodes (PodCIDRs 10.244.1.0/24 and
// 10.244.2.0/24) joined by a veth, each with one pod serving its name.
type twoNodes struct {
	n1, n2 *harness.Node
	ul     *harness.Underlay
	p1, p2 *harness.Pod
	opts   twoNodesOptions
	ext    *harness.NetNS // the outside client of node 1 (opts.external)
}

// twoNodesOptions configure newTwoNodesWith.
type twoNodesOptions struct {
	routing string
	// underlayMTU, when set, is the underlay's MTU (default 1500), and each
	// agent gets its end's address as --node-ip, so that it finds the
	// underlay device.
	underlayMTU int
	// external, when set, wires an outside client netns to node 1 (ext0,
	// npNodeIP - npClientIP) and runs node 1's host programs on the
	// underlay and ext0 (--devices), with its underlay address as
	// --node-ip (the SNAT address), as on a real node.
	external bool
	// lbAcceleration is node 1's --lb-acceleration (with external).
	lbAcceleration string
	// args are further sluice-agent flags of both nodes.
	args []string
}

// transferSize is what the large transfers send through the echo servers.
const transferSize = 2 << 20

// crossPodYAML is pod p's object with its node and IP, as the API server
// would have it: the other node maps the IP to the pod's identity.
func crossPodYAML(p *harness.Pod) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
  labels: {app: %s}
spec:
  nodeName: %s
  containers: [{name: app, image: none, ports: [{name: http, containerPort: %d}]}]
status:
  phase: Running
  podIP: %s
  podIPs: [{ip: %s}]
---
`, p.Name, p.Name, p.Node.Name, podPort, p.IP, p.IP)
}

func newTwoNodes(t *testing.T, routing string) *twoNodes {
	t.Helper()
	return newTwoNodesWith(t, twoNodesOptions{routing: routing})
}

func newTwoNodesWith(t *testing.T, opts twoNodesOptions) *twoNodes {
	t.Helper()
	c := &twoNodes{opts: opts}
	c.n1 = harness.NewNode(t, harness.NodeOptions{Index: 1})
	c.n2 = harness.NewNode(t, harness.NodeOptions{Index: 2})
	c.ul = harness.ConnectNodes(t, c.n1, c.n2)
	if opts.underlayMTU != 0 {
		c.ul.SetMTU(t, opts.underlayMTU)
	}
	if opts.external {
		c.ext = wire(t, c.n1, "sl-ext-", "ext0", npNodeIP, npClientIP)
	}
	nodes := harness.NodeYAML(c.n1, c.ul.AddrA) + harness.NodeYAML(c.n2, c.ul.AddrB)
	for _, n := range []*harness.Node{c.n1, c.n2} {
		writeManifest(t, n, "nodes.yaml", nodes)
		n.StartAgentWith(t, harness.AgentOptions{Args: c.agentArgs(n)})
	}
	c.p1, c.p2 = c.n1.AddPod(t, "pod-a"), c.n2.AddPod(t, "pod-b")
	pods := crossPodYAML(c.p1) + crossPodYAML(c.p2)
	for _, n := range []*harness.Node{c.n1, c.n2} {
		writeManifest(t, n, "pods.yaml", pods)
	}
	servePods(t, c.p1, c.p2)
	return c
}

// agentArgs are the sluice-agent flags of node n.
func (c *twoNodes) agentArgs(n *harness.Node) []string {
	args := []string{"--routing", c.opts.routing}
	if c.opts.underlayMTU != 0 {
		ip := c.ul.AddrA
		if n == c.n2 {
			ip = c.ul.AddrB
		}
		args = append(args, "--node-ip", ip.String())
	}
	if c.opts.external && n == c.n1 {
		args = append(args, "--devices", c.ul.IfName+",ext0")
		if c.opts.lbAcceleration != "" {
			args = append(args, "--lb-acceleration", c.opts.lbAcceleration)
		}
		if c.opts.underlayMTU == 0 {
			args = append(args, "--node-ip", c.ul.AddrA.String())
		}
	}
	return append(args, c.opts.args...)
}

// requirePodMTU checks both ends of both pods' veths.
func (c *twoNodes) requirePodMTU(t *testing.T, want int) {
	t.Helper()
	for _, p := range []*harness.Pod{c.p1, c.p2} {
		require.Equal(t, want, p.NS.LinkMTU(t, "eth0"), "MTU of %s's eth0", p.Name)
		require.Equal(t, want, p.Node.NS.LinkMTU(t, p.HostIfName), "MTU of %s's host veth %s", p.Name, p.HostIfName)
	}
}

// requireLargeTransfer sends transferSize bytes each way across the nodes
// through the pods' echo servers and requires them back intact from the
// right pod.
func (c *twoNodes) requireLargeTransfer(t *testing.T) {
	t.Helper()
	for _, d := range []struct {
		from, to *harness.Pod
	}{{c.p1, c.p2}, {c.p2, c.p1}} {
		name, err := harness.Echo(d.from.NS, d.to.Addr(podPort), transferSize, 30*time.Second)
		require.NoError(t, err, "%d bytes %s -> %s and back", transferSize, d.from.Name, d.to.Name)
		require.Equal(t, d.to.Name, name)
	}
}

// routeTo returns the node's route to cidr ("" if none), as iproute2 prints it.
func routeTo(t *testing.T, n *harness.Node, cidr string) string {
	t.Helper()
	return strings.TrimSpace(n.NS.Run(t, "ip", "route", "show", "exact", cidr))
}

// waitRoute waits until the node's route to cidr contains every part.
func waitRoute(t *testing.T, n *harness.Node, cidr string, parts ...string) string {
	t.Helper()
	var last string
	require.Eventually(t, func() bool {
		last = routeTo(t, n, cidr)
		for _, p := range parts {
			if !strings.Contains(last, p) {
				return false
			}
		}
		return last != ""
	}, 10*time.Second, 50*time.Millisecond, "route to %s on %s containing %q; have %q", cidr, n.Name, parts, last)
	return last
}

// requirePodToPod checks both directions with application replies.
func (c *twoNodes) requirePodToPod(t *testing.T) {
	t.Helper()
	requireReply(t, c.p1.NS, c.p2.Addr(podPort), "pod-b")
	requireReply(t, c.p2.NS, c.p1.Addr(podPort), "pod-a")
}

// requireServiceToRemoteBackend programs a ClusterIP Service on node 1
// whose only backend is pod-b on node 2 and asks it from pod-a (per-packet
// LB at pod-a's veth, then the cross-node route).
func (c *twoNodes) requireServiceToRemoteBackend(t *testing.T) {
	t.Helper()
	writeManifest(t, c.n1, "remote-svc.yaml", plainServiceYAML("remote", vip, "")+
		sliceYAML("remote", [5]string{c.p2.IP.String(), c.n2.Name, "true", "true", "false"}))
	addr := fmt.Sprintf("%s:%d", vip, svcPort)
	waitBackends(t, c.n1, addr, 1)
	require.Equal(t, map[string]int{"pod-b": 5}, askMany(t, c.p1.NS, addr, 5))
}

// removeNode2 drops node 2's object from node 1's manifests.
func (c *twoNodes) removeNode2(t *testing.T) {
	t.Helper()
	writeManifest(t, c.n1, "nodes.yaml", harness.NodeYAML(c.n1, c.ul.AddrA))
	require.Eventually(t, func() bool { return routeTo(t, c.n1, c.n2.PodCIDR.String()) == "" },
		10*time.Second, 50*time.Millisecond, "route to node 2 removed")
	_, err := harness.Ask(c.p1.NS, c.p2.Addr(podPort), 500*time.Millisecond)
	require.Error(t, err, "no route to node 2's pods any more")
}

// restartKeepsRoutes stops node 1's agent, checks the route and traffic
// stay meanwhile, starts it again and checks they are still there.
func (c *twoNodes) restartKeepsRoutes(t *testing.T, want string) {
	t.Helper()
	c.n1.Agent().Stop(t)
	require.Equal(t, want, routeTo(t, c.n1, c.n2.PodCIDR.String()), "route kept while the agent is down")
	c.requirePodToPod(t)
	applied := routesApplied(t, c.n1)
	c.n1.StartAgentWith(t, harness.AgentOptions{Args: c.agentArgs(c.n1)})
	require.Eventually(t, func() bool { return routesApplied(t, c.n1) > applied }, 10*time.Second, 50*time.Millisecond,
		"the new agent synced its node routes from its manifests")
	require.Equal(t, want, routeTo(t, c.n1, c.n2.PodCIDR.String()), "route adopted after restart")
	c.requirePodToPod(t)
}

// routesApplied counts the node route syncs that changed the node manager's
// applied set in n's agent log (every agent, restarts included: the first
// sync of a new agent with peers always does).
func routesApplied(t *testing.T, n *harness.Node) int {
	t.Helper()
	b, err := os.ReadFile(n.AgentLog())
	require.NoError(t, err)
	return strings.Count(string(b), `msg="Node routes applied"`)
}

func TestPrivilegedCrossNodeNative(t *testing.T) {
	c := newTwoNodes(t, "native")
	r1 := waitRoute(t, c.n1, "10.244.2.0/24", "via "+c.ul.AddrB.String(), "proto 211")
	waitRoute(t, c.n2, "10.244.1.0/24", "via "+c.ul.AddrA.String(), "proto 211")
	require.Empty(t, routeTo(t, c.n1, "10.244.1.0/24"), "no route to the own PodCIDR")
	require.NotContains(t, c.n1.NS.Run(t, "ip", "link", "show"), "sluice_vxlan")

	c.requirePodToPod(t)
	c.requirePodMTU(t, 1500) // the underlay's: no encapsulation
	c.requireLargeTransfer(t)
	c.requireServiceToRemoteBackend(t)
	c.restartKeepsRoutes(t, r1)
	c.removeNode2(t)
}

func TestPrivilegedCrossNodeVXLAN(t *testing.T) {
	c := newTwoNodes(t, "vxlan")
	r1 := waitRoute(t, c.n1, "10.244.2.0/24", "encap ip id 1", "dst "+c.ul.AddrB.String(), "dev sluice_vxlan", "proto 211")
	waitRoute(t, c.n2, "10.244.1.0/24", "encap ip id 1", "dst "+c.ul.AddrA.String(), "dev sluice_vxlan")
	require.NotContains(t, r1, "via "+c.ul.AddrB.String(), "no native route")
	dev := c.n1.NS.Run(t, "ip", "-d", "link", "show", "sluice_vxlan")
	require.Contains(t, dev, "vxlan external")
	require.Contains(t, dev, "dstport 8472")
	// The underlay veth is 1500: the tunnel and the pods get 1500 less 50.
	require.Contains(t, dev, " mtu 1450 ")
	c.requirePodMTU(t, 1450)

	c.requireTunnelTraffic(t, 1500)

	c.requireServiceToRemoteBackend(t)
	c.restartKeepsRoutes(t, r1)
	c.removeNode2(t)

	// Cleanup on disable: --routing none removes the device and routes.
	c.n2.Agent().Stop(t)
	c.n2.StartAgentWith(t, harness.AgentOptions{Args: []string{"--routing", "none"}})
	require.Eventually(t, func() bool {
		out, err := c.n2.NS.Command("ip", "link", "show", "sluice_vxlan").CombinedOutput()
		return err != nil && strings.Contains(string(out), "does not exist") &&
			routeTo(t, c.n2, c.n1.PodCIDR.String()) == ""
	}, 10*time.Second, 50*time.Millisecond, "sluice_vxlan and its routes removed with --routing none")
}

// On an underlay of 1400 bytes, the agents find the device of their
// --node-ip and give the tunnel and the pods 1350; a large transfer crosses
// intact in tunnel packets of exactly the underlay's MTU, none fragmented
// (with pods at 1500 and the tunnel at 1450, as before the pod MTU was
// derived, full-size packets left as two outer fragments each).
func TestPrivilegedCrossNodeVXLANUnderlayMTU(t *testing.T) {
	c := newTwoNodesWith(t, twoNodesOptions{routing: "vxlan", underlayMTU: 1400})
	waitRoute(t, c.n1, "10.244.2.0/24", "encap ip id 1", "dst "+c.ul.AddrB.String(), "dev sluice_vxlan")
	waitRoute(t, c.n2, "10.244.1.0/24", "encap ip id 1", "dst "+c.ul.AddrA.String(), "dev sluice_vxlan")
	for _, n := range []*harness.Node{c.n1, c.n2} {
		require.Equal(t, 1400, n.NS.LinkMTU(t, c.ul.IfName))
		require.Equal(t, 1350, n.NS.LinkMTU(t, "sluice_vxlan"), "sluice_vxlan on %s", n.Name)
	}
	c.requirePodMTU(t, 1350)

	c.requireTunnelTraffic(t, 1400)
}

// requireTunnelTraffic checks pod-to-pod traffic and a large transfer in
// both directions cross the underlay (MTU underlayMTU) only inside VXLAN,
// unfragmented, in tunnel packets that fill the underlay MTU around pod
// packets that fill the pod MTU (underlayMTU less the VXLAN overhead).
func (c *twoNodes) requireTunnelTraffic(t *testing.T, underlayMTU int) {
	t.Helper()
	capture := startCapture(t, c.n1.NS, c.ul.IfName)
	c.requirePodToPod(t)
	c.requireLargeTransfer(t)
	seen := capture.stop()
	t.Logf("underlay capture: %+v", seen)
	require.Positive(t, seen.vxlanTo[c.p2.IP], "VXLAN packets to pod-b on the underlay: %+v", seen)
	require.Positive(t, seen.vxlanTo[c.p1.IP], "VXLAN replies to pod-a on the underlay: %+v", seen)
	require.Zero(t, seen.plainPod, "no unencapsulated pod packets on the underlay: %+v", seen)
	require.Zero(t, seen.fragments, "no fragmented tunnel packets: %+v", seen)
	require.Equal(t, underlayMTU, seen.maxVXLAN, "full-size tunnel packets fill the underlay's MTU: %+v", seen)
	require.Equal(t, underlayMTU-nodemgr.VXLANOverhead, seen.maxInner, "full-size pod packets fill the pod MTU: %+v", seen)
}

// captured counts what a capture saw on the underlay.
type captured struct {
	vxlanTo   map[netip.Addr]int // VXLAN (UDP 8472) packets by inner IPv4 destination
	plainPod  int                // IPv4 packets with a pod address outside a tunnel
	fragments int                // IPv4 fragments (MF set or an offset)
	maxVXLAN  int                // largest IPv4 total length of a VXLAN packet
	maxInner  int                // largest inner IPv4 total length
}

func (c captured) String() string {
	return fmt.Sprintf("vxlanTo=%v plainPod=%d fragments=%d maxVXLAN=%d maxInner=%d",
		c.vxlanTo, c.plainPod, c.fragments, c.maxVXLAN, c.maxInner)
}

type capture struct {
	fd     int
	halt   chan struct{}
	done   chan captured
	once   sync.Once
	result captured
}

// stop ends the capture and returns what it saw; idempotent.
func (c *capture) stop() captured {
	c.once.Do(func() {
		close(c.halt)
		c.result = <-c.done
		unix.Close(c.fd)
	})
	return c.result
}

// startCapture reads every frame on ifName in ns with an AF_PACKET socket
// until stop.
func startCapture(t *testing.T, ns *harness.NetNS, ifName string) *capture {
	t.Helper()
	c := &capture{halt: make(chan struct{}), done: make(chan captured, 1)}
	var err error
	ns.Do(t, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(ifName); err != nil {
			return
		}
		proto := int(htons(unix.ETH_P_ALL))
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto); err != nil {
			return
		}
		err = unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	require.NoError(t, err, "packet socket on %s", ifName)
	tv := unix.Timeval{Usec: 100000}
	require.NoError(t, unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	t.Cleanup(func() { c.stop() })
	go func() {
		seen := captured{vxlanTo: map[netip.Addr]int{}}
		buf := make([]byte, 65536)
		pods := netip.MustParsePrefix(harness.PodCIDR)
		halted := false
		for {
			flags := 0
			if !halted {
				select {
				case <-c.halt:
					// Read what is queued before reporting: on a busy
					// machine this goroutine may not have run while the
					// traffic passed.
					halted = true
				default:
				}
			}
			if halted {
				flags = unix.MSG_DONTWAIT
			}
			n, _, rerr := unix.Recvfrom(c.fd, buf, flags)
			if rerr != nil {
				if halted {
					c.done <- seen
					return
				}
				continue
			}
			hdr, l4, ok := ipv4(buf[:n])
			if !ok {
				continue
			}
			if pods.Contains(hdr.src) || pods.Contains(hdr.dst) {
				seen.plainPod++
			}
			if hdr.fragment {
				seen.fragments++
			}
			// UDP to 8472, then 8 bytes of VXLAN header and the inner frame.
			if hdr.proto == unix.IPPROTO_UDP && len(l4) >= 16 && binary.BigEndian.Uint16(l4[2:]) == 8472 {
				if inner, _, ok := ipv4(l4[16:]); ok {
					seen.vxlanTo[inner.dst]++
					seen.maxVXLAN = max(seen.maxVXLAN, hdr.length)
					seen.maxInner = max(seen.maxInner, inner.length)
				}
			}
		}
	}()
	return c
}

// ipv4Header is what the capture reads of an IPv4 header.
type ipv4Header struct {
	src, dst netip.Addr
	proto    byte
	length   int  // total length
	fragment bool // more fragments or a fragment offset
}

// ipv4 parses an Ethernet frame carrying IPv4.
func ipv4(f []byte) (h ipv4Header, l4 []byte, ok bool) {
	if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP {
		return h, nil, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return h, nil, false
	}
	h.src, _ = netip.AddrFromSlice(ip[12:16])
	h.dst, _ = netip.AddrFromSlice(ip[16:20])
	h.proto = ip[9]
	h.length = int(binary.BigEndian.Uint16(ip[2:]))
	h.fragment = binary.BigEndian.Uint16(ip[6:])&0x3fff != 0
	return h, ip[ihl:], true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
