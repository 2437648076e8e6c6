package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/test/harness"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Sluice runs on (the kernel exports it to user
// space as a constant, whatever CONFIG_HZ is).
const clockTicks = 100

// cpuSeconds returns the user+system CPU time of process pid, all its
// threads, in seconds (/proc/<pid>/stat fields 14 and 15).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may hold spaces: the fields after it follow the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks float64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += float64(v)
	}
	return ticks / clockTicks, nil
}

// metricsAddr is the agent's default --metrics-addr, in the node's netns.
const metricsAddr = "127.0.0.1:9962"

// Metric of the process sensor's ring-buffer losses (agent/process, plan
// of issue 10).
const lostMetric = "sluice_process_events_lost_total"

// scrapeMetric returns the sum of every series of metric name on the
// agent's /metrics, read from inside the node's netns; ok is false when the
// agent exports no such metric.
func scrapeMetric(node *harness.Node, name string) (sum float64, ok bool, err error) {
	conn, err := harness.Dial(node.NS, "tcp4", "", metricsAddr, time.Second)
	if err != nil {
		return 0, false, fmt.Errorf("connect to the agent's metrics: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n"); err != nil {
		return 0, false, err
	}
	sum, ok, err = sumMetric(conn, name)
	if err != nil {
		return 0, false, fmt.Errorf("read the agent's metrics: %w", err)
	}
	return sum, ok, nil
}

// sumMetric sums the samples of metric name in a Prometheus text exposition
// (HTTP headers before it are skipped: they never start with the name).
func sumMetric(r io.Reader, name string) (sum float64, ok bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if j := strings.LastIndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		ok = true
	}
	return sum, ok, sc.Err()
}

// progStats is the cumulative BPF run time of the tracing (tp_btf) programs
// a process holds.
type progStats struct {
	Runs    uint64
	RunTime time.Duration
	Names   []string
}

// tracingProgStats sums the kernel's statistics of the BPF tracing programs
// process pid holds: programs and links among its descriptors (their
// fdinfo names the program ID). The counters grow only while statistics
// are on (BPF_ENABLE_STATS, see enableBPFStats); they count every run,
// whichever process triggered it.
func tracingProgStats(pid int) (progStats, error) {
	ids, err := heldProgramIDs(pid)
	if err != nil {
		return progStats{}, err
	}
	var out progStats
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded since
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil {
			return out, fmt.Errorf("program %d: %w", id, errors.Join(ierr, serr))
		}
		if info.Type != ebpf.Tracing {
			continue
		}
		out.Runs += st.RunCount
		out.RunTime += st.Runtime
		out.Names = append(out.Names, info.Name)
	}
	return out, nil
}

// heldProgramIDs returns the IDs of the BPF programs process pid holds a
// descriptor of, directly or through a link.
func heldProgramIDs(pid int) ([]ebpf.ProgramID, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[ebpf.ProgramID]bool{}
	var out []ebpf.ProgramID
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed since
		}
		for line := range strings.Lines(string(b)) {
			v, found := strings.CutPrefix(line, "prog_id:")
			if !found {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err == nil && !seen[ebpf.ProgramID(id)] {
				seen[ebpf.ProgramID(id)] = true
				out = append(out, ebpf.ProgramID(id))
			}
		}
	}
	return out, nil
}
