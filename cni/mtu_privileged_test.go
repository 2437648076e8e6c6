package cni

import (
	"encoding/json"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/test/harness"
)

// The pod MTU comes from the agent when the network config has no "mtu"
// (VXLAN mode on an unknown underlay: 1500 less 50), and an explicit "mtu"
// in the config wins over it; both ends of the veth get it.
func TestPrivilegedPodMTU(t *testing.T) {
	harness.RequirePrivileged(t)
	n := newTestNode(t)
	n.startAgent(t, func(c *daemon.Config) { c.Routing = "vxlan" })

	podMTU := func(p *testPod) (pod, host int) {
		t.Helper()
		require.NoError(t, p.ns.Do(func(ns.NetNS) error {
			l, err := netlinksafe.LinkByName("eth0")
			if err == nil {
				pod = l.Attrs().MTU
			}
			return err
		}))
		l := n.hostLink(t, p)
		require.NotNil(t, l)
		return pod, l.Attrs().MTU
	}

	fromAgent := n.newPod(t, "mtu-agent")
	_, err := n.add(t, fromAgent)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.del(t, fromAgent)) })
	pod, host := podMTU(fromAgent)
	assert.Equal(t, 1450, pod, "pod end: the agent's pod MTU")
	assert.Equal(t, 1450, host, "host end: the agent's pod MTU")

	var conf map[string]any
	require.NoError(t, json.Unmarshal(n.conf, &conf))
	conf["mtu"] = 1280
	explicit, err := json.Marshal(conf)
	require.NoError(t, err)
	fromConf := n.newPod(t, "mtu-conf")
	_, err = n.addWith(t, fromConf, explicit)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, n.in(t, func() error { return CmdDel(n.args(t, "DEL", fromConf, explicit)) }))
	})
	pod, host = podMTU(fromConf)
	assert.Equal(t, 1280, pod, "pod end: the network config's mtu")
	assert.Equal(t, 1280, host, "host end: the network config's mtu")
}
