package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// traceVIP is the cluster IP of x/websvc (port 80 → the pods' named port
// http, 8080).
const traceVIP = "10.96.0.20"

// traceNode is a node with pods x/client, x/web and x/other (labelled
// app=<name>, serving their name on the named port http, podPort) and the
// service x/websvc in front of x/web.
type traceNode struct {
	node               *harness.Node
	client, web, other *harness.Pod
}

func newTraceNode(t *testing.T) *traceNode {
	t.Helper()
	n := &traceNode{node: harness.NewNode(t, harness.NodeOptions{})}
	n.node.StartAgent(t)
	n.client, n.web, n.other = n.node.AddPodIn(t, "x", "client"), n.node.AddPodIn(t, "x", "web"), n.node.AddPodIn(t, "x", "other")
	var objs strings.Builder
	objs.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {ns: x}}\n")
	for _, p := range []*harness.Pod{n.client, n.web, n.other} {
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.FullName())
		fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: x, labels: {app: %s}}\n"+
			"spec: {containers: [{name: app, image: none, ports: [{name: http, containerPort: %d}]}]}\n", p.Name, p.Name, podPort)
	}
	fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: Service\nmetadata: {name: websvc, namespace: x}\n"+
		"spec: {clusterIP: %s, selector: {app: web}, ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]}\n", traceVIP)
	writeManifest(t, n.node, "pods.yaml", objs.String())
	waitBackends(t, n.node, traceVIP+":80", 1)
	return n
}

// traceCase is a flow sent for real and traced: from a pod to addr,
// traced with args (the destination and --dport flags).
type traceCase struct {
	name    string
	from    *harness.Pod
	fromNS  *harness.NetNS // the node: traced by the source address the flows show
	addr    string
	args    []string
	allowed bool
}

// check sends the flow until it gets the expected outcome (the agent
// applies manifests asynchronously), sends it once more, and requires the
// trace (through the sluice CLI) to give each direction the verdict, drop
// reason and rule that `sluice observe` shows for that flow.
func (n *traceNode) check(t *testing.T, c traceCase) api.TraceResult {
	t.Helper()
	ns := c.fromNS
	if c.from != nil {
		ns = c.from.NS
	}
	reach := func() bool {
		_, err := harness.Ask(ns, c.addr, 700*time.Millisecond)
		return err == nil
	}
	require.Eventually(t, func() bool { return reach() == c.allowed }, 20*time.Second, 200*time.Millisecond,
		"%s: connect to %s never gave allowed=%t", c.name, c.addr, c.allowed)
	start := time.Now()
	require.Equal(t, c.allowed, reach(), "%s", c.name)
	flows := n.flowsSince(t, start, c)
	require.NotEmpty(t, flows, "%s: no flow observed", c.name)

	args := append([]string{"policy", "trace", "-o", "json"}, c.args...)
	if c.from != nil {
		args = append(args, "--src", c.from.FullName())
	} else {
		src, err := netip.ParseAddrPort(flows[0].Source)
		require.NoError(t, err)
		args = append(args, "--src-cidr", src.Addr().String())
	}
	res := runTrace(t, n.node, args...)
	require.Len(t, res.Paths, 1, "%s: %+v", c.name, res)
	p := res.Paths[0]
	assert.Equal(t, c.allowed, p.Allowed, "%s: the trace's verdict is what the traffic got", c.name)
	requireTraceMatchesFlows(t, c.name, p, flows)
	return res
}

// flowsSince returns the flows of c's traffic seen since start.
func (n *traceNode) flowsSince(t *testing.T, start time.Time, c traceCase) []api.Flow {
	t.Helper()
	f := api.FlowFilter{Last: 100}
	if c.from != nil {
		f.FromPod = c.from.FullName()
	}
	var out []api.Flow
	// The flow events arrive through a ring buffer: give them a moment.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out = out[:0]
		require.NoError(t, n.node.Client().Flows(context.Background(), f, func(fl api.Flow) error {
			if !fl.Time.Before(start) && (c.from != nil || fl.DstPod != "") && fl.DstPort == podPort {
				out = append(out, fl)
			}
			return nil
		}))
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
	}
}

