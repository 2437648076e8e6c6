package datapath_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
)

// NodePort traffic redirected into a local backend (bpf_redirect_peer skips
// the pod's to_container) meets the backend's ingress policy at the host
// device; the backend's replies pass its egress policy by conntrack.

const npPolEP, npPolID = 1, 2000

// newNodePortPolicyEnv is the host device topology with the local backend pod
// given a real veth in the test netns (from_container runs on its ifindex),
// an identity, and the NodePort service hostNodePort → beLocal.
func newNodePortPolicyEnv(t testing.TB) (*hostEnv, int) {
	t.Helper()
	e := newHostEnv(t)
	e.ns.Run(t, "ip", "link", "add", "lxcb", "type", "veth", "peer", "name", "lxcbp")
	var podIfindex int
	e.ns.Do(t, func() {
		l, err := net.InterfaceByName("lxcb")
		require.NoError(t, err)
		podIfindex = l.Index
	})
	require.NoError(t, e.d.Endpoints().Upsert(endpointmap.Endpoint{IP: hostPod, Ifindex: uint32(podIfindex), ID: npPolEP,
		Identity: npPolID, MAC: hostPodMAC, NodeMAC: hostPodNode}))
	require.NoError(t, e.d.IPCache().Upsert(netip.PrefixFrom(hostPod, 32), npPolID))
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)
	return e, podIfindex
}

func (e *hostEnv) policy(t testing.TB, k policymap.Key, deny bool, rule uint32) {
	t.Helper()
	require.NoError(t, e.d.Policy().Upsert(npPolEP, k, policymap.Entry{Deny: deny, RuleID: rule}))
}

// podSends runs a packet the backend pod sends through its from_container.
func (e *hostEnv) podSends(t *testing.T, podIfindex int, dst netip.Addr, sport, dport uint16, flags uint8) uint32 {
	t.Helper()
	p := progtest.Packet{SrcMAC: hostPodMAC, DstMAC: hostPodNode, Src: hostPod, Dst: dst,
		SrcPort: sport, DstPort: dport, TCPFlags: flags, Payload: []byte("reply")}
	var res progtest.Result
	e.ns.Do(t, func() { res = progtest.Run(t, e.d.FromContainer(), p.IPv4(), uint32(podIfindex)) })
	return res.Verdict
}

func TestPrivilegedHostNodePortIngressPolicy(t *testing.T) {
	e, _ := newNodePortPolicyEnv(t)
	require.NoError(t, e.d.Policy().SetConfig(npPolEP, policymap.Config{IngressEnforced: true}))
	world := uint32(identity.ReservedWorld)
	client := netip.AddrPortFrom(hostClient, 40000)
	backend := netip.AddrPortFrom(hostPod, 8080)
	frontend := netip.AddrPortFrom(hostExtIP, hostNodePort)
	r := newFlows(t, e.d)

	// A deny entry for world: dropped, counted on the device as an ingress
	// policy drop, reported with the rule, nothing recorded for the reply.
	e.policy(t, with(tcpPort(8080), true, world), true, 41)
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	assert.EqualValues(t, 1, counter(t, e.d, uint32(e.ext), metricsmap.DropPolicyDeny, metricsmap.DirIngress).Packets)
	assert.Zero(t, counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBTranslated, metricsmap.DirIngress).Packets)
	fs := r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, monitor.Flow{Time: fs[0].Time, Verdict: monitor.VerdictDropped, Reason: metricsmap.DropPolicyDeny,
		Ingress: true, Src: client, Dst: backend, OrigDst: frontend, Proto: protoTCP,
		SrcIdentity: world, DstIdentity: npPolID, EndpointID: npPolEP, Ifindex: uint32(e.ext), RuleID: 41}, fs[0])
	assert.Empty(t, natEntries(t, e.d, ctmap.NATRevDNAT), "no reply translation for a dropped flow")
	assert.Empty(t, ctEntries(t, e.d), "no conntrack entry (so none marked allowed) for a dropped flow")

	// No entry at all: the enforced direction's default drop.
	require.NoError(t, e.d.Policy().Delete(npPolEP, with(tcpPort(8080), true, world)))
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	assert.EqualValues(t, 1, counter(t, e.d, uint32(e.ext), metricsmap.DropPolicy, metricsmap.DirIngress).Packets)
	fs = r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, metricsmap.DropPolicy, fs[0].Reason)
	assert.Zero(t, fs[0].RuleID)

	// Policy sees the backend's port, not the NodePort.
	e.policy(t, with(tcpPort(hostNodePort), true, world), false, 42)
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	assert.EqualValues(t, 2, counter(t, e.d, uint32(e.ext), metricsmap.DropPolicy, metricsmap.DirIngress).Packets)

	// A pod identity allowed is not world: still dropped.
	e.policy(t, with(tcpPort(8080), true, idA), false, 43)
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	r.drain()

	// World allowed on 8080: forwarded into the pod, reported once, the
	// backend entry marked (and still the NodePort's: backend id, no
	// reverse-NAT id).
	e.policy(t, with(tcpPort(8080), true, world), false, 44)
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, client, src)
	assert.Equal(t, backend, dst)
	fs = r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, monitor.Flow{Time: fs[0].Time, Verdict: monitor.VerdictForwarded, Reason: metricsmap.ReasonFwdLocal,
		Ingress: true, Src: client, Dst: backend, OrigDst: frontend, Proto: protoTCP,
		SrcIdentity: world, DstIdentity: npPolID, EndpointID: npPolEP, Ifindex: uint32(e.ext), RuleID: 44}, fs[0])
	assert.True(t, ctFlow(t, e.d, client, backend, protoTCP).PolicyAllowed, "CT_E_POLICY on the backend entry")
	for _, c := range ctEntries(t, e.d) {
		if !c.Service && c.Dst == backend {
			assert.EqualValues(t, beLocal, c.BackendID)
			assert.Zero(t, c.RevNATID)
		}
	}

	// Later packets pass by conntrack, also once the allow is gone; a new
	// flow does not.
	require.NoError(t, e.d.Policy().Delete(npPolEP, with(tcpPort(8080), true, world)))
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPAck), e.ext)
	assert.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "established")
	assert.Empty(t, r.drain(), "no events for later packets")
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port()+1, progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict, "new flow")
	// A flow that ended (RST) and a SYN reusing its tuple is a new flow.
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPRst), e.ext)
	assert.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "RST of the established flow")
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict, "SYN reusing the closed tuple")
}

