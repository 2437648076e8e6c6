package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// ipBlock with except, in both directions, against peers that are not pods:
// an "outside" netns wired to the node holds two addresses.
func TestPrivilegedPolicyIPBlockExcept(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	a := node.AddPod(t, "a")
	harness.ServeTCP(t, a.NS, a.Addr(podPort), "a")

	out := wire(t, node, "sl-out-", "out0", "192.168.253.1", "192.168.253.2")
	out.Run(t, "ip", "addr", "add", "192.168.253.3/24", "dev", "eth0")
	harness.ServeTCP(t, out, "192.168.253.2:80", "out-2")
	harness.ServeTCP(t, out, "192.168.253.3:80", "out-3")

	reach := func(ns *harness.NetNS, laddr, addr, want string) bool {
		got, err := harness.AskFrom(ns, laddr, addr, 700*time.Millisecond)
		return err == nil && got == want
	}
	// No policy: everything connects (the first connection of a fresh
	// netns pair may also resolve neighbours: a few tries, not one).
	for _, c := range [][4]string{
		{"a", "", "192.168.253.2:80", "out-2"},
		{"a", "", "192.168.253.3:80", "out-3"},
		{"out", "192.168.253.3:0", a.Addr(podPort), "a"},
	} {
		ns := a.NS
		if c[0] == "out" {
			ns = out
		}
		require.Eventually(t, func() bool { return reach(ns, c[1], c[2], c[3]) }, 5*time.Second, 100*time.Millisecond,
			"no policy: %s -> %s", c[0], c[2])
	}

	writeManifest(t, node, "ipblock.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: a, namespace: default, labels: {app: a}}
spec: {containers: [{name: app, image: none}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ipblock, namespace: default}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  egress:
  - to: [{ipBlock: {cidr: 192.168.253.0/24, except: [192.168.253.3/32]}}]
    ports: [{port: 80, protocol: TCP}]
  ingress:
  - from: [{ipBlock: {cidr: 192.168.253.0/24, except: [192.168.253.3/32]}}]
    ports: [{port: %d, protocol: TCP}]
`, podPort))
	type cell struct {
		name          string
		ns            *harness.NetNS
		laddr, addr   string
		want          string
		allowExpected bool
	}
	cells := []cell{
		{"a → 192.168.253.2:80 (in the block)", a.NS, "", "192.168.253.2:80", "out-2", true},
		{"a → 192.168.253.3:80 (excepted)", a.NS, "", "192.168.253.3:80", "out-3", false},
		{"192.168.253.2 → a (in the block)", out, "192.168.253.2:0", a.Addr(podPort), "a", true},
		{"192.168.253.3 → a (excepted)", out, "192.168.253.3:0", a.Addr(podPort), "a", false},
	}
	require.Eventually(t, func() bool {
		for _, c := range cells {
			if reach(c.ns, c.laddr, c.addr, c.want) != c.allowExpected {
				return false
			}
		}
		return true
	}, 20*time.Second, 200*time.Millisecond, "truth table of the ipBlock policy")
	for _, c := range cells {
		require.Equal(t, c.allowExpected, reach(c.ns, c.laddr, c.addr, c.want), c.name)
	}
}
