// Command demo runs Sluice's standalone demo: a simulated node (a network
// namespace with no uplink) running the real sluice-agent, three pods wired
// by the real sluice-cni binary, a connectivity matrix built from application
// replies, and a spoofed packet dropped with its reason. Everything is removed
// at the end. It exits 0 only if every expectation holds.
//
// Run it as root with `make demo` (which builds the binaries first).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

const (
	podPort  = 8080
	nodePort = 9090
	timeout  = 2 * time.Second
)

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces, BPF)")
		os.Exit(1)
	}
	os.Setenv(harness.PrivilegedEnv, "1")
	r := &harness.Runner{}
	ok := r.Run(func() { demo(r) })
	if !ok {
		fmt.Println("\nDEMO FAILED")
		os.Exit(1)
	}
	fmt.Println("\nAll expectations held; everything created was removed.")
}

func step(format string, args ...any) { fmt.Printf("\n== "+format+"\n", args...) }

func demo(r *harness.Runner) {
	step("Simulated node: a network namespace with no uplink, a private bpffs, its own cgroup")
	node := harness.NewNode(r, harness.NodeOptions{})
	fmt.Printf("node netns %s, PodCIDR %s, gateway %s\n", node.NS.Name, node.PodCIDR, node.Gateway)

	step("sluice-agent loads and pins the pod programs, and the process sensor (--process-sensor)")
	agent := node.StartAgentWith(r, harness.AgentOptions{SocketLB: true, Args: []string{"--process-sensor"}})
	fmt.Printf("agent pid %d, programs pinned under %s; socket LB on the node's cgroup\n", agent.PID(), node.BPFRoot)
	fmt.Print(statusWhenReady(r, node))

	step("Three pods, each wired by the sluice-cni binary (CNI ADD via libcni)")
	pods := []*harness.Pod{node.AddPod(r, "a"), node.AddPod(r, "b"), node.AddPod(r, "c")}
	for _, p := range pods {
		harness.ServeTCP(r, p.NS, p.Addr(podPort), p.Name)
		fmt.Printf("pod %s  ip %-12s host veth %s  (TCX: from_container, to_container)\n", p.Name, p.IP, p.HostIfName)
	}
	nodeAddr := fmt.Sprintf("%s:%d", node.Gateway, nodePort)
	harness.ServeTCP(r, node.NS, nodeAddr, "node")

	step("Connectivity matrix: each cell is the name the server replied with")
	type peer struct {
		name string
		ns   *harness.NetNS
		addr string
	}
	peers := []peer{}
	for _, p := range pods {
		peers = append(peers, peer{p.Name, p.NS, p.Addr(podPort)})
	}
	peers = append(peers, peer{"node", node.NS, nodeAddr})
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "from \\ to")
	for _, to := range peers {
		fmt.Fprintf(tw, "\t%s", to.name)
	}
	fmt.Fprintln(tw)
	for _, from := range peers {
		fmt.Fprint(tw, from.name)
		for _, to := range peers {
			if from.name == to.name {
				fmt.Fprint(tw, "\t-")
				continue
			}
			got, err := harness.Ask(from.ns, to.addr, timeout)
			switch {
			case err != nil:
				fmt.Fprintf(tw, "\tFAIL (%v)", err)
				r.Errorf("%s → %s: %v", from.name, to.name, err)
			case got != to.name:
				fmt.Fprintf(tw, "\tWRONG (%s)", got)
				r.Errorf("%s → %s answered by %q", from.name, to.name, got)
			default:
				fmt.Fprintf(tw, "\tok: %s", got)
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	step("Pod a sends from an address that is not its own (10.244.1.250 → b)")
	a, b := pods[0], pods[1]
	a.NS.Run(r, "ip", "addr", "add", "10.244.1.250/32", "dev", "eth0")
	_, err := harness.AskFrom(a.NS, "10.244.1.250:0", b.Addr(podPort), timeout)
	if err == nil {
		r.Errorf("the spoofed connection got a reply")
	} else {
		fmt.Printf("no reply, as expected (%v)\n", err)
	}
	a.NS.Run(r, "ip", "addr", "del", "10.244.1.250/32", "dev", "eth0")
	ep, err := node.Client().GetEndpoint(context.Background(), a.ContainerID, "eth0")
	if err != nil {
		r.Fatalf("endpoint of a: %v", err)
	}
	var dropped uint64
	for _, c := range ep.Counters {
		if c.Reason == "drop-spoofed-source-ip" {
			dropped = c.Packets
		}
	}
	if dropped == 0 {
		r.Errorf("no drop-spoofed-source-ip counted for pod a")
	}
	fmt.Printf("pod a: %d packet(s) dropped, reason drop-spoofed-source-ip\n", dropped)

	step("A ClusterIP Service (10.96.0.10:80 → pods b and c on 8080), from the manifests directory the agent watches")
	writeFile(r, node, "web.yaml", webManifest)
	waitService(r, node, "10.96.0.10:80", 2)
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		got, err := harness.Ask(a.NS, "10.96.0.10:80", timeout)
		if err != nil {
			r.Errorf("a → 10.96.0.10:80: %v", err)
			break
		}
		seen[got]++
	}
	fmt.Printf("20 connections from a to 10.96.0.10:80 (no iptables, per-packet DNAT at a's veth): answered by %v\n", seen)
	if seen["b"] == 0 || seen["c"] == 0 || seen["b"]+seen["c"] != 20 {
		r.Errorf("expected replies from both b and c only, got %v", seen)
	}
	fmt.Print(cli(r, node, "service", "list"))

	step("A SluiceNetworkPolicy (CiliumNetworkPolicy schema) on pod b: allow role=frontend (pod a) on 8080, deny role=untrusted (pod c)")
	writeFile(r, node, "protect-b.yaml", policyManifest)
	waitPolicy(r, node, "protect-b")
	c := pods[2]
	if got, err := harness.Ask(a.NS, b.Addr(podPort), timeout); err != nil || got != "b" {
		r.Errorf("a → b should be allowed: %q, %v", got, err)
	} else {
		fmt.Println("a → b:8080: reply from b (allowed)")
	}
	if _, err := harness.Ask(c.NS, b.Addr(podPort), timeout); err == nil {
		r.Errorf("c → b should be dropped by the policy")
	} else {
		fmt.Printf("c → b:8080: no reply (%v)\n", err)
	}
	showFlows(r, node)

	step("Process events: an app in pod a spawns a shell, the shell connects to the web Service")
	processStory(r, node, a)

	step("A SluiceTracingPolicy (Tetragon's schema, exec prevention): a binary killed at exec in pods labelled role=untrusted")
	tracingPolicyStory(r, node, a, c)

	step("Connect denial (spec.connects): a binary in role=untrusted pods gets EPERM connecting to the service range")
	connectDenialStory(r, node, a, c)

	step("sluice endpoint get %s (pod a)", a.ContainerID[:12])
	fmt.Print(cli(r, node, "endpoint", "get", a.ContainerID))
	step("sluice endpoint list")
	fmt.Print(cli(r, node, "endpoint", "list"))

	step("Cleaning up: CNI DEL for every pod, agent stopped, namespaces, bpffs and cgroup removed")
}

// statusWhenReady is `sluice status` once the agent is healthy (it exits
// 1 until the manifests are applied), within 15 s.
func statusWhenReady(r *harness.Runner, node *harness.Node) string {
	var (
		out []byte
		err error
	)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err = node.NS.Command(harness.Bin(r, "sluice"), "--socket", node.Socket(), "status").CombinedOutput()
		if err == nil {
			return string(out)
		}
	}
	r.Errorf("sluice status: %v: %s", err, out)
	return string(out)
}

