package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// Hairpin: a pod that is the only backend of a ClusterIP reaches itself
// through the VIP (per-packet LB at its veth). from_container SNATs the flow
// to the hairpin address 169.254.42.1, the pod answers that address through
// its default route (out of eth0 again), and the reply is translated back to
// VIP -> pod.
func TestPrivilegedServiceHairpin(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{SocketLB: false})
	self := node.AddPod(t, "web-1")
	harness.ServeTCP(t, self.NS, self.Addr(podPort), self.Name)
	harness.ServeUDP(t, self.NS, self.Addr(podPort), self.Name)
	writeManifest(t, node, "pods.yaml", podYAML(self, "web"))
	writeManifest(t, node, "web.yaml", serviceYAML("web", vip, ""))
	addr := fmt.Sprintf("%s:%d", vip, svcPort)
	waitBackends(t, node, addr, 1)

	for i := 0; i < 5; i++ {
		requireReply(t, self.NS, addr, self.Name)
		got, err := harness.AskUDP(self.NS, addr, timeout)
		require.NoError(t, err, "UDP to %s from its only backend", addr)
		require.Equal(t, self.Name, got)
	}

	// The pod's connection sees the VIP as its peer.
	c, err := harness.Dial(self.NS, "tcp4", "", addr, timeout)
	require.NoError(t, err)
	assert.Equal(t, addr, c.RemoteAddr().String())
	c.Close()

	// Conntrack: the backend entries come from the hairpin address.
	ct, err := node.Client().CT(context.Background())
	require.NoError(t, err)
	hairpin := 0
	for _, e := range ct {
		if !e.Service && strings.HasPrefix(e.Source, "169.254.42.1:") {
			assert.Equal(t, self.Addr(podPort), e.Destination)
			assert.True(t, e.PolicyAllowed, "%+v", e)
			hairpin++
		}
	}
	assert.GreaterOrEqual(t, hairpin, 11, "a hairpin backend entry per flow: %+v", ct)
}

// A pod reaches a NodePort service through an address of its node: ext0's
// (npNodeIP) and the pod gateway on its veth (node.Gateway, a node address
// as soon as the first pod's ADD returns). Backends: web-1
// (another pod) and, for hairpin on top of NodePort, the client itself.
func TestPrivilegedNodePortFromPod(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	wire(t, node, "sl-ext-", "ext0", npNodeIP, npClientIP)
	node.StartAgentArgs(t, "--devices", "ext0")
	client := node.AddPod(t, "client")
	web := node.AddPod(t, "web-1")
	servePeer(t, web.NS, web.Addr(podPort), web.Name)
	servePeer(t, client.NS, client.Addr(podPort), client.Name)
	writeManifest(t, node, "pods.yaml", podYAML(web, "web")+podYAML(client, "self"))
	writeManifest(t, node, "web.yaml", nodePortYAML("web", "10.96.0.30", 30080, true, ""))
	writeManifest(t, node, "self.yaml", nodePortYAML("self", "10.96.0.31", 30081, true, ""))
	waitBackends(t, node, "0.0.0.0:30080", 1)
	waitBackends(t, node, "0.0.0.0:30081", 1)

	for _, ip := range []string{npNodeIP, node.Gateway.String()} {
		addr := ip + ":30080"
		require.Eventually(t, func() bool {
			name, _, err := askPeer(client.NS, addr, 500*time.Millisecond)
			return err == nil && name == web.Name
		}, 10*time.Second, 100*time.Millisecond, "NodePort %s from a pod", addr)
		for i := 0; i < 5; i++ {
			name, peer, err := askPeer(client.NS, addr, timeout)
			require.NoError(t, err, "ask %s", addr)
			assert.Equal(t, web.Name, name)
			assert.Equal(t, client.IP.String(), peer, "the backend sees the pod's address")
		}
		c, err := harness.Dial(client.NS, "tcp4", "", addr, timeout)
		require.NoError(t, err)
		assert.Equal(t, addr, c.RemoteAddr().String(), "the reply comes from the address the pod used")
		c.Close()

		// Hairpin: the client is the only backend of the other NodePort.
		name, peer, err := askPeer(client.NS, ip+":30081", timeout)
		require.NoError(t, err, "hairpin through NodePort %s:30081", ip)
		assert.Equal(t, client.Name, name)
		assert.Equal(t, "169.254.42.1", peer, "a hairpin flow comes from the hairpin address")
	}
}
