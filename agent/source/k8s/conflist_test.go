package k8s

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/cni"
)

func TestConflistRenderIsWhatTheRuntimeAndPluginAccept(t *testing.T) {
	c := Conflist{
		PodCIDR: netip.MustParsePrefix("10.244.0.0/24"),
		RunDir:  "/var/run/sluice", BPFRoot: "/sys/fs/bpf/sluice",
		IPAMDataDir: "/var/lib/cni/networks", LogFile: "/var/log/sluice-cni.log", MTU: 1450,
	}
	raw, err := c.Render()
	require.NoError(t, err)
	list, err := libcni.ConfListFromBytes(raw)
	require.NoError(t, err)
	require.Equal(t, "1.0.0", list.CNIVersion)
	require.Len(t, list.Plugins, 1)
	require.Equal(t, "sluice-cni", list.Plugins[0].Network.Type)
	require.Equal(t, "host-local", list.Plugins[0].Network.IPAM.Type)

	// The runtime hands the plugin its entry with the list's name and version injected.
	var entry map[string]any
	require.NoError(t, json.Unmarshal(list.Plugins[0].Bytes, &entry))
	entry["name"], entry["cniVersion"] = list.Name, list.CNIVersion
	pluginConf, err := json.Marshal(entry)
	require.NoError(t, err)
	nc, err := cni.ParseConfig(pluginConf)
	require.NoError(t, err)
	require.Equal(t, "/var/run/sluice", nc.RunDir)
	require.Equal(t, "/sys/fs/bpf/sluice", nc.BPFRoot)
	require.Equal(t, 1450, nc.MTU)
	require.Equal(t, "/var/log/sluice-cni.log", nc.LogFile)
	require.Contains(t, string(list.Plugins[0].Bytes), `"subnet":"10.244.0.0/24"`)
	require.Contains(t, string(list.Plugins[0].Bytes), `"dataDir":"/var/lib/cni/networks"`)

	// libcni passes runtimeConfig.portMappings only to a plugin declaring
	// the capability; the plugin reads them.
	require.True(t, list.Plugins[0].Network.Capabilities["portMappings"], "portMappings capability declared")
	entry["runtimeConfig"] = map[string]any{"portMappings": []map[string]any{
		{"hostPort": 54323, "containerPort": 8080, "protocol": "udp", "hostIP": "192.168.1.5"}}}
	pluginConf, err = json.Marshal(entry)
	require.NoError(t, err)
	nc, err = cni.ParseConfig(pluginConf)
	require.NoError(t, err)
	require.Equal(t, []api.PortMapping{{HostPort: 54323, ContainerPort: 8080, Protocol: "udp", HostIP: "192.168.1.5"}},
		nc.RuntimeConfig.PortMappings)
}

func TestConflistRenderRejects(t *testing.T) {
	_, err := Conflist{RunDir: "/r", BPFRoot: "/b"}.Render()
	require.ErrorContains(t, err, "not an IPv4 prefix")
	_, err = Conflist{PodCIDR: netip.MustParsePrefix("fd00::/64"), RunDir: "/r", BPFRoot: "/b"}.Render()
	require.ErrorContains(t, err, "not an IPv4 prefix")
	_, err = Conflist{PodCIDR: netip.MustParsePrefix("10.0.0.0/24")}.Render()
	require.ErrorContains(t, err, "runDir and bpfRoot")
}

func TestConflistWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net.d")
	path := filepath.Join(dir, "05-sluice.conflist")
	c := Conflist{PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), RunDir: "/r", BPFRoot: "/b"}
	require.NoError(t, c.Write(path))
	want, err := c.Render()
	require.NoError(t, err)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	// Unchanged content: the file is not rewritten (same inode, no event for the runtime).
	require.NoError(t, c.Write(path))
	st2, err := os.Stat(path)
	require.NoError(t, err)
	require.True(t, os.SameFile(st, st2))

	// A new PodCIDR replaces it atomically; no temp file is left behind.
	c.PodCIDR = netip.MustParsePrefix("10.244.2.0/24")
	require.NoError(t, c.Write(path))
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(got), "10.244.2.0/24")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1)
}
