package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain reports the agent's memory (RSS and peak RSS of the sluice-agent
// process on this host) before and after the e2e workload.
func TestMain(m *testing.M) {
	e2e := os.Getenv("SLUICE_E2E") == "1"
	if e2e {
		fmt.Println("AGENT MEMORY before:", agentMemory())
	}
	code := m.Run()
	if e2e {
		fmt.Println("AGENT MEMORY after:", agentMemory())
	}
	os.Exit(code)
}

// agentMemory returns VmRSS and VmHWM of the Kubernetes-mode sluice-agent
// processes (the DaemonSet's container is visible in the host's /proc).
func agentMemory() string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "sluice-agent" {
			continue
		}
		// only the DaemonSet's agent (other sluice-agents may run standalone tests)
		if cmd, _ := os.ReadFile(filepath.Join(d, "cmdline")); !strings.Contains(string(cmd), "--k8s") {
			continue
		}
		f, err := os.Open(filepath.Join(d, "status"))
		if err != nil {
			continue
		}
		fields := map[string]string{}
		s := bufio.NewScanner(f)
		for s.Scan() {
			k, v, ok := strings.Cut(s.Text(), ":")
			if ok && (k == "VmRSS" || k == "VmHWM") {
				fields[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
		out = append(out, fmt.Sprintf("pid %s RSS %s (peak %s)", filepath.Base(d), fields["VmRSS"], fields["VmHWM"]))
	}
	if len(out) == 0 {
		return "no sluice-agent process found"
	}
	return strings.Join(out, "; ")
}
