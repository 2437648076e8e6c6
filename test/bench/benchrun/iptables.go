package benchrun

import (
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// IPTablesVersion is `iptables --version`, e.g. "iptables v1.8.9
// (nf_tables)": which backend the machine's iptables uses.
func IPTablesVersion() string {
	out, err := exec.Command("iptables", "--version").Output()
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return strings.TrimSpace(string(out))
}

// IPTablesRestore feeds rules to iptables-restore inside ns and returns how
// long it took. noflush keeps what is there (a partial sync).
func IPTablesRestore(ns *harness.NetNS, rules string, noflush bool) (time.Duration, error) {
	args := []string{}
	if noflush {
		args = append(args, "--noflush")
	}
	cmd := ns.Command("iptables-restore", args...)
	cmd.Stdin = strings.NewReader(rules)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("iptables-restore in %s: %v: %s", ns.Name, err, firstLines(string(out), 5))
	}
	return d, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
