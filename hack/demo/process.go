package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// processStory is the seed articles' story on the simulated node: an app in
// pod a spawns a shell, the shell connects to the web Service. One command
// shows the chain and the connection with its service and backend; the flow
// of that connection names the shell.
func processStory(r *harness.Runner, node *harness.Node, a *harness.Pod) {
	inner := "exec 3<>/dev/tcp/10.96.0.10/80 && read -r reply <&3 && echo \"backend: $reply\""
	cmd := a.CommandInCgroup(r, "/bin/sh", "-c", fmt.Sprintf("/bin/bash -c '%s'", inner))
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.Fatalf("the shell in pod a: %v: %s", err, out)
	}
	fmt.Printf("$ nsenter --net=<pod a> /bin/sh -c \"/bin/bash -c '...'\"   (the app spawns a shell)\n%s", out)
	pid := uint32(cmd.ProcessState.Pid())

	var bash *api.ProcessConnect
	deadline := time.Now().Add(10 * time.Second)
	for bash == nil && time.Now().Before(deadline) {
		err := node.Client().Events(context.Background(), api.EventFilter{Namespace: "default", Pod: "a"}, func(ev *api.ProcessEvent) error {
			if c := ev.ProcessConnect; c != nil && c.Process.Binary == "/bin/bash" && c.Parent != nil && c.Parent.PID == pid {
				bash = c
			}
			return nil
		})
		if err != nil {
			r.Fatalf("events: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if bash == nil {
		r.Fatalf("no connect event of the shell (child of pid %d) in pod a", pid)
	}
	fmt.Println("\n$ sluice events --pod a -o compact")
	for _, line := range strings.Split(cli(r, node, "events", "--namespace", "default", "--pod", "a", "-o", "compact"), "\n") {
		if strings.Contains(line, "/bin/") {
			fmt.Println(line)
		}
	}
	if bash.Service == nil || bash.Service.Name != "web" || bash.DestinationPod == "" {
		r.Errorf("the shell's connection should name the web Service and the backend pod: %+v", bash)
	}
	chain := []string{fmt.Sprintf("%s (pid %d, exec id %s)", bash.Process.Binary, bash.Process.PID, bash.Process.ExecID)}
	for _, p := range append([]*api.Process{bash.Parent}, bash.Ancestors...) {
		if p != nil {
			chain = append(chain, fmt.Sprintf("%s (pid %d)", p.Binary, p.PID))
		}
	}
	fmt.Printf("\nthe connect event's process chain: %s\n", strings.Join(chain, " <- "))
	fmt.Println("\n$ sluice observe --from-pod default/a --last 1   (the flow names the shell)")
	deadline = time.Now().Add(5 * time.Second)
	for {
		line := cli(r, node, "observe", "--from-pod", "default/a", "--port", "8080", "--last", "1")
		if strings.Contains(line, "/bin/bash") || time.Now().After(deadline) {
			fmt.Print(line)
			if !strings.Contains(line, "/bin/bash pid") {
				r.Errorf("the flow of the shell's connection does not name /bin/bash")
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tracingPolicyStory applies a SluiceTracingPolicy that kills a binary (a
// demo-owned copy of touch named nc) in pods labelled role=untrusted, before
// it runs one instruction: pod c cannot run it, pod a can.
func tracingPolicyStory(r *harness.Runner, node *harness.Node, a, c *harness.Pod) {
	nc := filepath.Join(r.TempDir(), "nc")
	if err := harness.CopyExecutable("/usr/bin/touch", nc); err != nil {
		r.Fatalf("copy touch: %v", err)
	}
	writeFile(r, node, "no-nc.yaml", fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: no-nc}
spec:
  podSelector: {matchLabels: {role: untrusted}}
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [%q]}]
      matchActions: [{action: Sigkill}]
`, nc))
	deadline := time.Now().Add(10 * time.Second)
	var killed bool
	for !killed && time.Now().Before(deadline) {
		err := c.NS.Command(nc, filepath.Join(r.TempDir(), "c-ran")).Run()
		killed = err != nil && strings.Contains(err.Error(), "killed")
		if !killed {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !killed {
		r.Fatalf("nc was not killed in pod c")
	}
	fmt.Printf("$ nsenter --net=<pod c> %s   → killed by SIGKILL at exec (exit 137)\n", nc)
	if err := a.NS.Command(nc, filepath.Join(r.TempDir(), "a-ran")).Run(); err != nil {
		r.Errorf("nc in pod a (not selected): %v", err)
	} else {
		fmt.Printf("$ nsenter --net=<pod a> %s   → runs (pod a is not role=untrusted)\n", nc)
	}
	fmt.Println("\n$ sluice tracingpolicy list")
	fmt.Print(cli(r, node, "tracingpolicy", "list"))
	fmt.Println("\n$ sluice events --policy no-nc -o compact")
	fmt.Print(waitEvents(r, node, "no-nc"))
}
