package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// XDP NodePort (--lb-acceleration) in the NodePort topology of
// nodeport_test.go: ext0 and rmt0 are veths, which run XDP natively; the
// client's and the remote backend's eth0 are readied for frames XDP sends
// them with harness.XDPPeer (see there why a veth needs it).

// xdpPeers readies the client's and the remote backend's veth ends for
// frames XDP sends them (see above).
func (e *npEnv) xdpPeers(t *testing.T) {
	t.Helper()
	for _, ns := range []*harness.NetNS{e.ext, e.rmt} {
		harness.XDPPeer(t, ns, "eth0")
	}
}

func (e *npEnv) ifindex(t *testing.T, dev string) uint32 {
	t.Helper()
	var idx uint32
	e.node.NS.Do(t, func() {
		ifc, err := net.InterfaceByName(dev)
		require.NoError(t, err)
		idx = uint32(ifc.Index)
	})
	return idx
}

func (e *npEnv) requireXDPStatus(t *testing.T, want string) {
	t.Helper()
	st, err := e.node.Client().Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"ext0": want, "rmt0": want}, st.KubeProxy.NodePortXDP, "sluice status")
}

func TestPrivilegedNodePortXDP(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) { testNodePortXDP(t, mode) })
	}
}

func testNodePortXDP(t *testing.T, mode string) {
	e := newNPEnvArgs(t, "--lb-acceleration", mode)
	e.xdpPeers(t)
	rmt0 := e.ifindex(t, "rmt0")
	e.requireXDPStatus(t, "xdp "+mode)
	out := e.node.NS.Run(t, "ip", "link", "show", "ext0")
	require.Contains(t, out, "xdp", "XDP attached to ext0")

	writeManifest(t, e.node, "remote.yaml", nodePortYAML("remote", "10.96.0.33", 30083, false, "")+
		sliceYAML("remote", [5]string{npRemoteIP, "node-2", "true", "true", "false"}))
	waitBackends(t, e.node, "0.0.0.0:30083", 1)
	fwd := e.hostCounter(t, e.ext0Index, metricsmap.ReasonXDPLBSNAT)
	rev := e.hostCounter(t, rmt0, metricsmap.ReasonXDPLBRevSNAT)
	names, peers := askManyPeer(t, e.ext, npNodeIP+":30083", 10)
	assert.Equal(t, map[string]int{"remote": 10}, names, "the remote backend answers")
	assert.Equal(t, map[string]bool{npNodeIP: true}, peers, "the remote backend sees the node IP")
	// Each connection: SYN, ACK, FIN/ACK... from the client; SYN/ACK, data,
	// FIN from the backend. A first packet before the neighbour is
	// resolved goes through tc.
	assert.GreaterOrEqual(t, e.hostCounter(t, e.ext0Index, metricsmap.ReasonXDPLBSNAT)-fwd, uint64(20), "XDP translated the requests")
	assert.GreaterOrEqual(t, e.hostCounter(t, rmt0, metricsmap.ReasonXDPLBRevSNAT)-rev, uint64(20), "XDP translated the replies")

	// Local backends are tc's, as ever.
	var pods string
	for _, p := range e.pods {
		pods += podYAML(p, "web")
	}
	writeManifest(t, e.node, "pods.yaml", pods)
	writeManifest(t, e.node, "web.yaml", nodePortYAML("web", "10.96.0.30", 30080, true, ""))
	waitBackends(t, e.node, "0.0.0.0:30080", 2)
	names, peers = askManyPeer(t, e.ext, npNodeIP+":30080", 10)
	assert.Equal(t, map[string]bool{"web-1": true, "web-2": true}, nameSet(names), "replies: %v", names)
	assert.Equal(t, map[string]bool{npClientIP: true}, peers, "local backends see the client's address")
}

// An established TCP stream through a NodePort to a remote backend goes on
// while the agent is restarted from --lb-acceleration disabled to native
// and back: tc and XDP share the conntrack and NAT entries.
func TestPrivilegedNodePortXDPSwitch(t *testing.T) {
	e := newNPEnvArgs(t, "--lb-acceleration", "disabled")
	e.xdpPeers(t)
	rmt0 := e.ifindex(t, "rmt0")
	e.requireXDPStatus(t, "tc")

	// An echo backend on a second address of the remote netns.
	const echoIP = "192.168.251.3"
	e.rmt.Run(t, "ip", "addr", "add", echoIP+"/24", "dev", "eth0")
	var (
		ln  net.Listener
		err error
	)
	e.rmt.Do(t, func() { ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", echoIP, podPort)) })
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	writeManifest(t, e.node, "echo.yaml", nodePortYAML("echo", "10.96.0.34", 30084, false, "")+
		sliceYAML("echo", [5]string{echoIP, "node-2", "true", "true", "false"}))
	waitBackends(t, e.node, "0.0.0.0:30084", 1)

	c, err := harness.Dial(e.ext, "tcp4", "", npNodeIP+":30084", timeout)
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	n := 0
	echo := func(phase string) {
		t.Helper()
		for i := 0; i < 5; i++ {
			n++
			msg := fmt.Sprintf("%s %d\n", phase, n)
			c.SetDeadline(time.Now().Add(timeout))
			_, err := io.WriteString(c, msg)
			require.NoError(t, err, phase)
			got, err := r.ReadString('\n')
			require.NoError(t, err, phase)
			require.Equal(t, msg, got, phase)
		}
	}
	xdpCount := func() uint64 {
		return e.hostCounter(t, e.ext0Index, metricsmap.ReasonXDPLBSNAT) + e.hostCounter(t, rmt0, metricsmap.ReasonXDPLBRevSNAT)
	}
	restart := func(mode string) {
		t.Helper()
		e.node.Agent().Stop(t)
		e.node.StartAgentArgs(t, "--devices", "ext0,rmt0", "--socket-lb=true", "--lb-acceleration", mode)
	}

	echo("tc")
	assert.Zero(t, xdpCount(), "no XDP yet")

	restart("native")
	e.requireXDPStatus(t, "xdp native")
	before := xdpCount()
	echo("xdp")
	assert.GreaterOrEqual(t, xdpCount()-before, uint64(10), "the stream goes through XDP now")

	restart("disabled")
	e.requireXDPStatus(t, "tc")
	require.NotContains(t, e.node.NS.Run(t, "ip", "link", "show", "ext0"), "xdp", "XDP detached")
	before = xdpCount()
	echo("tc again")
	assert.Equal(t, before, xdpCount(), "no XDP any more")
}
