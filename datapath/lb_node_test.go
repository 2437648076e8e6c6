package datapath_test

import (
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// Per-packet LB with real traffic on a simulated node (real agent, pods wired
// by the real CNI, no socket LB): pod → ClusterIP reaches pod backends
// (DNAT at the client's veth, reverse NAT at the backend's veth, both
// delivered with redirect_peer) and a host-network backend (reply
// reverse-NATed by to_container). The kernel's checksum handling of veth
// traffic (CHECKSUM_PARTIAL) is exercised here, not in BPF_PROG_TEST_RUN.
func TestPrivilegedLBOnNode(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	client := node.AddPod(t, "client")
	b1 := node.AddPod(t, "b1")
	b2 := node.AddPod(t, "b2")
	for _, p := range []*harness.Pod{b1, b2} {
		harness.ServeTCP(t, p.NS, p.Addr(8080), p.Name)
		harness.ServeUDP(t, p.NS, p.Addr(8053), p.Name)
	}
	harness.ServeTCP(t, node.NS, netip.AddrPortFrom(node.Gateway, 9090).String(), "host-backend")

	// A second handle on the agent's pinned maps (the LB reconciler's job).
	d, err := datapath.Load(node.BPFRoot, datapath.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })

	tcp := lbmap.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Proto: protoTCP}
	udp := lbmap.Frontend{Addr: tcp.Addr, Port: 53, Proto: protoUDP}
	host := lbmap.Frontend{Addr: netip.MustParseAddr("10.96.0.11"), Port: 80, Proto: protoTCP}
	require.NoError(t, d.LB().UpsertBackend(1, lbmap.Backend{Addr: b1.IP, Port: 8080, Proto: protoTCP}))
	require.NoError(t, d.LB().UpsertBackend(2, lbmap.Backend{Addr: b2.IP, Port: 8080, Proto: protoTCP}))
	require.NoError(t, d.LB().UpsertBackend(3, lbmap.Backend{Addr: b1.IP, Port: 8053, Proto: protoUDP}))
	require.NoError(t, d.LB().UpsertBackend(4, lbmap.Backend{Addr: b2.IP, Port: 8053, Proto: protoUDP}))
	require.NoError(t, d.LB().UpsertBackend(5, lbmap.Backend{Addr: node.Gateway, Port: 9090, Proto: protoTCP}))
	for id, fe := range map[uint16]lbmap.Frontend{1: tcp, 2: udp, 3: host} {
		require.NoError(t, d.LB().UpsertRevNAT(id, fe))
	}
	require.NoError(t, d.LB().UpsertService(tcp, lbmap.Service{RevNATID: 1, Backends: []uint32{1, 2}}))
	require.NoError(t, d.LB().UpsertService(udp, lbmap.Service{RevNATID: 2, Backends: []uint32{3, 4}}))
	require.NoError(t, d.LB().UpsertService(host, lbmap.Service{RevNATID: 3, Backends: []uint32{5}}))

	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		name, err := harness.Ask(client.NS, "10.96.0.10:80", 3*time.Second)
		require.NoError(t, err, "TCP to the ClusterIP, attempt %d", i)
		seen[name]++
	}
	t.Logf("TCP replies: %v", seen)
	assert.Equal(t, map[string]bool{"b1": true, "b2": true}, keys(seen))

	seen = map[string]int{}
	for i := 0; i < 20; i++ {
		// A new socket (source port) each time: a new flow.
		name, err := harness.AskUDP(client.NS, "10.96.0.10:53", 3*time.Second)
		require.NoError(t, err, "UDP to the ClusterIP, attempt %d", i)
		seen[name]++
	}
	t.Logf("UDP replies: %v", seen)
	assert.Equal(t, map[string]bool{"b1": true, "b2": true}, keys(seen))

	name, err := harness.Ask(client.NS, "10.96.0.11:80", 3*time.Second)
	require.NoError(t, err, "TCP to a service with a host-network backend")
	assert.Equal(t, "host-backend", name)

	// A long-lived connection keeps its backend while the service changes.
	c, err := harness.Dial(client.NS, "tcp4", "", "10.96.0.10:80", 3*time.Second)
	require.NoError(t, err)
	defer c.Close()
	first := readLine(t, c)
	other := map[string]uint32{"b1": 2, "b2": 1}[first]
	require.NoError(t, d.LB().UpsertService(tcp, lbmap.Service{RevNATID: 1, Backends: []uint32{other}}))
	_, err = c.Write([]byte("still there?\n"))
	require.NoError(t, err)
	assert.Equal(t, "still there?", readLine(t, c), "the echo comes from the same backend")
	name, err = harness.Ask(client.NS, "10.96.0.10:80", 3*time.Second)
	require.NoError(t, err)
	assert.NotEqual(t, first, name, "new connections use the new backend list")

	// No backends: the SYN is answered with ICMP port unreachable.
	require.NoError(t, d.LB().UpsertService(tcp, lbmap.Service{RevNATID: 1}))
	_, err = harness.Ask(client.NS, "10.96.0.10:80", 3*time.Second)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)

	cs, err := d.Metrics().Counters()
	require.NoError(t, err)
	sum := map[metricsmap.Reason]uint64{}
	for _, c := range cs {
		sum[c.Reason] += c.Packets
	}
	assert.Positive(t, sum[metricsmap.ReasonLBTranslated])
	assert.Positive(t, sum[metricsmap.ReasonLBRevNAT])
	assert.Positive(t, sum[metricsmap.DropNoServiceBackend])
	ct, err := d.CT().Entries()
	require.NoError(t, err)
	assert.NotEmpty(t, ct)
}

func keys(m map[string]int) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func readLine(t *testing.T, c interface {
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
}) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
	var line []byte
	b := make([]byte, 1)
	for {
		_, err := c.Read(b)
		require.NoError(t, err)
		if b[0] == '\n' {
			return string(line)
		}
		line = append(line, b[0])
	}
}
