package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/sluicenet/sluice/agent/atomicfile"
)

// DefaultConflistPath is where the agent writes the CNI configuration in
// Kubernetes mode; "05-" sorts it before other plugins' files.
const DefaultConflistPath = "/etc/cni/net.d/05-sluice.conflist"

// DefaultCNIVersion is the conflist's cniVersion: 1.0.0 is the newest that
// containerd 1.6 (libcni 1.1) accepts, and sluice-cni supports it.
const DefaultCNIVersion = "1.0.0"

// Conflist is the CNI configuration the agent writes from the node's PodCIDR.
type Conflist struct {
	// CNIVersion defaults to DefaultCNIVersion.
	CNIVersion string
	// PodCIDR is the host-local IPAM range (the Node's spec.podCIDR).
	PodCIDR netip.Prefix
	// RunDir and BPFRoot are the agent's; sluice-cni finds the socket and
	// the pinned programs there.
	RunDir  string
	BPFRoot string
	// IPAMDataDir is host-local's dataDir; empty uses host-local's default.
	IPAMDataDir string
	// LogFile is sluice-cni's log file; empty logs only warnings to stderr.
	LogFile string
	// MTU of the pod veths; 0 uses the plugin's default.
	MTU int
}

// Render returns the conflist JSON.
func (c Conflist) Render() ([]byte, error) {
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() {
		return nil, fmt.Errorf("conflist: pod CIDR %v is not an IPv4 prefix", c.PodCIDR)
	}
	if c.RunDir == "" || c.BPFRoot == "" {
		return nil, errors.New("conflist: runDir and bpfRoot are required")
	}
	ver := c.CNIVersion
	if ver == "" {
		ver = DefaultCNIVersion
	}
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": c.PodCIDR.Masked().String()}}},
	}
	if c.IPAMDataDir != "" {
		ipam["dataDir"] = c.IPAMDataDir
	}
	plugin := map[string]any{
		"type":    "sluice-cni",
		"runDir":  c.RunDir,
		"bpfRoot": c.BPFRoot,
		"ipam":    ipam,
		// The runtime passes the pods' hostPorts (runtimeConfig); the
		// agent serves them in BPF, so no portmap plugin is chained.
		"capabilities": map[string]bool{"portMappings": true},
	}
	if c.LogFile != "" {
		plugin["logFile"] = c.LogFile
	}
	if c.MTU != 0 {
		plugin["mtu"] = c.MTU
	}
	conf := map[string]any{"cniVersion": ver, "name": "sluice", "plugins": []any{plugin}}
	raw, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	return append(raw, '\n'), nil
}

// Write renders the conflist and installs it at path atomically (a temp file
// in the same directory, then rename), so the runtime never reads half a file.
// An identical existing file is left untouched.
func (c Conflist) Write(path string) error {
	raw, err := c.Render()
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == string(raw) {
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("install conflist %s: %w", path, err)
	}
	return nil
}
