package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

const (
	podPort  = 8080
	nodePort = 9090
	timeout  = 2 * time.Second
)

// endpointOf returns the agent's view of pod p (with counters).
func endpointOf(t *testing.T, p *harness.Pod) api.Endpoint {
	t.Helper()
	ep, err := p.Node.Client().GetEndpoint(context.Background(), p.ContainerID, "eth0")
	require.NoError(t, err, "agent knows %s", p.Name)
	return ep
}

// count returns the packets counted for pod p in direction dir with reason.
func count(t *testing.T, p *harness.Pod, dir, reason string) uint64 {
	t.Helper()
	for _, c := range endpointOf(t, p).Counters {
		if c.Direction == dir && c.Reason == reason {
			return c.Packets
		}
	}
	return 0
}

// servePods starts the name-announcing TCP server on podPort in every pod.
func servePods(t *testing.T, pods ...*harness.Pod) {
	t.Helper()
	for _, p := range pods {
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.Name)
	}
}

// requireReply asks addr from ns and requires the reply to be want.
func requireReply(t *testing.T, ns *harness.NetNS, addr, want string) {
	t.Helper()
	got, err := harness.Ask(ns, addr, timeout)
	require.NoError(t, err, "ask %s from %s", addr, ns.Name)
	require.Equal(t, want, got, "reply from %s", addr)
}
