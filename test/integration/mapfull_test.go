package integration

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// metricValue returns the value of one series (name with its labels, as
// /metrics prints it) and whether it is there.
func metricValue(metrics, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// readyz returns the agent's readiness answer (status line and body), from
// inside the node.
func readyz(t *testing.T, node *harness.Node) string {
	t.Helper()
	conn, err := harness.Dial(node.NS, "tcp4", "", "127.0.0.1:9879", time.Second)
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(conn, "GET /readyz HTTP/1.0\r\nHost: agent\r\n\r\n")
	require.NoError(t, err)
	b, err := io.ReadAll(conn)
	require.NoError(t, err)
	return string(b)
}

// With a services map too small for the desired services, the ones that
// do not fit are listed with the error, the programmed count and the CLI
// say what the kernel holds, the map-full counter names the map, readiness
// fails; when room comes back, the rest is programmed.
func TestPrivilegedMapFullServices(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	// A service with one backend takes two entries (master and slot 1):
	// two services fit in four, the third does not.
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--map-max-entries", "sluice_lb4_services_v1=4"}})
	var manifest strings.Builder
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("full-%d", i)
		manifest.WriteString(plainServiceYAML(name, fmt.Sprintf("10.96.7.%d", i), "") + "---\n" +
			sliceYAML(name, [5]string{fmt.Sprintf("10.244.9.%d", i), node.Name, "true", "true", "false"}) + "---\n")
	}
	writeManifest(t, node, "full.yaml", manifest.String())

	var svcs []api.Service
	require.Eventually(t, func() bool {
		var err error
		svcs, err = node.Client().ListServices(context.Background())
		return err == nil && len(svcs) == 3 && programmedCount(svcs) == 2
	}, 10*time.Second, 50*time.Millisecond, "three services, two programmed: %+v", svcs)
	var failed api.Service
	for _, s := range svcs {
		if s.Error != "" {
			failed = s
		}
	}
	assert.Equal(t, "10.96.7.3:80", failed.Frontend, "the last one did not fit")
	assert.Contains(t, failed.Error, "sluice_lb4_services_v1: bpf map is full")

	// What the list calls programmed is what the kernel holds.
	lbm, err := node.Client().LBMaps(context.Background())
	require.NoError(t, err)
	var inKernel, listed []string
	for _, s := range lbm.Services {
		inKernel = append(inKernel, s.Frontend)
	}
	for _, s := range svcs {
		if s.Error == "" {
			listed = append(listed, s.Frontend)
		}
	}
	assert.ElementsMatch(t, listed, inKernel)

	metrics := scrapeMetrics(t, node)
	v, ok := metricValue(metrics, "sluice_services_programmed")
	assert.True(t, ok && v == 2, "sluice_services_programmed 2:\n%s", metrics)
	v, ok = metricValue(metrics, `sluice_map_full_total{map="sluice_lb4_services_v1"}`)
	assert.True(t, ok && v >= 1, "sluice_map_full_total names the services map:\n%s", metrics)

	out, err := node.NS.Command(harness.Bin(t, "sluice"), "--socket", node.Socket(), "service", "list").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "NOT-PROGRAMMED default/full-3:http 10.96.7.3:80/TCP: ")
	assert.Contains(t, string(out), "bpf map is full")
	assert.Contains(t, readyz(t, node), "1 of 3 service frontends not programmed")

	// Room comes back: the third is programmed.
	writeManifest(t, node, "full.yaml", strings.SplitN(manifest.String(), "---\n", 3)[2])
	require.Eventually(t, func() bool {
		var err error
		svcs, err = node.Client().ListServices(context.Background())
		return err == nil && len(svcs) == 2 && programmedCount(svcs) == 2
	}, 10*time.Second, 50*time.Millisecond, "the rest programmed once room came back: %+v", svcs)
	assert.Contains(t, readyz(t, node), "200 OK")
}

func programmedCount(svcs []api.Service) int {
	n := 0
	for _, s := range svcs {
		if s.Error == "" {
			n++
		}
	}
	return n
}

// A full endpoint map fails the CNI ADD cleanly (nothing left of the pod)
// and is counted under the map's name.
func TestPrivilegedMapFullEndpoints(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--map-max-entries", "sluice_endpoints_v1=1"}})
	a := node.AddPod(t, "a")
	_, err := node.TryAddPod(t, "b")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "full")
	assert.Equal(t, []string{a.IP.String()}, ipamAllocations(t, node), "the failed ADD released its IP")
	assert.Equal(t, []string{a.HostIfName}, linkPins(t, node), "the failed ADD left no link")
	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Len(t, eps, 1)
	v, ok := metricValue(scrapeMetrics(t, node), `sluice_map_full_total{map="sluice_endpoints_v1"}`)
	assert.True(t, ok && v >= 1, "sluice_map_full_total names the endpoint map")
}
