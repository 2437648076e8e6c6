package harness

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// StartAgentArgs is StartAgent with extra sluice-agent flags appended (for
// example --manifests-dir, --cgroup-root, --socket-lb). It waits until the
// API answers, and stops the agent (SIGTERM) in cleanup.
func (n *Node) StartAgentArgs(tb T, extra ...string) *Agent {
	tb.Helper()
	logPath := filepath.Join(n.Dir, "agent.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"--bpf-root", n.BPFRoot, "--run-dir", n.RunDir, "--log-level", "debug"}, extra...)
	cmd := n.NS.Command(Bin(tb, "sluice-agent"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sluice-agent: %v", err)
	}
	a := &Agent{node: n, cmd: cmd, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	tb.Cleanup(func() {
		a.Stop(tb)
		if tb.Failed() {
			b, _ := os.ReadFile(logPath)
			tb.Logf("agent log of %s:\n%s", n.NS.Name, b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := n.Client().Healthz(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-a.done:
			a.done <- werr
			b, _ := os.ReadFile(logPath)
			tb.Fatalf("sluice-agent exited during start-up (%v):\n%s", werr, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			tb.Fatalf("sluice-agent not healthy after 15s: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.agent = a
	return a
}

// AgentLog is the path of the node's agent log.
func (n *Node) AgentLog() string { return filepath.Join(n.Dir, "agent.log") }
