package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestTraceFlagsRequest(t *testing.T) {
	req, err := traceFlags{src: "x/a", dstService: "x/web", dport: "80/tcp"}.request()
	require.NoError(t, err)
	assert.Equal(t, api.TraceRequest{Src: api.TracePeer{Pod: "x/a"}, Dst: api.TracePeer{Service: "x/web"}, Protocol: "TCP", Port: 80}, req)

	req, err = traceFlags{srcLabels: []string{"app=a", "tier=fe"}, dstCIDR: "10.0.0.0/8", dport: "8/ICMP"}.request()
	require.NoError(t, err)
	assert.Equal(t, []string{"app=a", "tier=fe"}, req.Src.Labels)
	assert.Equal(t, "ICMP", req.Protocol)
	assert.Equal(t, uint16(8), req.Port)

	for _, bad := range []traceFlags{
		{dst: "x/b", dport: "80"},                                  // no source
		{src: "x/a", srcCIDR: "10.0.0.1", dst: "x/b", dport: "80"}, // two sources
		{src: "x/a", dport: "80"},                                  // no destination
		{src: "x/a", dst: "x/b", dport: "http"},                    // not a number
		{src: "x/a", dst: "x/b", dport: "80/SCTP"},                 // protocol
		{src: "x/a", dst: "x/b", dport: "70000"},                   // range
	} {
		_, err := bad.request()
		assert.Error(t, err, "%+v", bad)
	}
}

func TestWriteTrace(t *testing.T) {
	res := api.TraceResult{
		Src:      api.TraceEnd{Name: "x/client", Address: "10.244.1.2", Identity: 300, EndpointID: 1},
		Protocol: "TCP", Port: 80, Service: "10.96.0.20:80", ServiceName: "x/websvc",
		Notes: []string{"a note"},
		Paths: []api.TracePath{{
			Dst: api.TraceEnd{Name: "x/web", Address: "10.244.1.3", Identity: 301, EndpointID: 2}, Port: 8080, Backend: "10.244.1.3:8080",
			Egress:  &api.TraceVerdict{Direction: "egress", Endpoint: "x/client", Verdict: "FORWARDED", Decision: "no policy"},
			Ingress: &api.TraceVerdict{Direction: "ingress", Endpoint: "x/web", Verdict: "DROPPED", Reason: "drop-policy-deny", Rule: "x/p[ingressDeny:0]", Decision: "rule x/p[ingressDeny:0]"},
		}, {
			Dst: api.TraceEnd{Name: "10.1.0.9", Address: "10.1.0.9", Identity: 2, IdentityName: "world"}, Port: 8080, Backend: "10.1.0.9:8080", Terminating: true,
			Egress:  &api.TraceVerdict{Direction: "egress", Endpoint: "x/client", Verdict: "FORWARDED", Rule: "x/q[egress:1]", Decision: "rule x/q[egress:1]"},
			Allowed: true,
		}},
	}
	var b bytes.Buffer
	require.NoError(t, WriteTrace(&b, res))
	assert.Equal(t, `Tracing x/client (10.244.1.2, identity 300) -> service x/websvc (10.96.0.20:80) on 80/TCP
Note: a note

Backend 10.244.1.3:8080: x/web (10.244.1.3, identity 301)
  egress   x/client  FORWARDED  no policy
  ingress  x/web     DROPPED    rule x/p[ingressDeny:0] (drop-policy-deny)
Verdict: DROPPED

Backend 10.1.0.9:8080: 10.1.0.9 (identity 2 world) (terminating: takes no new flow)
  egress   x/client  FORWARDED  rule x/q[egress:1]
  ingress  10.1.0.9  not enforced here (not a local endpoint)
Verdict: FORWARDED
`, b.String())
}

func TestDecisionNamesAsObserve(t *testing.T) {
	for _, c := range []struct{ verdict, rule, want string }{
		{"FORWARDED", "x/p[ingress:0]", "rule x/p[ingress:0]"},
		{"DROPPED", "x/p[ingressDeny:0]", "rule x/p[ingressDeny:0]"},
		{"DROPPED", "", "default deny"},
		{"AUDIT", "", "default deny"},
		{"FORWARDED", "", "no policy"},
	} {
		assert.Equal(t, c.want, api.Decision(c.verdict, c.rule))
		// sluice observe's line ends with the same words.
		assert.Contains(t, FlowLine(api.Flow{Verdict: c.verdict, Rule: c.rule, Direction: "ingress"}), "ingress  "+c.want)
	}
}
