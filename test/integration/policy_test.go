package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// The Kubernetes network-policy e2e topology: namespaces x, y, z (labelled
// ns=<name>) with pods a, b, c (labelled pod=<name>), every pod serving
// TCP on ports 80 and 81 and announcing "<namespace>/<name>".
type policyCluster struct {
	node *harness.Node
	pods []*harness.Pod
}

var policyPorts = []int{80, 81}

func newPolicyCluster(t *testing.T, agentArgs ...string) *policyCluster {
	t.Helper()
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentArgs(t, agentArgs...)
	var yaml strings.Builder
	c := &policyCluster{node: node}
	for _, ns := range []string{"x", "y", "z"} {
		fmt.Fprintf(&yaml, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %q\n  labels: {ns: %q}\n---\n", ns, ns)
		for _, name := range []string{"a", "b", "c"} {
			fmt.Fprintf(&yaml, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %q\n  namespace: %q\n  labels: {pod: %q}\nspec:\n  containers: [{name: app, image: none}]\n---\n", name, ns, name)
		}
	}
	writeManifest(t, node, "00-topology.yaml", yaml.String())
	for _, ns := range []string{"x", "y", "z"} {
		for _, name := range []string{"a", "b", "c"} {
			p := node.AddPodIn(t, ns, name)
			for _, port := range policyPorts {
				harness.ServeTCP(t, p.NS, p.Addr(port), p.FullName())
			}
			c.pods = append(c.pods, p)
		}
	}
	return c
}

// pod returns the pod "ns/name".
func (c *policyCluster) pod(full string) *harness.Pod {
	for _, p := range c.pods {
		if p.FullName() == full {
			return p
		}
	}
	panic("no pod " + full)
}

// applyPolicy writes a policy file. When the (sub)test ends, however it
// ends, the file is removed if still there and every pod must reach every
// other again, so a failing subtest does not leave its policy to the next.
func (c *policyCluster) applyPolicy(t *testing.T, name, yaml string) {
	t.Helper()
	writeManifest(t, c.node, name, yaml)
	t.Cleanup(func() {
		err := os.Remove(filepath.Join(c.node.ManifestsDir, name))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		require.NoError(t, err)
		c.requireTruthTable(t, allowAll)
	})
}

// removePolicy deletes a policy file before the subtest ends (to assert on
// what follows).

func (c *policyCluster) removePolicy(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, os.Remove(filepath.Join(c.node.ManifestsDir, name)))
}

// probe connects from one pod to another and reports whether the
// destination's server answered with its own name.
func probe(from *harness.NetNS, to *harness.Pod, port int) bool {
	got, err := harness.Ask(from, to.Addr(port), 700*time.Millisecond)
	return err == nil && got == to.FullName()
}

type verdictFunc func(from, to *harness.Pod, port int) bool

// requireTruthTable connects every pod to every other pod on every port and
// compares with want, retrying until they agree (the agent applies
// manifests asynchronously) or the deadline passes.
func (c *policyCluster) requireTruthTable(t *testing.T, want verdictFunc) {
	t.Helper()
	var diff []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		diff = c.truthDiff(want)
		if len(diff) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	st, _ := c.node.Client().PolicyStatus(context.Background())
	t.Fatalf("truth table differs in %d cells:\n%s\npolicy status: %+v", len(diff), strings.Join(diff, "\n"), st)
}

func (c *policyCluster) truthDiff(want verdictFunc) []string {
	var (
		mu   sync.Mutex
		diff []string
		wg   sync.WaitGroup
	)
	for _, from := range c.pods {
		for _, to := range c.pods {
			if from == to {
				continue // a pod reaching itself never leaves its netns
			}
			for _, port := range policyPorts {
				wg.Go(func() {
					got, exp := probe(from.NS, to, port), want(from, to, port)
					if got != exp {
						mu.Lock()
						diff = append(diff, fmt.Sprintf("  %s -> %s:%d: connected=%t, want %t", from.FullName(), to.FullName(), port, got, exp))
						mu.Unlock()
					}
				})
			}
		}
	}
	wg.Wait()
	return diff
}

func allowAll(_, _ *harness.Pod, _ int) bool { return true }

func TestPrivilegedPolicyKubernetesE2E(t *testing.T) {
	harness.RequirePrivileged(t)
	c := newPolicyCluster(t)
	c.requireTruthTable(t, allowAll)

	t.Run("deny-all ingress", func(t *testing.T) {
		c.applyPolicy(t, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: "x"}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`)
		c.requireTruthTable(t, func(_, to *harness.Pod, _ int) bool { return to.Namespace != "x" })
		c.removePolicy(t, "10-policy.yaml")
		c.requireTruthTable(t, allowAll)
	})

	t.Run("allow from namespace", func(t *testing.T) {
		c.applyPolicy(t, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-ns-y, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]
`)
		c.requireTruthTable(t, func(from, to *harness.Pod, _ int) bool {
			return to.FullName() != "x/a" || from.Namespace == "y"
		})
	})

	t.Run("allow from pod in namespace", func(t *testing.T) {
		c.applyPolicy(t, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y-b, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "y"}}, podSelector: {matchLabels: {pod: b}}}]
