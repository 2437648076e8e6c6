package daemon

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/identity"
)

func TestTraceVerdictAsFlowEvents(t *testing.T) {
	for _, c := range []struct {
		dec             policymap.Decision
		ingress         bool
		verdict, reason string
	}{
		{policymap.Decision{Allowed: true, Matched: true, RuleID: 3, Enforced: true}, true, "FORWARDED", ""},
		{policymap.Decision{Allowed: true}, false, "FORWARDED", ""},
		{policymap.Decision{Enforced: true}, true, "DROPPED", "drop-policy"},
		{policymap.Decision{Matched: true, Deny: true, RuleID: 4}, false, "DROPPED", "drop-policy-deny"},
		{policymap.Decision{Enforced: true, Audit: true}, true, "AUDIT", "drop-policy"},
		{policymap.Decision{Matched: true, Deny: true, Audit: true, RuleID: 4}, true, "AUDIT", "drop-policy-deny"},
	} {
		v := traceVerdict(c.dec, c.ingress)
		assert.Equal(t, c.verdict, v.Verdict, "%+v", c.dec)
		assert.Equal(t, c.reason, v.Reason, "%+v", c.dec)
		assert.Equal(t, c.dec.RuleID, v.RuleID)
		assert.Equal(t, map[bool]string{true: "ingress", false: "egress"}[c.ingress], v.Direction)
	}
}

func TestTraceParsing(t *testing.T) {
	p, err := parsePrefix("10.1.2.3")
	require.NoError(t, err)
	assert.Equal(t, "10.1.2.3/32", p.String())
	p, err = parsePrefix("10.1.2.3/16")
	require.NoError(t, err)
	assert.Equal(t, "10.1.0.0/16", p.String())
	for _, bad := range []string{"", "fd00::1", "fd00::/64", "10.1.2.300", "x"} {
		_, err := parsePrefix(bad)
		assert.Error(t, err, bad)
	}
	ns, name := splitName("web")
	assert.Equal(t, [2]string{"default", "web"}, [2]string{ns, name})
	ns, name = splitName("x/web")
	assert.Equal(t, [2]string{"x", "web"}, [2]string{ns, name})
	for s, want := range map[string]uint8{"": 6, "tcp": 6, "UDP": 17, "ICMP": 1} {
		got, err := traceProto(s)
		require.NoError(t, err)
		assert.Equal(t, want, got, s)
	}
	_, err = traceProto("SCTP")
	assert.Error(t, err)
}

func TestTraceHasAll(t *testing.T) {
	ls := identity.ParseLabels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=x")
	assert.True(t, hasAll(ls, identity.ParseLabels("app=web")))
	assert.True(t, hasAll(ls, identity.ParseLabels("k8s:app=web", "io.kubernetes.pod.namespace=x")))
	assert.False(t, hasAll(ls, identity.ParseLabels("app=db")))
	assert.False(t, hasAll(ls, identity.ParseLabels("other:app=web")))
	assert.False(t, hasAll(ls, nil), "no label selects nothing")
}

func TestTraceServiceFrontendAndBackends(t *testing.T) {
	svcs := []api.Service{
		{Name: "x/web:http", Kind: "ClusterIP", Frontend: "10.96.0.20:80", Protocol: "TCP"},
		{Name: "x/web:dns", Kind: "ClusterIP", Frontend: "10.96.0.20:53", Protocol: "UDP"},
		{Name: "x/web:http", Kind: "NodePort", Frontend: "192.168.1.1:30080", Protocol: "TCP"},
		{Name: "y/web", Kind: "ClusterIP", Frontend: "10.96.0.30:80", Protocol: "TCP"},
	}
	fe, err := clusterFrontend(svcs, "x/web", "TCP", 80)
	require.NoError(t, err)
	assert.Equal(t, "10.96.0.20:80", fe)
	_, err = clusterFrontend(svcs, "x/web", "TCP", 53)
	var bad server.BadRequest
	require.True(t, errors.As(err, &bad), "%v", err)
	assert.EqualError(t, err, "service x/web has no port 53/TCP (it has 53/UDP, 80/TCP)")
	_, err = clusterFrontend(svcs, "x/nope", "TCP", 80)
	assert.EqualError(t, err, "no service x/nope with a cluster IP is programmed")

	dump := api.LBMaps{
		Services: []api.LBMapService{{Frontend: "10.96.0.20:80", Protocol: "TCP", BackendIDs: []uint32{7, 5}}, {Frontend: "10.96.0.20:80", Protocol: "UDP", BackendIDs: []uint32{9}}},
		Backends: []api.LBMapBackend{{ID: 5, Address: "10.244.1.3:8080"}, {ID: 7, Address: "10.244.1.4:8080", Terminating: true}},
	}
	bes, err := lbBackends(dump, "10.96.0.20:80", "TCP")
	require.NoError(t, err)
	require.Len(t, bes, 2)
	assert.Equal(t, "10.244.1.4:8080", bes[0].Address)
	assert.True(t, bes[0].Terminating)
	_, err = lbBackends(dump, "10.96.0.20:80", "UDP")
	assert.ErrorContains(t, err, "names backend 9")
	_, err = lbBackends(dump, "10.96.0.99:80", "TCP")
	assert.ErrorContains(t, err, "not in the services map")
}

func TestTraceRejectsBadRequests(t *testing.T) {
	for _, c := range []struct {
		req  api.TraceRequest
		want string
	}{
		{api.TraceRequest{Src: api.TracePeer{Pod: "x/a"}, Dst: api.TracePeer{Pod: "x/b"}, Protocol: "SCTP"}, `protocol "SCTP": want TCP, UDP or ICMP`},
		{api.TraceRequest{Dst: api.TracePeer{Pod: "x/b"}}, "source: name a pod, labels or a CIDR"},
		{api.TraceRequest{Src: api.TracePeer{Service: "x/web"}, Dst: api.TracePeer{Pod: "x/b"}}, "source: name a pod, labels or a CIDR"},
		{api.TraceRequest{Src: api.TracePeer{Pod: "x/a", CIDR: "10.0.0.1"}, Dst: api.TracePeer{Pod: "x/b"}}, "source: name the peer one way, not by pod and cidr"},
		{api.TraceRequest{Src: api.TracePeer{Pod: "x/a"}}, "destination: name a pod, labels, a CIDR or a service"},
		{api.TraceRequest{Src: api.TracePeer{Pod: "x/a"}, Dst: api.TracePeer{Labels: []string{"app=b"}, Service: "x/web"}}, "destination: name the peer one way, not by labels and service"},
	} {
		// The request is checked before any state is read (no daemon).
		_, err := tracer{}.Trace(c.req)
		var bad server.BadRequest
		require.True(t, errors.As(err, &bad), "%+v: %v", c.req, err)
		assert.EqualError(t, err, c.want)
	}
}
