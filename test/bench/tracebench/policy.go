package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

// The tracing policies of the sluice-policy configurations. Each is
// cluster-scoped without a podSelector (every process of the machine goes
// through its filter, as a node-wide file-monitoring or exec-prevention
// policy would). The exec and match policies name only paths under the
// run's own directory, so they can match nothing but the benchmark's own
// operations (tracing safety); the file-monitoring policy watches where
// such a policy would (/etc, /root) but only directories that do not
// exist (a random name per run), and only posts.
const (
	policyExecDeny   = "bench-exec-deny"
	policyOpenWatch  = "bench-open-watch"
	policyOpenMatch  = "bench-open-match"
	policyAcceptWait = 30 * time.Second
)

// policyFor returns the name and manifest of config's policy, "" for none.
func policyFor(o Options, config string, bins binaries) (string, string) {
	switch {
	case config == cfgSluicePolicy && o.Workload == workloadExec:
		// An exec-prevention policy for another binary: every exec of the
		// storm is checked against it and passes.
		return policyExecDeny, fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata:
  name: %s
spec:
  execs:
  - selectors:
    - matchBinaries:
      - operator: In
        values: [%q]
      matchActions:
      - action: Sigkill
`, policyExecDeny, bins.forbidden)
	case config == cfgSluicePolicy:
		// File monitoring of other paths: every openat of the loop is
		// read and compared, and matches none.
		return policyOpenWatch, openPolicy(policyOpenWatch, watchedPrefixes...)
	case config == cfgSluicePolicyMatch:
		return policyOpenMatch, openPolicy(policyOpenMatch, filepath.Dir(bins.open)+"/")
	}
	return "", ""
}

// watchedPrefixes are the sensitive locations the file-monitoring policy
// watches: outside the run's directory, and not existing (no process of the
// benchmark, nor of the machine, opens them).
var watchedPrefixes = func() []string {
	tag := fmt.Sprintf("sluice-bench-%08x", rand.Uint32())
	return []string{"/etc/" + tag + "/", "/root/." + tag + "/"}
}()

// openPolicy posts every openat of a path under one of prefixes,
// Tetragon's file-monitoring shape on the syscalls/sys_enter_openat
// tracepoint (format fields: 5 dfd, 6 filename, 7 flags).
func openPolicy(name string, prefixes ...string) string {
	values := make([]string, len(prefixes))
	for i, p := range prefixes {
		values[i] = strconv.Quote(p)
	}
	return fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata:
  name: %s
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - index: 6
      type: string
      label: filename
    - index: 7
      type: int
      label: flags
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: [%s]
      matchActions:
      - action: Post
`, name, strings.Join(values, ", "))
}

// writePolicy writes config's policy into the node's manifests directory.
func writePolicy(dir string, o Options, config string, bins binaries) (string, error) {
	name, manifest := policyFor(o, config, bins)
	if name == "" {
		return "", nil
	}
	return name, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(manifest), 0o600)
}

// waitPolicy waits until the agent reports policy name accepted.
func waitPolicy(ctx context.Context, socket, name string) error {
	client := api.NewClient(socket)
	deadline := time.Now().Add(policyAcceptWait)
	last := "not listed"
	for ctx.Err() == nil && time.Now().Before(deadline) {
		pols, err := client.TracingPolicies(ctx)
		if err != nil {
			last = err.Error()
		}
		for _, p := range pols {
			if p.Name != name {
				continue
			}
			if p.Accepted {
				return nil
			}
			last = "rejected: " + p.Reason
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("tracing policy %s not accepted within %v: %s", name, policyAcceptWait, last)
}

// postTally counts the distinct process_tracepoint events of a policy.
type postTally struct {
	mu   sync.Mutex
	n    int
	last time.Time
}

func (t *postTally) add(e *api.ProcessEvent, policy string) {
	if e.ProcessTracepoint == nil || e.ProcessTracepoint.PolicyName != policy {
		return
	}
	t.mu.Lock()
	t.n++
	t.last = time.Now()
	t.mu.Unlock()
}

func (t *postTally) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}
