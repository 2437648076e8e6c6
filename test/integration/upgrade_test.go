package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// PrevBinDirEnv names the directory with the previous release's
// sluice-agent and sluice-cni (hack/build-prev.sh fills it; hack/test.sh
// sets it).
const PrevBinDirEnv = "SLUICE_PREV_BIN_DIR"

// renamedMaps are the maps whose pin the current build renames on upgrade
// (a layout version suffix, the loader renaming the old pin): the map, by
// ID, must be found under either name. Maps not listed keep their name.
var renamedMaps = map[string]string{
	"sluice_endpoints":    "sluice_endpoints_v1",
	"sluice_metrics":      "sluice_metrics_v1",
	"sluice_flows":        "sluice_flows_v1",
	"sluice_flows_lost":   "sluice_flows_lost_v1",
	"sluice_sock_metrics": "sluice_sock_metrics_v1",
}

// pinnedLink is a pinned link's identity and the program it runs.
type pinnedLink struct {
	ID   link.ID
	Prog ebpf.ProgramID
}

// pinned is what a bpffs root holds: maps by pin name, links by path
// relative to links/, programs by pin name.
type pinned struct {
	maps  map[string]ebpf.MapID
	links map[string]pinnedLink
	progs map[string]ebpf.ProgramID
}

// readPinned walks root's maps/, links/ and progs/ (the layout both builds
// share) and records every object's kernel ID.
func readPinned(t *testing.T, root string) pinned {
	t.Helper()
	p := pinned{maps: map[string]ebpf.MapID{}, links: map[string]pinnedLink{}, progs: map[string]ebpf.ProgramID{}}
	walk(t, filepath.Join(root, "maps"), func(rel, path string) {
		m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
		require.NoError(t, err, "load pinned map %s", path)
		defer m.Close()
		info, err := m.Info()
		require.NoError(t, err)
		id, ok := info.ID()
		require.True(t, ok, "map %s has an ID", rel)
		p.maps[rel] = id
	})
	walk(t, filepath.Join(root, "links"), func(rel, path string) {
		l, err := link.LoadPinnedLink(path, nil) // links open read-write only
		require.NoError(t, err, "load pinned link %s", path)
		defer l.Close()
		info, err := l.Info()
		require.NoError(t, err)
		p.links[rel] = pinnedLink{ID: info.ID, Prog: info.Program}
	})
	walk(t, filepath.Join(root, "progs"), func(rel, path string) {
		prog, err := ebpf.LoadPinnedProgram(path, &ebpf.LoadPinOptions{ReadOnly: true})
		require.NoError(t, err, "load pinned program %s", path)
		defer prog.Close()
		info, err := prog.Info()
		require.NoError(t, err)
		id, ok := info.ID()
		require.True(t, ok, "program %s has an ID", rel)
		p.progs[rel] = id
	})
	return p
}

// walk calls fn for every file under dir (a missing dir has none).
func walk(t *testing.T, dir string, fn func(rel, path string)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		fn(rel, path)
		return nil
	})
	require.NoError(t, err)
}

// mapsUsedBy returns the IDs of the maps the programs use.
func mapsUsedBy(t *testing.T, progs map[ebpf.ProgramID]bool) map[ebpf.MapID]bool {
	t.Helper()
	used := map[ebpf.MapID]bool{}
	for id := range progs {
		prog, err := ebpf.NewProgramFromID(id)
		require.NoError(t, err, "open program %d", id)
		info, err := prog.Info()
		prog.Close()
		require.NoError(t, err)
		ids, ok := info.MapIDs()
		require.True(t, ok, "program %d lists its maps", id)
		for _, m := range ids {
			used[m] = true
		}
	}
	return used
}

// prevBinaries returns the previous release's agent and the directory of
// its CNI plugin. Under SLUICE_PRIVILEGED_TESTS=1 a missing build fails the
// test: the upgrade path must not go untested by accident.
func prevBinaries(t *testing.T) (agent, dir string) {
	t.Helper()
	dir = os.Getenv(PrevBinDirEnv)
	if dir == "" {
		t.Fatalf("%s is not set: build the previous release with hack/build-prev.sh DIR and set it (hack/test.sh does)", PrevBinDirEnv)
	}
	for _, b := range []string{"sluice-agent", "sluice-cni"} {
		_, err := os.Stat(filepath.Join(dir, b))
		require.NoError(t, err, "%s of the previous release in %s", b, dir)
	}
	return filepath.Join(dir, "sluice-agent"), dir
}

