package cni

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseValidAttachments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ValidAttachments
		code uint
		msg  string
	}{
		{name: "missing key", in: `{"cniVersion":"1.1.0","name":"sluice"}`, want: ValidAttachments{}},
		{name: "empty list", in: `{"cni.dev/valid-attachments":[]}`, want: ValidAttachments{}},
		{name: "two", in: `{"name":"sluice","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"net1"}]}`,
			want: ValidAttachments{{"a", "eth0"}: true, {"b", "net1"}: true}},
		{name: "duplicates collapse", in: `{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"a","ifname":"eth0"}]}`,
			want: ValidAttachments{{"a", "eth0"}: true}},
		{name: "not a list", in: `{"cni.dev/valid-attachments":{"containerID":"a"}}`, code: types.ErrDecodingFailure, msg: "valid-attachments"},
		{name: "bad json", in: `{`, code: types.ErrDecodingFailure, msg: "valid-attachments"},
		{name: "missing ifname", in: `{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b"}]}`,
			code: types.ErrInvalidNetworkConfig, msg: `[1] needs both "containerID" and "ifname"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseValidAttachments([]byte(tt.in))
			if tt.code != 0 {
				te := cniErr(t, err)
				assert.Equal(t, tt.code, te.Code)
				assert.Contains(t, te.Error(), tt.msg)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestValidAttachmentsHostVethNames(t *testing.T) {
	v := ValidAttachments{{"a", "eth0"}: true, {"b", "eth0"}: true}
	assert.Equal(t, map[string]bool{HostVethName("a", "eth0"): true, HostVethName("b", "eth0"): true}, v.HostVethNames())
	assert.True(t, v.hasContainer("a"))
	assert.False(t, v.hasContainer("c"))
}

func TestReadHostLocalAllocations(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "sluice")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	files := map[string]string{
		"10.244.1.2":         "ctr-a\r\neth0",
		"10.244.1.3":         "ctr-b", // written by an old host-local
		"lock":               "",
		"last_reserved_ip.0": "10.244.1.3",
		"fd00::5":            "ctr-c\r\nnet1",
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	got, err := ReadHostLocalAllocations(dataDir, "sluice")
	require.NoError(t, err)
	assert.ElementsMatch(t, []HostLocalAllocation{
		{IP: "10.244.1.2", ContainerID: "ctr-a", IfName: "eth0"},
		{IP: "10.244.1.3", ContainerID: "ctr-b"},
		{IP: "fd00::5", ContainerID: "ctr-c", IfName: "net1"},
	}, got)

	got, err = ReadHostLocalAllocations(dataDir, "other")
	require.NoError(t, err, "a network without allocations")
	assert.Empty(t, got)
}
