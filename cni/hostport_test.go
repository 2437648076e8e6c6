package cni

import (
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestRuntimePortMappings(t *testing.T) {
	const base = `{"cniVersion":"1.0.0","name":"n","type":"sluice-cni","ipam":{"type":"host-local"},"runtimeConfig":{"portMappings":%s}}`
	parse := func(pms string) ([]api.PortMapping, error) {
		conf, err := ParseConfig([]byte(fmt.Sprintf(base, pms)))
		require.NoError(t, err, "DEL and GC must parse any runtimeConfig")
		return conf.portMappings()
	}
	got, err := parse(`[{"hostPort":54323,"containerPort":8080,"protocol":"tcp","hostIP":"127.0.0.1"},{"hostPort":80,"containerPort":80,"protocol":"udp"}]`)
	require.NoError(t, err)
	assert.Equal(t, []api.PortMapping{
		{HostPort: 54323, ContainerPort: 8080, Protocol: "tcp", HostIP: "127.0.0.1"},
		{HostPort: 80, ContainerPort: 80, Protocol: "udp"},
	}, got)
	for _, bad := range []string{
		`[{"hostPort":0,"containerPort":80}]`,
		`[{"hostPort":80,"containerPort":80,"protocol":"sctp"}]`,
		`[{"hostPort":80,"containerPort":80,"hostIP":"fd00::1"}]`,
		`[{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":81,"hostIP":"0.0.0.0"}]`,
	} {
		_, err := parse(bad)
		te := cniErr(t, err)
		assert.Equal(t, uint(types.ErrInvalidNetworkConfig), te.Code, bad)
		assert.Contains(t, te.Msg, "runtimeConfig: portMappings", bad)
	}
}

func TestSamePortMappings(t *testing.T) {
	a := []api.PortMapping{{HostPort: 80, ContainerPort: 8080, Protocol: "TCP", HostIP: "0.0.0.0"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}}
	stored := []api.PortMapping{{HostPort: 53, ContainerPort: 53, Protocol: "udp"}, {HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}
	assert.True(t, samePortMappings(a, stored), "normal form, any order")
	assert.True(t, samePortMappings(nil, []api.PortMapping{}))
	assert.False(t, samePortMappings(a, stored[:1]))
	assert.False(t, samePortMappings(a, []api.PortMapping{stored[0], {HostPort: 80, ContainerPort: 8081, Protocol: "tcp"}}))
	assert.False(t, samePortMappings(a, []api.PortMapping{stored[0], {HostPort: 80, ContainerPort: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}}))
}