// A node wired by the previous release's agent and CNI plugin (pods, a
// Service, a host device and the socket-LB cgroup hooks) is taken over by
// this build's agent: every pinned link keeps its ID and runs the new
// programs, every map of the old build (by ID; renamed pins allowed) is used
// by the new programs, a long-lived connection through the Service keeps
// flowing, and new connections and new pods work.
func TestPrivilegedUpgradeFromPreviousBuild(t *testing.T) {
	harness.RequirePrivileged(t)
	prevAgent, prevDir := prevBinaries(t)
	node := harness.NewNode(t, harness.NodeOptions{})
	wire(t, node, "sl-ext-", "ext0", npNodeIP, npClientIP)
	args := []string{"--devices", "ext0"}

	// The previous release wires the node.
	node.UseCNIFrom(prevDir, harness.BinDir(t)) // old sluice-cni, host-local from this build
	old := node.StartAgentWith(t, harness.AgentOptions{Binary: prevAgent, SocketLB: true, Args: args})
	client := node.AddPod(t, "client")
	backends := []*harness.Pod{node.AddPod(t, "web-1"), node.AddPod(t, "web-2")}
	var pods strings.Builder
	for _, b := range backends {
		harness.ServeTCP(t, b.NS, b.Addr(podPort), b.Name)
		pods.WriteString(podYAML(b, "web"))
	}
	writeManifest(t, node, "pods.yaml", pods.String())
	writeManifest(t, node, "web.yaml", serviceYAML("web", vip, ""))
	frontend := fmt.Sprintf("%s:%d", vip, svcPort)
	waitBackends(t, node, frontend, 2)

	c, err := harness.Dial(client.NS, "tcp4", "", frontend, timeout)
	require.NoError(t, err)
	s, backend := startStreamOn(t, c)
	require.Contains(t, []string{"web-1", "web-2"}, backend, "the Service's backend answered")
	s.requireFlowing(t, 300*time.Millisecond, "through the previous release")

	before := readPinned(t, node.BPFRoot)
	require.NotEmpty(t, before.maps, "the previous release pinned maps")
	for _, p := range append([]*harness.Pod{client}, backends...) {
		var n int
		for rel := range before.links {
			if strings.HasPrefix(rel, p.HostIfName+string(filepath.Separator)) {
				n++
			}
		}
		require.Equal(t, 2, n, "pod %s has its two links pinned: %v", p.Name, before.links)
	}
	require.Contains(t, before.links, filepath.Join("cgroup", "connect4"), "socket-LB links pinned")
	require.Contains(t, before.links, filepath.Join("devices", "ext0", "ingress"), "device links pinned")
	oldProgs := map[ebpf.ProgramID]bool{}
	for _, l := range before.links {
		oldProgs[l.Prog] = true
	}

	// Upgrade: stop the old agent, start this build's on the same root.
	old.Stop(t)
	s.requireFlowing(t, 300*time.Millisecond, "while no agent runs")
	node.StartAgentWith(t, harness.AgentOptions{SocketLB: true, Args: args})

	var after pinned
	require.Eventually(t, func() bool {
		after = readPinned(t, node.BPFRoot)
		for _, l := range after.links {
			if oldProgs[l.Prog] {
				return false
			}
		}
		return true
	}, 15*time.Second, 100*time.Millisecond, "every pinned link runs a program of the new agent")

	newProgs := map[ebpf.ProgramID]bool{}
	for _, id := range after.progs {
		newProgs[id] = true
	}
	for rel, l := range before.links {
		got, ok := after.links[rel]
		if !assert.True(t, ok, "link %s still pinned", rel) {
			continue
		}
		assert.Equal(t, l.ID, got.ID, "link %s is the same link (adopted, not re-created)", rel)
		assert.True(t, newProgs[got.Prog], "link %s runs program %d, one the new agent pinned", rel, got.Prog)
		newProgs[got.Prog] = true
	}
	used := mapsUsedBy(t, newProgs)
	for name, id := range before.maps {
		names := []string{name}
		if n, ok := renamedMaps[name]; ok {
			names = append(names, n)
		}
		var pinnedAs string
		for _, n := range names {
			if after.maps[n] == id {
				pinnedAs = n
			}
		}
		assert.NotEmpty(t, pinnedAs, "map %s (ID %d) still pinned under %v; pinned now: %v", name, id, names, after.maps)
		assert.True(t, used[id], "map %s (ID %d) is used by the new programs", name, id)
	}

	s.requireFlowing(t, time.Second, "after the upgrade")
	for name := range askMany(t, client.NS, frontend, 10) {
		assert.Contains(t, []string{"web-1", "web-2"}, name, "new connection through the Service")
	}
	node.UseCNIFrom(harness.BinDir(t)) // this build's CNI plugin from now on
	late := node.AddPod(t, "late")
	got, err := harness.Ask(late.NS, frontend, timeout)
	require.NoError(t, err, "a pod wired after the upgrade reaches the Service")
	assert.Contains(t, []string{"web-1", "web-2"}, got)
	requireReply(t, late.NS, backends[0].Addr(podPort), "web-1")
	s.requireFlowing(t, 200*time.Millisecond, "at the end")
}
