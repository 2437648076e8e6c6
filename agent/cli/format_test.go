package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func endpoints() []api.Endpoint {
	return []api.Endpoint{
		{
			ID: 1, ContainerID: "abc", IfName: "eth0", PodNamespace: "default", PodName: "web-0",
			IPv4: "10.0.0.5", HostIfName: "lxc12345", HostIfIndex: 17,
			Counters: []api.Counter{
				{Direction: "egress", Reason: "forward-stack", Packets: 10, Bytes: 1000},
				{Direction: "ingress", Reason: "forward-local", Packets: 5, Bytes: 500},
				{Direction: "egress", Reason: "drop-spoofed-source-ip", Drop: true, Packets: 2, Bytes: 120},
			},
		},
		{ID: 12, ContainerID: "def", IfName: "eth0", IPv4: "10.0.0.6", HostIfName: "lxc9", HostIfIndex: 3},
	}
}

func TestPodName(t *testing.T) {
	tests := []struct {
		ns, name, want string
	}{
		{"default", "web", "default/web"},
		{"", "web", "web"},
		{"default", "", "-"},
		{"", "", "-"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, PodName(api.Endpoint{PodNamespace: tt.ns, PodName: tt.name}))
	}
}

func TestWriteEndpointTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteEndpointTable(&buf, endpoints()))
	want := "" +
		"ID  POD            IPV4      HOST-IF   IFINDEX  FORWARDED  DROPPED\n" +
		"1   default/web-0  10.0.0.5  lxc12345  17       15         2\n" +
		"12  -              10.0.0.6  lxc9      3        0          0\n"
	assert.Equal(t, want, buf.String())

	buf.Reset()
	require.NoError(t, WriteEndpointTable(&buf, nil))
	assert.Equal(t, "ID  POD  IPV4  HOST-IF  IFINDEX  FORWARDED  DROPPED\n", buf.String())
}

func TestWriteEndpoint(t *testing.T) {
	ep := endpoints()[0]
	ep.MAC, ep.HostMAC, ep.NetNS = "02:00:00:00:00:05", "02:00:00:00:01:07", "/var/run/netns/web"
	var buf bytes.Buffer
	require.NoError(t, WriteEndpoint(&buf, ep))
	out := buf.String()
	for _, line := range []string{
		"ID:              1",
		"Pod:             default/web-0",
		"Host interface:  lxc12345 (ifindex 17)",
		"Created:         -",
		"DIRECTION  REASON                  VERDICT    PACKETS  BYTES",
		"egress     forward-stack           forwarded  10       1000",
		"egress     drop-spoofed-source-ip  dropped    2        120",
	} {
		assert.Contains(t, out, line+"\n")
	}

	ep.Counters = nil
	ep.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	buf.Reset()
	require.NoError(t, WriteEndpoint(&buf, ep))
	assert.True(t, strings.HasSuffix(buf.String(), "\nNo counters yet.\n"))
	assert.NotContains(t, buf.String(), "Created:         -")
}

func TestWriteHealth(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteHealth(&buf, api.Health{Status: "ok", BPFRoot: "/sys/fs/bpf/sluice", Endpoints: 3}))
	assert.Equal(t, "Status:          ok\nBPF root:        /sys/fs/bpf/sluice\nEndpoints:       3\nProcess sensor:  off\n", buf.String())

	buf.Reset()
	h := api.Health{Status: "ok", BPFRoot: "/b", Endpoints: 0, Tracing: &api.TracingStatus{
		Hooks: []string{"tp_btf/sched_process_exec", "tp_btf/sched_process_exit"}, Lost: 2}}
	require.NoError(t, WriteHealth(&buf, h))
	assert.Contains(t, buf.String(), "Process sensor:  tp_btf/sched_process_exec, tp_btf/sched_process_exit (events lost: 2)\n")
}

func TestRenderJSON(t *testing.T) {
	var buf bytes.Buffer
	eps := endpoints()
	require.NoError(t, render(&buf, OutputJSON, eps, nil))
	var back []api.Endpoint
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	assert.Equal(t, eps, back)
	require.ErrorContains(t, render(&buf, "yaml", eps, nil), `unknown output format "yaml"`)
}
