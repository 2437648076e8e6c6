package state_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/state"
)

func sample(id uint16) api.Endpoint {
	return api.Endpoint{
		ID: id, ContainerID: "c1", IfName: "eth0", NetNS: "/var/run/netns/p", PodNamespace: "default", PodName: "web",
		IPv4: "10.0.0.1", MAC: "02:00:00:00:00:01", HostIfName: "lxc1", HostIfIndex: 5, HostMAC: "02:00:00:00:00:02",
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := state.New(filepath.Join(t.TempDir(), "endpoints"))
	require.NoError(t, err)
	ep := sample(42)
	ep.Counters = []api.Counter{{Packets: 1}}
	require.NoError(t, s.Save(ep))
	assert.Equal(t, filepath.Join(s.Dir(), "42.json"), s.Path(42))

	fi, err := os.Stat(s.Path(42))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	eps, bad, err := s.LoadAll()
	require.NoError(t, err)
	assert.Empty(t, bad)
	want := sample(42)
	assert.Equal(t, []api.Endpoint{want}, eps, "counters are not persisted")

	// Overwrite, then remove (twice: a missing file is fine).
	ep.IPv4 = "10.0.0.2"
	require.NoError(t, s.Save(ep))
	eps, _, err = s.LoadAll()
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, "10.0.0.2", eps[0].IPv4)
	require.NoError(t, s.Remove(42))
	require.NoError(t, s.Remove(42))
	eps, _, err = s.LoadAll()
	require.NoError(t, err)
	assert.Empty(t, eps)

	entries, err := os.ReadDir(s.Dir())
	require.NoError(t, err)
	assert.Empty(t, entries, "no temporary files left behind")
}

func TestLoadAllBadFiles(t *testing.T) {
	s, err := state.New(t.TempDir())
	require.NoError(t, err)
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(s.Dir(), name), []byte(content), 0o600))
	}
	require.NoError(t, s.Save(sample(1)))
	write("2.json", "{not json")
	write("3.json", `{"id": 4, "containerID": "x"}`)
	mismatched := `{"id":9,"containerID":"c","ifName":"eth0","ipv4":"10.0.0.9","mac":"m","hostIfName":"h","hostIfIndex":1,"hostMAC":"m"}`
	write("5.json", mismatched)
	write(".1.json.tmp123", "partial")
	write("README", "ignored")

	eps, bad, err := s.LoadAll()
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, uint16(1), eps[0].ID)
	var names []string
	for _, b := range bad {
		names = append(names, filepath.Base(b.Path))
		assert.Error(t, b.Err)
	}
	assert.ElementsMatch(t, []string{"2.json", "3.json", "5.json"}, names)
}
