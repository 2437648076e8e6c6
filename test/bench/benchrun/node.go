package benchrun

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// Sysctls writes /proc/sys entries inside ns (they are per network
// namespace), failing tb on error.
func Sysctls(tb harness.T, ns *harness.NetNS, kv map[string]string) {
	tb.Helper()
	ns.Do(tb, func() {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				tb.Errorf("sysctl %s=%s in %s: %v", k, v, ns.Name, err)
			}
		}
	})
	if tb.Failed() {
		tb.Fatalf("sysctls in %s failed", ns.Name)
	}
}

// ServeCRR starts `crr serve --listen listen --name name extra...` in ns,
// waits for its readiness line and stops it (SIGTERM, then SIGKILL) in
// tb's cleanup.
func ServeCRR(tb harness.T, ns *harness.NetNS, crr, listen, name string, extra ...string) {
	tb.Helper()
	cmd := ns.Command(crr, append([]string{"serve", "--listen", listen, "--name", name}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start crr serve in %s: %v", ns.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	tb.Cleanup(func() { harness.StopProcess(cmd, done) })
	ready := make(chan bool, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		ready <- err == nil && strings.HasPrefix(line, "listening ")
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-done
			tb.Fatalf("crr serve %s in %s did not start: %s", name, ns.Name, stderr.String())
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("crr serve %s in %s: no readiness line in 10s", name, ns.Name)
	}
}
