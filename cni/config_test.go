package cni

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func cniErr(t *testing.T, err error) *types.Error {
	t.Helper()
	var te *types.Error
	require.True(t, errors.As(err, &te), "want *types.Error, got %T: %v", err, err)
	return te
}

func TestParseConfig(t *testing.T) {
	const ipam = `"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]]}`
	tests := []struct {
		name    string
		in      string
		code    uint
		msg     string // substring of the error message
		runDir  string
		bpfRoot string
		mtu     int
	}{
		{name: "defaults", in: `{"cniVersion":"1.1.0","name":"sluice","type":"sluice-cni",` + ipam + `}`,
			runDir: "/var/run/sluice", bpfRoot: "/sys/fs/bpf/sluice", mtu: 0}, // 0: ask the agent
		{name: "explicit", in: `{"name":"sluice","runDir":"/tmp/r","bpfRoot":"/tmp/b/sluice","mtu":9000,"logFile":"/tmp/l",` + ipam + `}`,
			runDir: "/tmp/r", bpfRoot: "/tmp/b/sluice", mtu: 9000},
		{name: "empty", in: ``, code: types.ErrDecodingFailure, msg: "empty network configuration"},
		{name: "not json", in: `{"name":`, code: types.ErrDecodingFailure, msg: "cannot decode network configuration"},
		{name: "mtu wrong type", in: `{"name":"n","mtu":"big",` + ipam + `}`, code: types.ErrDecodingFailure, msg: "cannot decode"},
		{name: "no name", in: `{` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `network "name" is required`},
		{name: "bad name", in: `{"name":"a b",` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: "invalid characters"},
		{name: "no ipam", in: `{"name":"n"}`, code: types.ErrInvalidNetworkConfig, msg: `"ipam" with a "type" is required`},
		{name: "ipam without type", in: `{"name":"n","ipam":{"subnet":"10.0.0.0/24"}}`, code: types.ErrInvalidNetworkConfig, msg: `"ipam" with a "type"`},
		{name: "mtu too small", in: `{"name":"n","mtu":10,` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `"mtu" 10 is out of range`},
		{name: "mtu too large", in: `{"name":"n","mtu":65536,` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `"mtu" 65536 is out of range`},
		{name: "mtu negative", in: `{"name":"n","mtu":-1,` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `out of range`},
		{name: "relative runDir", in: `{"name":"n","runDir":"run",` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `"runDir" "run" must be an absolute path`},
		{name: "relative bpfRoot", in: `{"name":"n","bpfRoot":"bpf",` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `"bpfRoot" "bpf" must be an absolute path`},
		{name: "relative logFile", in: `{"name":"n","logFile":"x.log",` + ipam + `}`, code: types.ErrInvalidNetworkConfig, msg: `"logFile"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := ParseConfig([]byte(tt.in))
			if tt.code != 0 {
				te := cniErr(t, err)
				assert.Equal(t, tt.code, te.Code)
				assert.Contains(t, te.Error(), tt.msg)
				assert.Contains(t, te.Error(), "sluice-cni")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.runDir, conf.RunDir)
			assert.Equal(t, tt.bpfRoot, conf.BPFRoot)
			assert.Equal(t, tt.mtu, conf.MTU)
			assert.Equal(t, "host-local", conf.IPAM.Type)
			assert.Equal(t, tt.runDir+"/agent.sock", conf.SocketPath())
			assert.Equal(t, tt.runDir+"/delete-queue", conf.DeleteQueueDir())
		})
	}
}

func TestValidateArgs(t *testing.T) {
	tests := []struct {
		name      string
		args      skel.CmdArgs
		needNetns bool
		code      uint
		msg       string
	}{
		{name: "ok", args: skel.CmdArgs{ContainerID: "abc", IfName: "eth0", Netns: "/var/run/netns/x"}, needNetns: true},
		{name: "no netns for DEL", args: skel.CmdArgs{ContainerID: "abc", IfName: "eth0"}},
		{name: "no container", args: skel.CmdArgs{IfName: "eth0"}, code: types.ErrUnknownContainer, msg: "CNI_CONTAINERID: missing containerID"},
		{name: "bad container", args: skel.CmdArgs{ContainerID: "a/b", IfName: "eth0"}, code: types.ErrInvalidEnvironmentVariables, msg: "CNI_CONTAINERID"},
		{name: "no ifname", args: skel.CmdArgs{ContainerID: "abc"}, code: types.ErrInvalidEnvironmentVariables, msg: "CNI_IFNAME: interface name is empty"},
		{name: "long ifname", args: skel.CmdArgs{ContainerID: "abc", IfName: "0123456789abcdefg"}, code: types.ErrInvalidEnvironmentVariables, msg: "too long"},
		{name: "no netns for ADD", args: skel.CmdArgs{ContainerID: "abc", IfName: "eth0"}, needNetns: true, code: types.ErrInvalidEnvironmentVariables, msg: "CNI_NETNS is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateArgs(&tt.args, tt.needNetns)
			if tt.code == 0 {
				require.NoError(t, err)
				return
			}
			te := cniErr(t, err)
			assert.Equal(t, tt.code, te.Code)
			assert.Contains(t, te.Error(), tt.msg)
		})
	}
}

func TestParseK8sArgs(t *testing.T) {
	tests := []struct {
		name, in, ns, pod string
		fail              bool
	}{
		{name: "empty"},
		{name: "k8s", in: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc", ns: "default", pod: "web-0"},
		{name: "unknown keys ignored without IgnoreUnknown", in: "FOO=bar;K8S_POD_NAME=p", pod: "p"},
		{name: "malformed pair", in: "K8S_POD_NAME", fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parseK8sArgs(tt.in)
			if tt.fail {
				te := cniErr(t, err)
				assert.Equal(t, types.ErrInvalidEnvironmentVariables, te.Code)
				assert.Contains(t, te.Error(), "CNI_ARGS")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.ns, string(a.K8S_POD_NAMESPACE))
			assert.Equal(t, tt.pod, string(a.K8S_POD_NAME))
		})
	}
}