// requireTraceMatchesFlows requires every observed flow to carry the
// verdict, reason and rule the trace gives its direction, and the flows to
// show the directions the trace says decide: both when allowed, else the
// first that drops.
func requireTraceMatchesFlows(t *testing.T, name string, p api.TracePath, flows []api.Flow) {
	t.Helper()
	byDir := map[string]*api.TraceVerdict{"egress": p.Egress, "ingress": p.Ingress}
	seen := map[string]bool{}
	for _, fl := range flows {
		v := byDir[fl.Direction]
		require.NotNil(t, v, "%s: a flow in direction %s, which the trace does not enforce: %+v", name, fl.Direction, fl)
		seen[fl.Direction] = true
		assert.Equal(t, fl.Verdict, v.Verdict, "%s %s: verdict", name, fl.Direction)
		assert.Equal(t, fl.Reason != "" && fl.Verdict != "FORWARDED", v.Reason != "", "%s %s: drop reason", name, fl.Direction)
		if fl.Verdict != "FORWARDED" {
			assert.Equal(t, fl.Reason, v.Reason, "%s %s: drop reason", name, fl.Direction)
		}
		assert.Equal(t, fl.Rule, v.Rule, "%s %s: rule", name, fl.Direction)
		assert.Equal(t, api.Decision(fl.Verdict, fl.Rule), v.Decision, "%s %s", name, fl.Direction)
	}
	want := map[string]bool{}
	switch {
	case p.Egress != nil && p.Egress.Verdict == "DROPPED":
		want["egress"] = true
	case p.Ingress != nil && p.Ingress.Verdict == "DROPPED":
		want["ingress"] = true
	default:
		want["egress"], want["ingress"] = p.Egress != nil, p.Ingress != nil
	}
	for dir, w := range want {
		if w {
			assert.True(t, seen[dir], "%s: no %s flow observed; flows %+v, trace %+v", name, dir, flows, p)
		}
	}
}

// runTrace runs `sluice policy trace` against the node's agent.
func runTrace(t *testing.T, node *harness.Node, args ...string) api.TraceResult {
	t.Helper()
	out, err := exec.Command(harness.Bin(t, "sluice"), append([]string{"--socket", node.Socket()}, args...)...).Output()
	require.NoError(t, err, "sluice %s: %s", strings.Join(args, " "), out)
	var res api.TraceResult
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	return res
}

func TestPrivilegedPolicyTraceMatchesObserve(t *testing.T) {
	harness.RequirePrivileged(t)
	n := newTraceNode(t)
	webAddr, otherAddr := n.web.Addr(podPort), n.other.Addr(podPort)
	port := fmt.Sprintf("%d/TCP", podPort)
	toWeb := []string{"--dst", "x/web", "--dport", port}

	t.Run("no policy", func(t *testing.T) {
		res := n.check(t, traceCase{name: "client to web", from: n.client, addr: webAddr, args: toWeb, allowed: true})
		assert.Equal(t, "no policy", res.Paths[0].Egress.Decision)
		assert.Equal(t, "no policy", res.Paths[0].Ingress.Decision)
		n.check(t, traceCase{name: "node to web", fromNS: n.node.NS, addr: webAddr, args: toWeb, allowed: true})
	})

	// Ingress of web from client on the named port http only.
	writeManifest(t, n.node, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
`)
	t.Run("allow by rule on a named port, default deny", func(t *testing.T) {
		// The denied flow first: once it is denied, the policy is in.
		res := n.check(t, traceCase{name: "other to web", from: n.other, addr: webAddr, args: toWeb, allowed: false})
		assert.Equal(t, "default deny", res.Paths[0].Ingress.Decision)
		assert.Equal(t, "drop-policy", res.Paths[0].Ingress.Reason)
		res = n.check(t, traceCase{name: "client to web", from: n.client, addr: webAddr, args: toWeb, allowed: true})
		assert.Equal(t, "rule x/web-from-client[ingress:0]", res.Paths[0].Ingress.Decision)
		// The same source named by its labels.
		lres := runTrace(t, n.node, "policy", "trace", "-o", "json", "--src-labels", "app=client", "--dst", "x/web", "--dport", port)
		require.Len(t, lres.Paths, 1)
		assert.Equal(t, "rule x/web-from-client[ingress:0]", lres.Paths[0].Ingress.Decision)
		lres = runTrace(t, n.node, "policy", "trace", "-o", "json", "--src", "x/other", "--dst-labels", "app=web", "--dport", port)
		require.Len(t, lres.Paths, 1)
		assert.Equal(t, "default deny", lres.Paths[0].Ingress.Decision)
		assert.Equal(t, "x/web", lres.Paths[0].Ingress.Endpoint, "the policy of the endpoint holding the labels")
	})

	t.Run("service to its backend", func(t *testing.T) {
		svc := []string{"--dst-service", "x/websvc", "--dport", "80/TCP"}
		res := n.check(t, traceCase{name: "client to websvc", from: n.client, addr: traceVIP + ":80", args: svc, allowed: true})
		assert.Equal(t, traceVIP+":80", res.Service)
		assert.Equal(t, webAddr, res.Paths[0].Backend)
		assert.Equal(t, uint16(podPort), res.Paths[0].Port, "policy sees the backend's port")
		n.check(t, traceCase{name: "other to websvc", from: n.other, addr: traceVIP + ":80", args: svc, allowed: false})
		// The text form names the backend, each direction and the verdict.
		out, err := exec.Command(harness.Bin(t, "sluice"), append([]string{"--socket", n.node.Socket(), "policy", "trace", "--src", "x/other"}, svc...)...).Output()
		require.NoError(t, err)
		t.Logf("sluice policy trace --src x/other --dst-service x/websvc --dport 80/TCP:\n%s", out)
		assert.Contains(t, string(out), "-> service x/websvc ("+traceVIP+":80) on 80/TCP\n")
		assert.Contains(t, string(out), "\nBackend "+webAddr+": x/web (")
		assert.Regexp(t, `\n  ingress\s+x/web\s+DROPPED\s+default deny \(drop-policy\)\nVerdict: DROPPED\n`, string(out))
	})

	writeManifest(t, n.node, "20-policy.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: no-other, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: client}}
  ingress:
  - fromEntities: [cluster]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
`)
	t.Run("deny rule", func(t *testing.T) {
		toClient := []string{"--dst", "x/client", "--dport", port}
		res := n.check(t, traceCase{name: "other to client", from: n.other, addr: n.client.Addr(podPort), args: toClient, allowed: false})
		assert.Equal(t, "rule x/no-other[ingressDeny:0]", res.Paths[0].Ingress.Decision)
		assert.Equal(t, "drop-policy-deny", res.Paths[0].Ingress.Reason)
		res = n.check(t, traceCase{name: "web to client", from: n.web, addr: n.client.Addr(podPort), args: toClient, allowed: true})
		assert.Equal(t, "rule x/no-other[ingress:0]", res.Paths[0].Ingress.Decision)
	})

	// Egress of client by address only: web's address, not other's.
	writeManifest(t, n.node, "30-policy.yaml", fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-to-web-ip, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: %s/32}}]
