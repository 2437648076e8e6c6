package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

// Agent is a sluice-agent process running in a simulated node.
type Agent struct {
	node *Node
	cmd  *exec.Cmd
	done chan error
}

// StartAgent runs the real sluice-agent binary inside the node's netns and
// waits until its API answers. It is stopped (SIGTERM) in cleanup.
func (n *Node) StartAgent(tb T) *Agent {
	tb.Helper()
	return n.StartAgentWith(tb, AgentOptions{})
}

// AgentOptions configure StartAgentWith.
type AgentOptions struct {
	// SocketLB attaches the socket-LB programs to the node's cgroup.
	SocketLB bool
	// Args are extra command-line arguments.
	Args []string
	// Binary is the sluice-agent to run (default: this build's, from BinDir);
	// the upgrade test runs the previous release's.
	Binary string
	// Kubeconfig, when set, runs the agent in Kubernetes mode against that
	// API server (StartAPIServer) instead of the manifests directory; its
	// CNI conflist goes to the node's directory.
	Kubeconfig string
}

// StartAgentWith is StartAgent with options. The agent watches the node's
// manifests directory (or the API server of opts.Kubeconfig) and names
// itself after the node.
func (n *Node) StartAgentWith(tb T, opts AgentOptions) *Agent {
	tb.Helper()
	logPath := filepath.Join(n.Dir, "agent.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	source := []string{"--manifests-dir", n.ManifestsDir}
	if opts.Kubeconfig != "" {
		source = []string{"--k8s", "--kubeconfig", opts.Kubeconfig, "--cni-conflist", filepath.Join(n.Dir, "k8s.conflist")}
	}
	args := append([]string{"--bpf-root", n.BPFRoot, "--run-dir", n.RunDir, "--log-level", "debug",
		"--node-name", n.Name, "--cgroup-root", n.Cgroup, fmt.Sprintf("--socket-lb=%t", opts.SocketLB)}, source...)
	bin := opts.Binary
	if bin == "" {
		bin = Bin(tb, "sluice-agent")
		// The process sensor sees every process of the machine, other test
		// packages' too: a larger history keeps a test's events from being
		// pushed out by theirs before it reads them. (Only this build's
		// agent: an earlier release may not have the flag.)
		args = append(args, "--process-event-history=65536")
	}
	cmd := n.NS.Command(bin, append(args, opts.Args...)...)
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

// Client returns an API client for the node's agent socket.
func (n *Node) Client() *api.Client { return api.NewClient(n.Socket()) }

// Socket is the agent's API socket path.
func (n *Node) Socket() string { return filepath.Join(n.RunDir, "agent.sock") }

// PID returns the agent's process ID.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Kill ends the agent with SIGKILL (a crash) and waits for it.
func (a *Agent) Kill(tb T) {
	tb.Helper()
	a.signal(tb, syscall.SIGKILL)
}

// Stop ends the agent with SIGTERM and waits for it; idempotent.
func (a *Agent) Stop(tb T) {
	tb.Helper()
	a.signal(tb, syscall.SIGTERM)
}

func (a *Agent) signal(tb T, sig syscall.Signal) {
	tb.Helper()
	select {
	case err := <-a.done:
		a.done <- err
		return
	default:
	}
	// nsenter execs the agent in place, so the PID is the agent's.
	a.cmd.Process.Signal(sig)
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(10 * time.Second):
		// SIGQUIT: the Go runtime writes every goroutine's stack to the
		// agent's log (printed on failure) and exits, showing what hung.
		a.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case err := <-a.done:
			a.done <- err
		case <-time.After(3 * time.Second):
			a.cmd.Process.Kill()
			a.done <- <-a.done
		}
		tb.Errorf("sluice-agent did not exit within 10s of %v (goroutine dump in its log)", sig)
	}
}
