package ui

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func podFlow(src, dst, verdict string, srcApp, dstApp string, port uint16) api.Flow {
	f := api.Flow{Verdict: verdict, Protocol: "TCP", SrcPod: src, DstPod: dst, DstPort: port,
		SrcIdentity: 1000, DstIdentity: 1001}
	if srcApp != "" {
		f.SrcLabels = []string{"k8s:app=" + srcApp, "k8s:io.kubernetes.pod.namespace=x"}
	}
	if dstApp != "" {
		f.DstLabels = []string{"k8s:app=" + dstApp, "k8s:io.kubernetes.pod.namespace=x"}
	}
	return f
}

func edge(t *testing.T, g Graph, src, dst string) Edge {
	t.Helper()
	for _, e := range g.Edges {
		if e.Source == src && e.Target == dst {
			return e
		}
	}
	require.Failf(t, "no edge", "%s -> %s in %+v", src, dst, g.Edges)
	return Edge{}
}

func nodeIDs(g Graph) []string {
	var ids []string
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func TestBuildGroupsPodsIntoWorkloads(t *testing.T) {
	flows := []api.Flow{
		// Two pods of one Deployment (app label) and one without labels
		// whose name carries a ReplicaSet suffix.
		podFlow("x/client-1", "x/web-0", "FORWARDED", "client", "web", 8080),
		podFlow("x/client-2", "x/web-0", "FORWARDED", "client", "web", 8080),
		podFlow("y/api-7d9f8c6b5d-xk2lp", "x/web-0", "FORWARDED", "", "web", 8080),
	}
	g := Build(flows, nil, nil)
	assert.Equal(t, []string{"x/client", "x/web", "y/api"}, nodeIDs(g))
	assert.Equal(t, []string{"x", "y"}, g.Namespaces)
	assert.Equal(t, []string{"x/client-1", "x/client-2"}, g.Nodes[0].Pods)
	assert.Equal(t, KindWorkload, g.Nodes[0].Kind)
	assert.Equal(t, "x", g.Nodes[0].Namespace)
	e := edge(t, g, "x/client", "x/web")
	assert.Equal(t, 2, e.Flows)
	assert.Equal(t, 2, e.Forwarded)
	assert.Equal(t, []string{"8080/TCP"}, e.Ports)
	assert.Equal(t, 1, edge(t, g, "y/api", "x/web").Flows)
	assert.Equal(t, 3, g.Nodes[1].Flows, "web is the target of three flows")
	assert.Equal(t, 3, g.Flows)
}

func TestBuildVerdictColours(t *testing.T) {
	flows := []api.Flow{
		// A denied connection is seen twice: forwarded at the client's
		// egress, dropped at the server's ingress. The edge is red.
		podFlow("x/a", "x/b", "FORWARDED", "a", "b", 80),
		podFlow("x/a", "x/b", "DROPPED", "a", "b", 80),
		podFlow("x/a", "x/c", "FORWARDED", "a", "c", 80),
		podFlow("x/a", "x/c", "AUDIT", "a", "c", 81),
		podFlow("x/a", "x/d", "FORWARDED", "a", "d", 80),
	}
	g := Build(flows, nil, nil)
	ab := edge(t, g, "x/a", "x/b")
	assert.Equal(t, "DROPPED", ab.Verdict)
	assert.Equal(t, VerdictColor("DROPPED"), ab.Color)
	assert.Equal(t, [3]int{1, 1, 0}, [3]int{ab.Forwarded, ab.Dropped, ab.Audit})
	ac := edge(t, g, "x/a", "x/c")
	assert.Equal(t, "AUDIT", ac.Verdict)
	assert.Equal(t, VerdictColor("AUDIT"), ac.Color)
	assert.Equal(t, []string{"80/TCP", "81/TCP"}, ac.Ports)
	ad := edge(t, g, "x/a", "x/d")
	assert.Equal(t, "FORWARDED", ad.Verdict)
	assert.Equal(t, VerdictColor("FORWARDED"), ad.Color)
	colours := map[string]bool{ab.Color: true, ac.Color: true, ad.Color: true}
	assert.Len(t, colours, 3, "each verdict has its own colour")
}

func TestBuildWorldHostAndRemote(t *testing.T) {
	flows := []api.Flow{
		{Verdict: "FORWARDED", Protocol: "TCP", SrcIdentity: 1, SrcLabels: []string{"reserved:host"},
			DstPod: "x/web-0", DstLabels: []string{"k8s:app=web"}, DstPort: 8080},
		{Verdict: "DROPPED", Protocol: "TCP", SrcIdentity: 9, SrcLabels: []string{"reserved:world-ipv4"},
			DstPod: "x/web-0", DstLabels: []string{"k8s:app=web"}, DstPort: 8080},
		// A CIDR identity is world too.
		{Verdict: "FORWARDED", Protocol: "UDP", SrcPod: "x/web-0", SrcLabels: []string{"k8s:app=web"},
			DstIdentity: 16777217, DstLabels: []string{"cidr:192.0.2.0/24", "reserved:world"}, DstPort: 53},
		{Verdict: "FORWARDED", Protocol: "UDP", SrcPod: "x/web-0", SrcLabels: []string{"k8s:app=web"},
			DstIdentity: 16777218, DstLabels: []string{"cidr:198.51.100.0/24"}, DstPort: 53},
		// A pod of another node: known by its identity's labels only.
		{Verdict: "FORWARDED", Protocol: "TCP", SrcIdentity: 1005,
			SrcLabels: []string{"k8s:app=client", "k8s:io.kubernetes.pod.namespace=z"},
			DstPod:    "x/web-0", DstLabels: []string{"k8s:app=web"}, DstPort: 8080},
		// Identities without labels: host by number, else their number.
		{Verdict: "FORWARDED", Protocol: "ICMP", SrcIdentity: 1, DstIdentity: 4242},
	}
	g := Build(flows, nil, nil)
	assert.Equal(t, []string{"host", "identity:4242", "world", "x/web", "z/client"}, nodeIDs(g))
	kinds := map[string]string{}
	for _, n := range g.Nodes {
		kinds[n.ID] = n.Kind
	}
	assert.Equal(t, KindReserved, kinds["host"])
	assert.Equal(t, KindReserved, kinds["world"])
	assert.Equal(t, KindIdentity, kinds["identity:4242"])
	assert.Equal(t, KindWorkload, kinds["z/client"])
	assert.Equal(t, "FORWARDED", edge(t, g, "host", "x/web").Verdict)
	assert.Equal(t, "DROPPED", edge(t, g, "world", "x/web").Verdict)
	assert.Equal(t, 2, edge(t, g, "x/web", "world").Flows)
	assert.Equal(t, []string{"53/UDP"}, edge(t, g, "x/web", "world").Ports)
	assert.Equal(t, []string{"ICMP"}, edge(t, g, "host", "identity:4242").Ports)
	assert.Equal(t, []string{"x", "z"}, g.Namespaces, "reserved nodes have no namespace")
}

func TestBuildServices(t *testing.T) {
	svcs := ServiceFrontends([]api.Service{
		{Name: "x/websvc:http", Frontend: "10.96.0.20:80", Protocol: "TCP"},
		{Name: "x/websvc:http", Frontend: "192.168.1.1:30080", Kind: "NodePort", Protocol: "TCP"},
		{Name: "x/dns", Frontend: "10.96.0.10:53", Protocol: "UDP"},
	})
	assert.Equal(t, map[string]string{"10.96.0.20:80": "x/websvc", "192.168.1.1:30080": "x/websvc", "10.96.0.10:53": "x/dns"}, svcs)
	f := podFlow("x/client", "x/web", "FORWARDED", "client", "web", 8080)
	f.OrigDest = "10.96.0.20:80"
	np := api.Flow{Verdict: "DROPPED", Protocol: "TCP", SrcIdentity: 2, DstPod: "x/web", DstLabels: []string{"k8s:app=web"},
		DstPort: 8080, OrigDest: "192.168.1.1:30080"}
	direct := podFlow("x/client", "x/web", "FORWARDED", "client", "web", 8080)
	g := Build([]api.Flow{f, f, np, direct}, svcs, nil)
	assert.Equal(t, []string{"service:x/websvc", "world", "x/client", "x/web"}, nodeIDs(g))
	assert.Equal(t, KindService, g.Nodes[0].Kind)
	assert.Equal(t, "websvc", g.Nodes[0].Label)
	assert.Equal(t, "x", g.Nodes[0].Namespace)
	assert.Equal(t, 2, edge(t, g, "x/client", "service:x/websvc").Flows)
	toWeb := edge(t, g, "service:x/websvc", "x/web")
	assert.Equal(t, [3]int{3, 2, 1}, [3]int{toWeb.Flows, toWeb.Forwarded, toWeb.Dropped})
	assert.Equal(t, "DROPPED", toWeb.Verdict)
	assert.Equal(t, "DROPPED", edge(t, g, "world", "service:x/websvc").Verdict)
	assert.Equal(t, 1, edge(t, g, "x/client", "x/web").Flows, "a flow sent to the pod directly")
}

func TestBuildEmpty(t *testing.T) {
	g := Build(nil, nil, nil)
	assert.NotNil(t, g.Nodes)
	assert.NotNil(t, g.Edges)
	assert.Zero(t, g.Flows)
}

func TestBuildCountsALocalConnectionOnce(t *testing.T) {
	out := func(f api.Flow) api.Flow { f.Direction = "egress"; f.EndpointPod = f.SrcPod; return f }
	in := func(f api.Flow) api.Flow { f.Direction = "ingress"; f.EndpointPod = f.DstPod; return f }
	allowed := podFlow("x/a", "x/b", "FORWARDED", "a", "b", 80)
	denied := podFlow("x/a", "x/b", "DROPPED", "a", "b", 81)
	remote := podFlow("x/a", "y/r", "FORWARDED", "a", "r", 80)
	flows := []api.Flow{
		out(allowed), in(allowed), // an allowed connection, seen leaving a and entering b
		out(allowed), in(denied), // a denied one: forwarded out of a, dropped into b
		out(podFlow("x/a", "x/b", "DROPPED", "a", "b", 82)), // dropped on the way out: no ingress flow
		out(remote), // to a pod of another node: only its egress flow is here
	}
	local := map[string]bool{"x/a": true, "x/b": true}
	g := Build(flows, nil, local)
	ab := edge(t, g, "x/a", "x/b")
	assert.Equal(t, [4]int{3, 1, 2, 0}, [4]int{ab.Flows, ab.Forwarded, ab.Dropped, ab.Audit})
	assert.Equal(t, "DROPPED", ab.Verdict)
	assert.Equal(t, 1, edge(t, g, "x/a", "y/r").Flows)
	assert.Equal(t, 4, g.Flows, "the two forwarded egress flows to b are not counted")
	// Without knowing which pods are local, every flow counts.
	assert.Equal(t, 6, Build(flows, nil, nil).Flows)
}
