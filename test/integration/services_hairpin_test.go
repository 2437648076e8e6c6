package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