// The backend's replies to an allowed NodePort flow pass its egress policy
// (which allows nothing) by conntrack and leave from the frontend; the pod's
// own flows to the same client are still dropped.
func TestPrivilegedHostNodePortReplyEgressPolicy(t *testing.T) {
	e, podIfindex := newNodePortPolicyEnv(t)
	require.NoError(t, e.d.Policy().SetConfig(npPolEP, policymap.Config{IngressEnforced: true, EgressEnforced: true}))
	e.policy(t, with(tcpPort(8080), true, uint32(identity.ReservedWorld)), false, 51)
	client := netip.AddrPortFrom(hostClient, 40000)
	backend := netip.AddrPortFrom(hostPod, 8080)

	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	r := newFlows(t, e.d)

	// SYN-ACK from the pod: from_container passes it to the stack by
	// conntrack, to_netdev shows it from the frontend.
	v := e.podSends(t, podIfindex, hostClient, backend.Port(), client.Port(), progtest.TCPSyn|progtest.TCPAck)
	require.Equal(t, uint32(progtest.ActOK), v, "reply passes the egress policy by conntrack")
	reply := progtest.Packet{SrcMAC: e.extMAC, DstMAC: hostClientMA, Src: hostPod, Dst: hostClient,
		SrcPort: backend.Port(), DstPort: client.Port(), TCPFlags: progtest.TCPSyn | progtest.TCPAck}.IPv4()
	res = e.run(t, true, reply, e.ext)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	src, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), src)
	assert.Equal(t, client, dst)

	// The client's ACK and the pod's data both ways.
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPAck), e.ext)
	assert.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	assert.Equal(t, uint32(progtest.ActOK), e.podSends(t, podIfindex, hostClient, backend.Port(), client.Port(), progtest.TCPAck))
	assert.Empty(t, r.drain(), "replies pass without events")
	assert.Zero(t, counter(t, e.d, uint32(podIfindex), metricsmap.DropPolicy, metricsmap.DirEgress).Packets)

	// The host device accounts the flow; the pod programs do not count its
	// replies a second time (SYN, SYN-ACK at to_netdev, ACK).
	for _, c := range ctEntries(t, e.d) {
		if !c.Service && c.Dst == backend {
			assert.EqualValues(t, 3, c.Packets)
		}
	}

	// Egress enforcement is live: the pod opening its own flow to the
	// client, or answering from another port, is dropped.
	assert.Equal(t, uint32(progtest.ActShot), e.podSends(t, podIfindex, hostClient, 33000, 80, progtest.TCPSyn))
	assert.Equal(t, uint32(progtest.ActShot), e.podSends(t, podIfindex, hostClient, backend.Port()+1, client.Port(), progtest.TCPSyn|progtest.TCPAck))
	assert.EqualValues(t, 2, counter(t, e.d, uint32(podIfindex), metricsmap.DropPolicy, metricsmap.DirEgress).Packets)
}

func ctEntries(t *testing.T, d *datapath.Datapath) []ctmap.Entry {
	t.Helper()
	cs, err := d.CT().Entries()
	require.NoError(t, err)
	return cs
}

// ctFlow returns the conntrack entry src -> dst (a plain or backend entry,
// not a service entry); a missing entry fails the test.
func ctFlow(t *testing.T, d *datapath.Datapath, src, dst netip.AddrPort, proto uint8) ctmap.Entry {
	t.Helper()
	for _, c := range ctEntries(t, d) {
		if !c.Service && c.Src == src && c.Dst == dst && c.Proto == proto {
			return c
		}
	}
	require.Failf(t, "no conntrack entry", "%s -> %s proto %d", src, dst, proto)
	return ctmap.Entry{}
}