func cli(r *harness.Runner, node *harness.Node, args ...string) string {
	out, err := node.NS.Command(harness.Bin(r, "sluice"), append([]string{"--socket", node.Socket()}, args...)...).CombinedOutput()
	if err != nil {
		r.Errorf("sluice %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// webManifest is the Service web in front of pods b and c (app: web), and
// the client pod a.
var webManifest = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  clusterIP: 10.96.0.10
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
` + podManifest("a", "role: frontend") +
	podManifest("b", "app: web", "tier: protected") +
	podManifest("c", "app: web", "role: untrusted")

// podManifest is a "---"-led Pod document in namespace default with the
// given "key: value" labels.
func podManifest(name string, labels ...string) string {
	return "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: default\n  labels:\n    " +
		strings.Join(labels, "\n    ") + "\nspec:\n  containers:\n  - name: app\n    image: none\n"
}

func writeFile(r *harness.Runner, node *harness.Node, name, content string) {
	if err := os.WriteFile(filepath.Join(node.ManifestsDir, name), []byte(content), 0o600); err != nil {
		r.Fatalf("write %s: %v", name, err)
	}
}

// waitService waits until the agent programs frontend with n backends.
func waitService(r *harness.Runner, node *harness.Node, frontend string, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		svcs, err := node.Client().ListServices(context.Background())
		if err == nil {
			for _, s := range svcs {
				if s.Frontend == frontend && len(s.Backends) == n {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Fatalf("service %s not programmed with %d backends", frontend, n)
}

const policyManifest = `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata:
  name: protect-b
  namespace: default
spec:
  endpointSelector:
    matchLabels: {tier: protected}
  ingress:
  - fromEndpoints:
    - matchLabels: {role: frontend}
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
  ingressDeny:
  - fromEndpoints:
    - matchLabels: {role: untrusted}
`

// waitPolicy waits until the agent accepted the policy and selected a pod.
func waitPolicy(r *harness.Runner, node *harness.Node, name string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := node.Client().PolicyStatus(context.Background())
		if err == nil {
			for _, p := range st {
				if p.Name != name {
					continue
				}
				if !p.Accepted {
					r.Fatalf("policy %s rejected: %s", name, p.Reason)
				}
				if p.Endpoints > 0 {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Fatalf("policy %s not applied", name)
}

// showFlows prints the flows to pod b (the real `sluice observe`) and checks
// that one was forwarded and one dropped, each naming the rule.
func showFlows(r *harness.Runner, node *harness.Node) {
	fmt.Print(cli(r, node, "observe", "--to-pod", "default/b", "--port", "8080", "--last", "4"))
	var fwd, drop string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := node.Client().Flows(ctx, api.FlowFilter{ToPod: "default/b", Port: 8080}, func(f api.Flow) error {
		switch f.Verdict {
		case "FORWARDED":
			fwd = f.Rule
		case "DROPPED":
			drop = f.Rule
		}
		return nil
	})
	if err != nil {
		r.Errorf("flows: %v", err)
	}
	if !strings.Contains(fwd, "protect-b") || !strings.Contains(drop, "protect-b") {
		r.Errorf("want a forwarded and a dropped flow naming protect-b, got forwarded %q dropped %q", fwd, drop)
		return
	}
	fmt.Printf("forwarded by %s, dropped by %s\n", fwd, drop)

	// Asked before sending: the same verdict and rule from the kernel's
	// policy maps.
	fmt.Println("\n$ sluice policy trace --src default/c --dst default/b --dport 8080/TCP")
	out := cli(r, node, "policy", "trace", "--src", "default/c", "--dst", "default/b", "--dport", "8080/TCP")
	fmt.Print(out)
	if !strings.Contains(out, "rule "+drop) {
		r.Errorf("the trace should name %s, as the dropped flow did", drop)
	}
}
