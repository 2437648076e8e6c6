package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestWriteEndpointPolicyAddrs(t *testing.T) {
	ep := api.EndpointPolicy{
		EndpointID: 7, Pod: "x/a", Identity: 300, EgressEnforced: true, Labels: []string{"k8s:app=a"},
		Rules: []api.PolicyRule{{Direction: "egress", Peer: "addr-set:1", Protocol: "TCP", Ports: "80", Verdict: "allow", Rule: "x/addr[egress:0]"}},
		Addrs: []api.PolicyAddr{
			{Direction: "egress", Prefix: "10.244.0.0/16", Set: 0xFE000001, SetName: "addr-set:1", Rules: []string{"x/addr[egress:0]", "x/addr[egress:1]"}},
			{Direction: "egress", Prefix: "10.244.0.9/32", Rules: []string{}},
		},
	}
	var b bytes.Buffer
	require.NoError(t, WriteEndpointPolicy(&b, ep))
	assert.Contains(t, b.String(), "egress     addr-set:1  TCP       80     allow    x/addr[egress:0]\n")
	assert.Contains(t, b.String(), `Address entries (longest prefix of the peer address):
DIRECTION  PREFIX         SET         RULES
egress     10.244.0.0/16  addr-set:1  x/addr[egress:0], x/addr[egress:1]
egress     10.244.0.9/32  -           no rule: except
`)

	// Without address rules the section is left out.
	ep.Addrs = nil
	b.Reset()
	require.NoError(t, WriteEndpointPolicy(&b, ep))
	assert.NotContains(t, b.String(), "Address entries")
}

// A rejected policy's row says what is enforced instead; a status without
// a message (an older agent) shows the bare reason.
func TestWritePolicyStatusRejected(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WritePolicyStatus(&b, []api.PolicyStatus{
		{Kind: "SluiceNetworkPolicy", Namespace: "x", Name: "l7", Reason: "spec.ingress[0].toPorts[0].rules: L7", DefaultDeny: []string{"ingress"},
			Message: "rejected: spec.ingress[0].toPorts[0].rules: L7; enforcing default deny for ingress", Endpoints: 2},
		{Kind: "SluiceNetworkPolicy", Namespace: "x", Name: "old", Reason: "bad"},
		{Kind: "NetworkPolicy", Namespace: "y", Name: "ok", Accepted: true, Message: "accepted", Endpoints: 3},
	}))
	assert.Equal(t, `KIND                 POLICY  STATUS    ENDPOINTS  REASON
SluiceNetworkPolicy  x/l7    rejected  2          spec.ingress[0].toPorts[0].rules: L7; enforcing default deny for ingress
SluiceNetworkPolicy  x/old   rejected  0          bad
NetworkPolicy        y/ok    accepted  3          -
`, b.String())
}