`, n.web.IP))
	t.Run("ipBlock", func(t *testing.T) {
		res := n.check(t, traceCase{name: "client to other's address", from: n.client, addr: otherAddr,
			args: []string{"--dst-cidr", n.other.IP.String() + "/32", "--dport", port}, allowed: false})
		assert.Equal(t, "default deny", res.Paths[0].Egress.Decision)
		res = n.check(t, traceCase{name: "client to web's address", from: n.client, addr: webAddr,
			args: []string{"--dst-cidr", n.web.IP.String(), "--dport", port}, allowed: true})
		assert.Equal(t, "rule x/client-to-web-ip[egress:0]", res.Paths[0].Egress.Decision)
	})
}

// In audit mode a flow policy would drop passes as an AUDIT flow: the
// trace says so for the same flow.
func TestPrivilegedPolicyTraceAudit(t *testing.T) {
	harness.RequirePrivileged(t)
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentArgs(t, "--policy-audit")
	client, web := node.AddPodIn(t, "x", "client"), node.AddPodIn(t, "x", "web")
	n := &traceNode{node: node, client: client, web: web}
	harness.ServeTCP(t, web.NS, web.Addr(podPort), web.FullName())
	writeManifest(t, node, "pods.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"+nsPodYAML(client)+nsPodYAML(web)+
		"---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: x}\n"+
		"spec: {podSelector: {matchLabels: {pod: web}}, policyTypes: [Ingress]}\n")
	args := []string{"--dst", "x/web", "--dport", fmt.Sprintf("%d/TCP", podPort)}
	// The flow passes with or without the policy: wait until the kernel's
	// policy maps hold it (what the trace reads) before sending it.
	require.Eventually(t, func() bool {
		res := runTrace(t, node, append([]string{"policy", "trace", "-o", "json", "--src", "x/client"}, args...)...)
		return len(res.Paths) == 1 && res.Paths[0].Ingress != nil && res.Paths[0].Ingress.Enforced
	}, 20*time.Second, 100*time.Millisecond, "web's ingress enforced")
	res := n.check(t, traceCase{name: "client to web, audited", from: client, addr: web.Addr(podPort), args: args, allowed: true})
	assert.Equal(t, "AUDIT", res.Paths[0].Ingress.Verdict)
	assert.Equal(t, "default deny", res.Paths[0].Ingress.Decision)
}
