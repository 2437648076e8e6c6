package cni

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"
)

// FuzzParseConfig feeds stdin data through the network config parser.
// Invariants: a rejected config is a *types.Error (decoding failure or
// invalid config) and no config; parsing is deterministic; an accepted
// config has a valid name, an IPAM type, absolute paths and an MTU in range
// (or 0); and the IPAM section GC reads from the same data names the same
// type (or fails as a decoding error).
func FuzzParseConfig(f *testing.F) {
	const ipam = `"ipam":{"type":"host-local","dataDir":"/var/lib/cni/networks","ranges":[[{"subnet":"10.244.1.0/24"}]]}`
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"sluice","type":"sluice-cni",` + ipam + `}`,
		`{"name":"sluice","runDir":"/tmp/r","bpfRoot":"/tmp/b/sluice","mtu":9000,"logFile":"/tmp/l","capabilities":{"portMappings":true},` + ipam + `}`,
		`{"cniVersion":"1.1.0","name":"sluice","type":"sluice-cni","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.244.1.5/24","interface":0}]},` + ipam + `}`,
		`{"cniVersion":"1.1.0","name":"sluice","type":"sluice-cni","cni.dev/valid-attachments":[{"containerID":"abc","ifname":"eth0"}],` + ipam + `}`,
		`{"name":"a b",` + ipam + `}`,
		`{"name":"n","mtu":65536,` + ipam + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, err := ParseConfig(data)
		if err != nil {
			require.Nil(t, conf)
			te := typedErr(t, err)
			require.Contains(t, []uint{types.ErrDecodingFailure, types.ErrInvalidNetworkConfig}, te.Code, "%v", err)
			return
		}
		again, err := ParseConfig(data)
		require.NoError(t, err, "parsing is deterministic")
		require.True(t, reflect.DeepEqual(conf, again), "parsing is deterministic")
		require.NotEmpty(t, conf.Name)
		require.NotContains(t, conf.Name, "/")
		require.NotEmpty(t, conf.IPAM.Type)
		require.True(t, conf.MTU == 0 || (conf.MTU >= minMTU && conf.MTU <= maxMTU), "mtu %d", conf.MTU)
		for _, p := range []string{conf.RunDir, conf.BPFRoot} {
			require.True(t, filepath.IsAbs(p), "%q", p)
		}
		require.True(t, conf.LogFile == "" || filepath.IsAbs(conf.LogFile), "%q", conf.LogFile)
		ic, err := conf.ipam(data)
		if err != nil {
			require.Equal(t, uint(types.ErrDecodingFailure), typedErr(t, err).Code)
			return
		}
		require.Equal(t, conf.IPAM.Type, ic.Type, "GC reads the IPAM type the config was accepted with")
	})
}

// FuzzParseArgs feeds the CNI environment (container ID, interface name,
// netns, CNI_ARGS) through validateArgs and parseK8sArgs. Invariants: errors
// are *types.Error with the CNI code for the variable; accepted CNI_ARGS
// give values that, written back as CNI_ARGS, parse to the same values;
// an accepted interface name has no path separator or colon. (A NUL
// passes validateArgs, but CNI_IFNAME comes from the environment, which
// cannot carry one.)
func FuzzParseArgs(f *testing.F) {
	f.Add("abc", "eth0", "/var/run/netns/x", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u", true)
	f.Add("0123456789abcdef", "net1", "", "FOO=bar;K8S_POD_NAME=p", false)
	f.Add("a/b", "0123456789abcdefg", "", "K8S_POD_NAME;CommonArgs=x;IgnoreUnknown=maybe", true)
	f.Fuzz(func(t *testing.T, containerID, ifName, netns, cniArgs string, needNetns bool) {
		args := &skel.CmdArgs{ContainerID: containerID, IfName: ifName, Netns: netns, Args: cniArgs}
		if err := validateArgs(args, needNetns); err != nil {
			te := typedErr(t, err)
			require.Contains(t, []uint{types.ErrUnknownContainer, types.ErrInvalidEnvironmentVariables}, te.Code, "%v", err)
		} else {
			require.NotEmpty(t, containerID)
			require.NotEmpty(t, ifName)
			require.False(t, strings.ContainsAny(ifName, "/:") || ifName == "." || ifName == "..", "ifName %q", ifName)
			require.False(t, needNetns && netns == "")
		}
		a, err := parseK8sArgs(cniArgs)
		if err != nil {
			require.Nil(t, a)
			require.Equal(t, uint(types.ErrInvalidEnvironmentVariables), typedErr(t, err).Code)
			return
		}
		back := strings.Join([]string{
			"K8S_POD_NAMESPACE=" + string(a.K8S_POD_NAMESPACE), "K8S_POD_NAME=" + string(a.K8S_POD_NAME),
			"K8S_POD_INFRA_CONTAINER_ID=" + string(a.K8S_POD_INFRA_CONTAINER_ID), "K8S_POD_UID=" + string(a.K8S_POD_UID),
		}, ";")
		b, err := parseK8sArgs(back)
		require.NoError(t, err, "accepted CNI_ARGS written back parse again: %q", back)
		a.IgnoreUnknown = b.IgnoreUnknown // not written back
		require.Equal(t, a, b)
	})
}

func typedErr(t *testing.T, err error) *types.Error {
	t.Helper()
	var te *types.Error
	require.True(t, errors.As(err, &te), "want *types.Error, got %T: %v", err, err)
	return te
}
