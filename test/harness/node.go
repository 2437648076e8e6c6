package harness

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

// Node is a simulated Kubernetes node: a network namespace with no uplink,
// a private bpffs (BPFRoot lives in it), a run directory for the agent's
// socket and state, a cgroup v2 directory for socket hooks, and a CNI
// conflist that points sluice-cni at all of these.
type Node struct {
	NS      *NetNS
	Name    string // node name (the agent's --node-name)
	Dir     string // scratch directory: logs, IPAM data, CNI cache
	BPFRoot string
	RunDir  string
	Cgroup  string
	// ManifestsDir is the directory of Kubernetes YAML the agent watches.
	ManifestsDir string
	PodCIDR      netip.Prefix
	Gateway      netip.Addr // first address of PodCIDR, on every host-side veth
	ConfList     *libcni.NetworkConfigList
	CNI          *libcni.CNIConfig

	agent *Agent
}

// NodeOptions configure NewNode.
type NodeOptions struct {
	// Index selects the PodCIDR 10.244.<Index>.0/24 (default 1).
	Index int
}

// NewNode creates a simulated node. It does not start the agent.
func NewNode(tb T, opts NodeOptions) *Node {
	tb.Helper()
	RequirePrivileged(tb)
	Blackhole(tb)
	if opts.Index == 0 {
		opts.Index = 1
	}
	n := &Node{Dir: tb.TempDir()}
	n.NS = NewNetNS(tb, "sl-node-")
	n.BPFRoot = filepath.Join(BPFFS(tb), "sluice")
	// Unpin before the bpffs goes (and after the agent stopped, whose
	// cleanup comes later): the agent's pinned links, the process sensor's
	// tracepoints among them, must not outlive the test.
	tb.Cleanup(func() {
		if err := os.RemoveAll(n.BPFRoot); err != nil {
			tb.Errorf("unpin %s: %v", n.BPFRoot, err)
		}
	})
	n.RunDir = filepath.Join(n.Dir, "run")
	n.Cgroup = Cgroup(tb)
	n.Name = fmt.Sprintf("node-%d", opts.Index)
	n.ManifestsDir = filepath.Join(n.Dir, "manifests")
	if err := os.Mkdir(n.ManifestsDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	n.PodCIDR = netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", opts.Index))
	n.Gateway = n.PodCIDR.Addr().Next()

	// No "mtu": sluice-cni asks the agent for its pod MTU.
	conf := map[string]any{
		"cniVersion": "1.1.0",
		"name":       "sluice",
		"plugins": []any{map[string]any{
			"type":    "sluice-cni",
			"runDir":  n.RunDir,
			"bpfRoot": n.BPFRoot,
			"logFile": filepath.Join(n.Dir, "cni.log"),
			// As the agent's conflist: the runtime passes hostPorts.
			"capabilities": map[string]bool{"portMappings": true},
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": n.PodCIDR.String()}}},
				"dataDir": filepath.Join(n.Dir, "ipam"),
			},
		}},
	}
	raw, err := json.Marshal(conf)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "05-sluice.conflist"), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	n.ConfList, err = libcni.ConfListFromBytes(raw)
	if err != nil {
		tb.Fatalf("parse conflist: %v", err)
	}
	n.UseCNIFrom(BinDir(tb))
	tb.Cleanup(func() {
		if tb.Failed() {
			if b, err := os.ReadFile(filepath.Join(n.Dir, "cni.log")); err == nil {
				tb.Logf("sluice-cni log of %s:\n%s", n.NS.Name, b)
			}
		}
	})
	return n
}

// UseCNIFrom makes the node run CNI plugins from dirs, searched in order
// (the upgrade test puts the previous release's sluice-cni first, this
// build's dir for host-local after it). Pods added from then on, and every
// later DEL and CHECK, use them.
func (n *Node) UseCNIFrom(dirs ...string) {
	n.CNI = libcni.NewCNIConfigWithCacheDir(dirs, filepath.Join(n.Dir, "cni-cache"), &nsExec{ns: n.NS})
}

// Agent returns the agent last started with StartAgent, or nil.
func (n *Node) Agent() *Agent { return n.agent }
