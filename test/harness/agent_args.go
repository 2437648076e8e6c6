package harness

import "path/filepath"

// StartAgentArgs is StartAgent with extra sluice-agent flags appended (for
// example --socket-lb=true); later flags override earlier ones.
func (n *Node) StartAgentArgs(tb T, extra ...string) *Agent {
	tb.Helper()
	return n.StartAgentWith(tb, AgentOptions{Args: extra})
}

// AgentLog is the path of the node's agent log.
func (n *Node) AgentLog() string { return filepath.Join(n.Dir, "agent.log") }
