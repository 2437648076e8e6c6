package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// TestPrivilegedCRRBenchSmoke runs the driver in a tiny mode (direct and
// iptables with 1 and 10 services, one round of 1s, with the iptables
// control plane) and checks every RESULT line is printed with tps > 0.
func TestPrivilegedCRRBenchSmoke(t *testing.T) {
	harness.RequirePrivileged(t)
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		t.Fatalf("iptables-restore: %v", err)
	}
	binDir := harness.BinDir(t) // sluice-agent, sluice-cni, host-local
	// crr goes into a private directory holding links to the others.
	dir := t.TempDir()
	for _, b := range []string{"sluice-agent", "sluice-cni", "sluice", "host-local"} {
		if err := os.Symlink(filepath.Join(binDir, b), filepath.Join(dir, b)); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "crr"), "github.com/sluicenet/sluice/test/bench/crr")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build crr: %v: %s", err, out)
	}

	o := DefaultOptions()
	o.Configs = []string{cfgDirect, cfgIPTables}
	o.Services = []int{1, 10}
	o.Rounds, o.CPRounds = 1, 1
	o.Duration, o.Warmup = time.Second, 200*time.Millisecond
	o.BinDir = dir
	var out bytes.Buffer
	ok, err := run(context.Background(), o, &out)
	t.Log(out.String())
	if err != nil || !ok {
		t.Fatalf("run: ok=%v err=%v", ok, err)
	}
	tps := regexp.MustCompile(`(?m)^RESULT config=(\S+) services=(\d+) tps=([0-9.]+) ratio_direct=([0-9.]+)(?: \S+=\S+)*$`)
	got := map[string]float64{}
	for _, m := range tps.FindAllStringSubmatch(out.String(), -1) {
		v, _ := strconv.ParseFloat(m[3], 64)
		got[m[1]+"/"+m[2]] = v
	}
	for _, k := range []string{"direct/0", "iptables/1", "iptables/10"} {
		if got[k] <= 0 {
			t.Errorf("no RESULT line with tps > 0 for %s", k)
		}
	}
	// Direct twice in the round: its self-ratio is a number.
	if !regexp.MustCompile(`(?m)^RESULT config=direct .* self_ratio=[0-9.]+ `).MatchString(out.String()) {
		t.Error("no self_ratio for direct")
	}
	cp := regexp.MustCompile(`(?m)^RESULT config=(program|change)-iptables services=(\d+) seconds=([0-9.]+)$`)
	if n := len(cp.FindAllString(out.String(), -1)); n != 3 {
		t.Errorf("%d iptables control-plane RESULT lines, want 3 (program 1, program 10, change 10)", n)
	}
	// The sluice configurations were not asked for: no line for them.
	if regexp.MustCompile(`config=sluice-`).MatchString(out.String()) {
		t.Error("RESULT lines for configurations that were not requested")
	}
}