`)
		c.requireTruthTable(t, func(from, to *harness.Pod, _ int) bool {
			return to.FullName() != "x/a" || from.FullName() == "y/b"
		})
	})

	t.Run("endPort range edge", func(t *testing.T) {
		// 79-80 allows 80 and not 81: no off-by-one at the range end.
		c.applyPolicy(t, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ports-79-80, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{protocol: TCP, port: 79, endPort: 80}]
`)
		c.requireTruthTable(t, func(_, to *harness.Pod, port int) bool {
			return to.FullName() != "x/a" || port == 80
		})
	})

	t.Run("egress deny", func(t *testing.T) {
		c.applyPolicy(t, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-to-x, namespace: "y"}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: "x"}}}]
`)
		c.requireTruthTable(t, func(from, to *harness.Pod, _ int) bool {
			return from.FullName() != "y/a" || to.Namespace == "x"
		})
	})

	t.Run("update while a connection flows", func(t *testing.T) {
		c.requireTruthTable(t, allowAll)
		from, to := c.pod("z/b"), c.pod("x/a")
		conn, err := harness.Dial(from.NS, "tcp4", "", to.Addr(80), time.Second)
		require.NoError(t, err)
		defer conn.Close()
		echo := func(msg string) error {
			conn.SetDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write([]byte(msg + "\n")); err != nil {
				return err
			}
			buf := make([]byte, 256)
			var got string
			for !strings.HasSuffix(got, msg+"\n") {
				n, err := conn.Read(buf)
				if err != nil {
					return err
				}
				got += string(buf[:n])
			}
			return nil
		}
		require.NoError(t, echo("before"))
		c.applyPolicy(t, "10-policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: "x"}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`)
		c.requireTruthTable(t, func(_, to *harness.Pod, _ int) bool { return to.Namespace != "x" })
		// The established connection keeps flowing (conntrack), new ones
		// are refused.
		require.NoError(t, echo("after"), "established connection survives the policy update")
		assert.False(t, probe(from.NS, to, 80))
		c.removePolicy(t, "10-policy.yaml")
		c.requireTruthTable(t, allowAll)
	})
}

