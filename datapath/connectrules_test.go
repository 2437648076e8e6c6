package datapath_test

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// Connect rules run in the socket-LB topology (socklb_test.go: backends
// 10.244.250.1 and .2 with a TCP server on 8080 and a UDP server on 5353
// each, answering with their name), with the process sensor's knob on.
// Every rule is Global or scoped to the test netns, and the hooks attach
// to the test's cgroup: only the test's clients are ever refused.
type connEnv struct {
	*sockLB
	netns uint32 // inode of the test netns
}

func newConnEnv(t *testing.T, opts datapath.Options) *connEnv {
	t.Helper()
	s := newSockLB(t)
	s.d = progtest.Load(t, harness.BPFFS(t), opts)
	require.NoError(t, s.d.SocketLB().Attach(s.cg))
	t.Cleanup(func() { assert.NoError(t, s.d.SocketLB().Detach()) })
	return &connEnv{sockLB: s, netns: netnsInode(t, s.ns)}
}

func netnsInode(t *testing.T, ns *harness.NetNS) uint32 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(ns.Path(), &st))
	return uint32(st.Ino)
}

// one runs one client attempt.
func (e *connEnv) one(t *testing.T, network, addr string) sockResult {
	t.Helper()
	return runSockClient(t, e.ns, e.cg, network, addr, 1)[0]
}

func (e *connEnv) set(t *testing.T, rules ...datapath.ConnectRule) {
	t.Helper()
	require.NoError(t, e.d.SetConnectRules(rules))
}

// denied asserts that call failed with EPERM (a refusing cgroup hook).
func denied(t *testing.T, r sockResult, call, what string) {
	t.Helper()
	assert.Equal(t, call, r.Call, "%s: %+v", what, r)
	assert.Equal(t, syscall.EPERM, syscall.Errno(r.Errno), "%s: got %v", what, syscall.Errno(r.Errno))
}

// replied asserts that the server named name answered.
func replied(t *testing.T, r sockResult, name, what string) {
	t.Helper()
	assert.Empty(t, r.Call, "%s: failed in %s: %v", what, r.Call, syscall.Errno(r.Errno))
	assert.Equal(t, name, r.Reply, what)
}

// deny is an enforced Global deny rule of slot for proto to dests and ports.
func deny(slot uint8, proto uint8, dests []string, ports ...uint16) datapath.ConnectRule {
	r := datapath.ConnectRule{Slot: slot, PolicyID: uint32(slot) + 100, Global: true, Protocol: proto, Ports: ports,
		Action: procsensor.ConnectDeny, Enforce: true}
	for _, d := range dests {
		r.Dests = append(r.Dests, netip.MustParsePrefix(d))
	}
	return r
}

const (
	back1TCP = "10.244.250.1:8080"
	back2TCP = "10.244.250.2:8080"
	back1UDP = "10.244.250.1:5353"
	back2UDP = "10.244.250.2:5353"
)

// Destinations, NotDests, ports, NotPorts and protocol: refused with EPERM
// by connect() (TCP, connected UDP) and sendmsg() (UDP sendto), while the
// destinations the rules leave alone answer.
func TestPrivilegedConnectRuleFilters(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})

	e.set(t, deny(0, protoTCP, []string{"10.244.250.1/32"}, 8080))
	denied(t, e.one(t, "tcp", back1TCP), "connect", "TCP to the denied address and port")
	replied(t, e.one(t, "tcp", back2TCP), "backend-2", "TCP to another address")
	replied(t, e.one(t, "udp", back1UDP), "backend-1", "UDP: the rule is TCP only")
	r := e.one(t, "tcp", "10.244.250.1:9")
	assert.Equal(t, syscall.ECONNREFUSED, syscall.Errno(r.Errno), "another port is not refused by the rule: %+v", r)

	e.set(t, deny(0, protoUDP, []string{"10.244.250.0/24"}))
	denied(t, e.one(t, "udp", back1UDP), "sendto", "UDP sendto into the denied prefix")
	denied(t, e.one(t, "udpconn", back2UDP), "connect", "UDP connect into the denied prefix")
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "TCP: the rule is UDP only")

	notDests := deny(0, 0, []string{"10.244.250.1/32"})
	notDests.NotDests = true
	e.set(t, notDests)
	denied(t, e.one(t, "tcp", back2TCP), "connect", "NotDests: TCP outside the prefix")
	denied(t, e.one(t, "udp", back2UDP), "sendto", "NotDests: UDP outside the prefix")
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "NotDests: inside the prefix")
	replied(t, e.one(t, "udpconn", back1UDP), "backend-1", "NotDests: UDP inside the prefix")

	notPorts := deny(0, 0, []string{"10.244.250.0/24"}, 8080)
	notPorts.NotPorts = true
	e.set(t, notPorts)
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "NotPorts: the listed port")
	denied(t, e.one(t, "tcp", "10.244.250.1:9"), "connect", "NotPorts: another port")
	denied(t, e.one(t, "udpconn", back1UDP), "connect", "NotPorts: UDP to another port")

	// Nested prefixes of two rules: the trie answers with the /32 entry,
	// which carries the /24 rule too.
	e.set(t, deny(0, protoTCP, []string{"10.244.250.0/24"}, 9, 10), deny(1, protoTCP, []string{"10.244.250.2/32"}, 8080))
	denied(t, e.one(t, "tcp", "10.244.250.2:9"), "connect", "the /24 rule inside the /32 prefix")
	denied(t, e.one(t, "tcp", "10.244.250.1:10"), "connect", "the /24 rule")
	denied(t, e.one(t, "tcp", back2TCP), "connect", "the /32 rule")
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "neither rule")

	// A rule kept in a replacement keeps applying; the removed one stops.
	e.set(t, deny(1, protoTCP, []string{"10.244.250.2/32"}, 8080))
	denied(t, e.one(t, "tcp", back2TCP), "connect", "kept rule")
	r = e.one(t, "tcp", "10.244.250.2:9")
	assert.Equal(t, syscall.ECONNREFUSED, syscall.Errno(r.Errno), "removed rule: %+v", r)

	e.set(t)
	replied(t, e.one(t, "tcp", back2TCP), "backend-2", "no rules")
	n, err := e.d.ConnectEntries()
	require.NoError(t, err)
	assert.Equal(t, datapath.ConnectEntries{}, n, "no rules leave no entries")
}

