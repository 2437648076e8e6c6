// Command campaign runs Sluice's reliability campaigns on a simulated node
// (a network namespace with no uplink, the real sluice-agent and the real
// sluice-cni binary), each ending with one RESULT line:
//
//	campaign soak [--quick]     churn: pods added and deleted in waves under
//	                            changing services and policies, then a hunt
//	                            for anything a gone pod left behind
//	campaign restart [--quick]  TCP_CRR through a ClusterIP and long-lived
//	                            streams while the agent is SIGKILLed and
//	                            restarted, then upgraded and downgraded
//
// It exits 1 when any check fails (a leak, a failed connection, a broken
// stream) and removes everything it created, also on failure. Run it as root
// through hack/soak.sh and hack/restart-under-load.sh, which build the
// binaries first.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == crrClientCmd {
		crrClientMain(os.Args[2:])
		return
	}
	if len(os.Args) < 2 || (os.Args[1] != "soak" && os.Args[1] != "restart") {
		fmt.Fprintln(os.Stderr, "usage: campaign soak|restart [--quick] [--bin-dir DIR] [flags]")
		os.Exit(2)
	}
	name := os.Args[1]
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	quick := fs.Bool("quick", false, "the short run CI does")
	binDir := fs.String("bin-dir", "bin", "directory with sluice-agent, sluice-cni and host-local of this build")
	var run func(r *harness.Runner) bool
	switch name {
	case "soak":
		o := soakFlags(fs)
		run = func(r *harness.Runner) bool { o.finish(*quick); return soak(r, o) }
	case "restart":
		o := restartFlags(fs)
		run = func(r *harness.Runner) bool { o.finish(*quick); return restart(r, o) }
	}
	fs.Parse(os.Args[2:])
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "campaign %s: needs root (network namespaces, BPF)\n", name)
		os.Exit(1)
	}
	abs, err := filepath.Abs(*binDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(harness.PrivilegedEnv, "1")
	os.Setenv(harness.BinDirEnv, abs)
	start := time.Now()
	r := &harness.Runner{}
	passed := false
	ok := r.Run(func() { passed = run(r) })
	fmt.Printf("campaign %s: %s in %.0fs\n", name, verdict(ok && passed), time.Since(start).Seconds())
	if !ok || !passed {
		os.Exit(1)
	}
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// logf prints a progress line with the time since the start.
func logf(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