func TestPrivilegedPolicySluiceCNP(t *testing.T) {
	harness.RequirePrivileged(t)
	c := newPolicyCluster(t)
	c.requireTruthTable(t, allowAll)
	ctx := context.Background()

	t.Run("deny precedence and flows naming rules", func(t *testing.T) {
		c.applyPolicy(t, "20-policy.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: deny-yb, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEntities: [cluster]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {pod: b, k8s:io.kubernetes.pod.namespace: "y"}}]
`)
		c.requireTruthTable(t, func(from, to *harness.Pod, _ int) bool {
			return to.FullName() != "x/a" || from.FullName() != "y/b"
		})
		// Flows name the rule that decided.
		requireFlow(t, c.node, api.FlowFilter{Verdict: "DROPPED", FromPod: "y/b", ToPod: "x/a"}, "x/deny-yb[ingressDeny:0]")
		requireFlow(t, c.node, api.FlowFilter{Verdict: "FORWARDED", FromPod: "z/c", ToPod: "x/a", Port: 80}, "x/deny-yb[ingress:0]")
		out, err := exec.Command(harness.Bin(t, "sluice"), "--socket", c.node.Socket(), "observe",
			"--verdict", "DROPPED", "--from-pod", "y/b", "--to-pod", "x/a", "--last", "3").CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "rule x/deny-yb[ingressDeny:0]")
		// The agent's metrics count the policy drops.
		metrics := scrapeMetrics(t, c.node)
		assert.Regexp(t, `sluice_policy_verdicts_total\{direction="ingress",reason="[^"]*",verdict="DROPPED"\} [1-9]`, metrics)
		assert.Contains(t, metrics, "sluice_policy_map_entries ")
	})

	t.Run("entities host", func(t *testing.T) {
		c.applyPolicy(t, "20-policy.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: host-only, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEntities: [host]
`)
		c.requireTruthTable(t, func(_, to *harness.Pod, _ int) bool { return to.FullName() != "x/a" })
		assert.True(t, probe(c.node.NS, c.pod("x/a"), 80), "the node (reserved:host) reaches x/a")
	})

	t.Run("clusterwide", func(t *testing.T) {
		c.applyPolicy(t, "20-policy.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceClusterwideNetworkPolicy
metadata: {name: no-z-to-c}
spec:
  endpointSelector: {matchLabels: {pod: c}}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: "z"}}]
`)
		c.requireTruthTable(t, func(from, to *harness.Pod, _ int) bool {
			return to.Name != "c" || from.Namespace != "z"
		})
	})

	t.Run("invalid policy rejected, others keep working", func(t *testing.T) {
		c.applyPolicy(t, "20-policy.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: l7, namespace: "x"}
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{method: GET}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`)
		// The L7 policy is rejected and fails closed: every pod of x (its
		// endpointSelector {}) gets default deny for ingress, the direction
		// it covers (TestPrivilegedRejectedPolicyFailsClosed has the
		// details); y's deny-all applies.
		c.requireTruthTable(t, func(_, to *harness.Pod, _ int) bool { return to.Namespace != "y" && to.Namespace != "x" })
		st, err := c.node.Client().PolicyStatus(ctx)
		require.NoError(t, err)
		var found bool
		for _, s := range st {
			if s.Name == "l7" {
				found = true
				assert.False(t, s.Accepted)
				assert.Contains(t, s.Reason, "spec.ingress[0].toPorts[0].rules", "reason names the field")
				assert.Contains(t, s.Message, "; enforcing default deny for ingress")
				assert.Equal(t, 3, s.Endpoints)
			}
			if s.Name == "deny-all" {
				assert.True(t, s.Accepted)
				assert.Equal(t, 3, s.Endpoints)
			}
		}
		assert.True(t, found, "status lists the rejected policy: %+v", st)
	})
}

// scrapeMetrics reads the agent's /metrics from inside the node.
func scrapeMetrics(t *testing.T, node *harness.Node) string {
	t.Helper()
	return httpGetIn(t, node, "127.0.0.1:9962", "/metrics")
}

// httpGetIn returns the whole HTTP/1.0 answer (status line, headers, body)
// of GET path at addr, asked from inside the node.
func httpGetIn(t *testing.T, node *harness.Node, addr, path string) string {
	t.Helper()
	conn, err := harness.Dial(node.NS, "tcp4", "", addr, time.Second)
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(conn, "GET "+path+" HTTP/1.0\r\nHost: agent\r\n\r\n")
	require.NoError(t, err)
	b, err := io.ReadAll(conn)
	require.NoError(t, err)
	return string(b)
}

// requireFlow waits for a flow the filter selects and requires it to name
// rule.
func requireFlow(t *testing.T, node *harness.Node, f api.FlowFilter, rule string) {
	t.Helper()
	var seen []api.Flow
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		seen = seen[:0]
		err := node.Client().Flows(context.Background(), f, func(fl api.Flow) error {
			seen = append(seen, fl)
			return nil
		})
		require.NoError(t, err)
		for _, fl := range seen {
			if fl.Rule == rule {
				return
			}
		}
	}
	t.Fatalf("no %+v flow naming %s; got %+v", f, rule, seen)
}