// Through a service: the destination the process gave (the frontend) and
// the backend the socket LB chose are both checked, each address with its
// own port.
func TestPrivilegedConnectRuleService(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})
	programService(t, e.d, lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}, 8080, 0, 1)
	udp := lbmap.Frontend{Addr: sockVIP, Port: 53, Proto: protoUDP}
	require.NoError(t, e.d.LB().UpsertBackend(3, lbmap.Backend{Addr: sockBack1, Port: 5353, Proto: protoUDP}))
	require.NoError(t, e.d.LB().UpsertRevNAT(8, udp))
	require.NoError(t, e.d.LB().UpsertService(udp, lbmap.Service{RevNATID: 8, Backends: []uint32{3}}))
	const vipTCP, vipUDP = "10.96.0.10:80", "10.96.0.10:53"

	r := e.one(t, "tcp", vipTCP)
	replied(t, r, "backend-1", "no rules")
	assert.Equal(t, vipTCP, r.Peer)

	e.set(t, deny(0, protoTCP, []string{"10.96.0.10/32"}, 80))
	denied(t, e.one(t, "tcp", vipTCP), "connect", "the frontend denied")
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "the frontend denied, the backend direct")

	e.set(t, deny(0, protoTCP, []string{"10.244.250.1/32"}, 8080))
	denied(t, e.one(t, "tcp", vipTCP), "connect", "the backend denied, through the frontend")
	denied(t, e.one(t, "tcp", back1TCP), "connect", "the backend denied, direct")

	e.set(t, deny(0, protoTCP, []string{"10.96.0.10/32"}, 8080))
	replied(t, e.one(t, "tcp", vipTCP), "backend-1", "the frontend's address with the backend's port is neither destination")

	e.set(t, deny(0, protoUDP, []string{"10.96.0.10/32"}))
	denied(t, e.one(t, "udp", vipUDP), "sendto", "UDP frontend denied")
	denied(t, e.one(t, "udpconn", vipUDP), "connect", "UDP frontend denied, connected socket")
	replied(t, e.one(t, "udp", back1UDP), "backend-1", "UDP frontend denied, the backend direct")

	e.set(t, deny(0, protoUDP, []string{"10.244.250.1/32"}, 5353))
	denied(t, e.one(t, "udp", vipUDP), "sendto", "UDP backend denied, through the frontend")
}

// A rule that is not Global applies to the network namespaces its slot is
// scoped to only.
func TestPrivilegedConnectRuleScope(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})
	other := netnsInode(t, harness.NewNetNS(t, "sl-other-"))
	r := deny(5, protoTCP, []string{"10.244.250.1/32"})
	r.Global = false
	e.set(t, r)

	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "no scope")
	require.NoError(t, e.d.SetConnectScope(other, 1<<5))
	require.NoError(t, e.d.SetConnectScope(e.netns, 1<<4))
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "scoped to another netns, and another slot here")
	require.NoError(t, e.d.SetConnectScope(e.netns, 1<<4|1<<5))
	denied(t, e.one(t, "tcp", back1TCP), "connect", "scoped to the client's netns")
	scopes, err := e.d.ConnectScopes()
	require.NoError(t, err)
	assert.Equal(t, map[uint32]uint64{other: 1 << 5, e.netns: 1<<4 | 1<<5}, scopes)

	require.NoError(t, e.d.DeleteConnectScope(e.netns))
	require.NoError(t, e.d.DeleteConnectScope(e.netns), "deleting twice")
	replied(t, e.one(t, "tcp", back1TCP), "backend-1", "scope deleted")
	require.NoError(t, e.d.DeleteConnectScope(other))
	n, err := e.d.ConnectEntries()
	require.NoError(t, err)
	assert.Equal(t, datapath.ConnectEntries{Slots: 1, Dests: 1}, n)

	// Without the process sensor's knob the hooks have no rule code.
	off := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	assert.ErrorIs(t, off.SetConnectRules(nil), datapath.ErrConnectRulesOff)
	assert.ErrorIs(t, off.SetConnectScope(e.netns, 1), datapath.ErrConnectRulesOff)
}
