package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// connectDenialStory applies a SluiceTracingPolicy whose spec.connects
// denies a demo-owned copy of bash ("exfil") in pods labelled
// role=untrusted every connect to the service range: the cgroup connect
// hook refuses it with EPERM on the kernel's copy of the address. The same
// binary in pod a gets the web Service's reply.
func connectDenialStory(r *harness.Runner, node *harness.Node, a, c *harness.Pod) {
	exfil := filepath.Join(r.TempDir(), "exfil")
	if err := harness.CopyExecutable("/bin/bash", exfil); err != nil {
		r.Fatalf("copy bash: %v", err)
	}
	writeFile(r, node, "no-exfil.yaml", fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: no-exfil}
spec:
  podSelector: {matchLabels: {role: untrusted}}
  connects:
  - selectors:
    - matchBinaries: [{operator: In, values: [%q]}]
      matchArgs: [{index: 0, operator: DAddr, values: [10.96.0.0/12]}]
      matchActions: [{action: Override, argError: -1}]
`, exfil))
	script := "exec 3<>/dev/tcp/10.96.0.10/80 && read -r reply <&3 && echo \"reply from $reply\""
	run := func(p *harness.Pod) (string, bool) {
		out, err := p.CommandInCgroup(r, exfil, "-c", script).CombinedOutput()
		return strings.TrimSpace(string(out)), err == nil
	}
	// Before the policy is in the kernel, pod c's connect would go to a
	// backend, and protect-b drops c → b: wait for the rules and the
	// scope of pod c rather than probe with connects.
	waitConnectRules(r, node, "no-exfil")
	out, ok := run(c)
	if ok || !strings.Contains(out, "Operation not permitted") {
		r.Fatalf("exfil in pod c was not denied with EPERM: %s", out)
	}
	fmt.Printf("$ nsenter --net=<pod c> %s -c '%s'\n%s\n", exfil, script, out)
	if out, ok := run(a); !ok {
		r.Errorf("exfil in pod a (not selected): %s", out)
	} else {
		fmt.Printf("$ nsenter --net=<pod a> %s -c '...'\n%s   (pod a is not role=untrusted)\n", exfil, out)
	}
	fmt.Println("\n$ sluice events --policy no-exfil -o compact")
	fmt.Print(waitEvents(r, node, "no-exfil"))
}

// waitConnectRules waits until policy is accepted and its connect rules
// and pod scopes are in the kernel (within 10 s).
func waitConnectRules(r *harness.Runner, node *harness.Node, policy string) {
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := node.Client().TracingPolicy(ctx, "", policy)
		es, eerr := node.Client().TracingRuleEntries(ctx)
		if err == nil && eerr == nil && p.Accepted && es["connect.slots"] > 0 && es["connect.scope"] > 0 {
			return
		}
		if time.Now().After(deadline) {
			r.Fatalf("policy %s not in the kernel within 10s: %+v %v %v %v", policy, p, err, es, eerr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEvents returns the compact lines of policy's events, once there is
// one (within 5 s: events pass through the agent's pipeline).
func waitEvents(r *harness.Runner, node *harness.Node, policy string) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := cli(r, node, "events", "--policy", policy, "-o", "compact")
		if strings.TrimSpace(out) != "" {
			return out
		}
		if time.Now().After(deadline) {
			r.Errorf("no event of policy %s", policy)
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}
