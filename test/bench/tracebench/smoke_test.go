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

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/harness"
)

// TestPrivilegedTracingProgStats: a tp_btf program on sched_process_exec
// held by this process (through its link) is found in its descriptors, and
// with statistics on its run count grows by at least the execs run; a
// socket filter held too is not counted (not a tracing program).
func TestPrivilegedTracingProgStats(t *testing.T) {
	harness.RequirePrivileged(t)
	ret0 := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_exec", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: "sched_process_exec", Instructions: ret0, License: "GPL"})
	require.NoError(t, err)
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	require.NoError(t, err)
	defer l.Close()
	filter, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: ret0, License: "GPL"})
	require.NoError(t, err)
	defer filter.Close()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	require.NoError(t, err)
	defer stats.Close()

	before, err := tracingProgStats(os.Getpid())
	require.NoError(t, err)
	require.Contains(t, before.Names, "bench_exec")
	require.Len(t, before.Names, 1, "only the tracing program")
	for range 20 {
		require.NoError(t, exec.Command("/bin/true").Run())
	}
	after, err := tracingProgStats(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after.Runs-before.Runs, uint64(20), "one run per exec at least")
	assert.Positive(t, after.RunTime-before.RunTime)

	cpu, err := cpuSeconds(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, cpu, "this test has used CPU")
}

// TestPrivilegedTraceBenchSmoke runs the driver in a tiny mode (baseline and
// agent, one round of 500 ms) and checks their RESULT lines, and that no
// line is printed for configurations not asked for.
func TestPrivilegedTraceBenchSmoke(t *testing.T) {
	harness.RequirePrivileged(t)
	binDir := harness.BinDir(t)
	dir := t.TempDir()
	for _, b := range []string{"sluice-agent", "sluice-cni", "sluice", "host-local"} {
		require.NoError(t, os.Symlink(filepath.Join(binDir, b), filepath.Join(dir, b)))
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "execstorm"), "github.com/sluicenet/sluice/test/bench/execstorm")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build execstorm: %s", out)

	o := DefaultOptions()
	o.Configs = []string{cfgBaseline, cfgAgent}
	o.Rounds, o.Duration, o.Warmup = 1, 500*time.Millisecond, 100*time.Millisecond
	o.BinDir = dir
	var buf bytes.Buffer
	ok, err := run(context.Background(), o, &buf)
	t.Log(buf.String())
	require.NoError(t, err)
	require.True(t, ok)
	re := regexp.MustCompile(`(?m)^RESULT workload=exec config=(\S+) ops_per_s=([0-9]+) ratio_baseline=([0-9.]+) lost=NA`)
	got := map[string]float64{}
	for _, m := range re.FindAllStringSubmatch(buf.String(), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		got[m[1]] = v
	}
	assert.Positive(t, got[cfgBaseline])
	assert.Positive(t, got[cfgAgent])
	assert.Regexp(t, `(?m)^RESULT workload=exec config=agent .* agent_cpu_s_per_1k_execs=[0-9.]+$`, buf.String())
	assert.NotContains(t, buf.String(), "config=sluice", "configurations not asked for")
}
