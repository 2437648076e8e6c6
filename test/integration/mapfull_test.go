package integration

import (
	"context"
	"fmt"
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
	return httpGetIn(t, node, "127.0.0.1:9879", "/readyz")
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
	svcYAML := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("full-%d", i)
		svcYAML[fmt.Sprintf("10.96.7.%d:80", i)] = plainServiceYAML(name, fmt.Sprintf("10.96.7.%d", i), "") + "---\n" +
			sliceYAML(name, [5]string{fmt.Sprintf("10.244.9.%d", i), node.Name, "true", "true", "false"}) + "---\n"
	}
	manifest := func(skip string) string {
		var b strings.Builder
		for fe, y := range svcYAML {
			if fe != skip {
				b.WriteString(y)
			}
		}
		return b.String()
	}
	writeManifest(t, node, "full.yaml", manifest(""))

	var svcs []api.Service
	require.Eventually(t, func() bool {
		var err error
		svcs, err = node.Client().ListServices(context.Background())
		return err == nil && len(svcs) == 3 && programmedCount(svcs) == 2
	}, 10*time.Second, 50*time.Millisecond, "three services, two programmed: %+v", svcs)
	var failed, fitted api.Service
	for _, s := range svcs {
		if s.Error != "" {
			failed = s
		} else {
			fitted = s
		}
	}
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
	assert.Contains(t, string(out), "NOT-PROGRAMMED "+failed.Name+" "+failed.Frontend+"/TCP: ")
	assert.Contains(t, string(out), "bpf map is full")
	assert.Contains(t, readyz(t, node), "1 of 3 service frontends not programmed")

	// Room comes back (a programmed service goes): the other is programmed.
	writeManifest(t, node, "full.yaml", manifest(fitted.Frontend))
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
	assert.Contains(t, err.Error(), "update sluice_endpoints_v1: bpf map is full")
	assert.Equal(t, []string{a.IP.String()}, ipamAllocations(t, node), "the failed ADD released its IP")
	assert.Equal(t, []string{a.HostIfName}, linkPins(t, node), "the failed ADD left no link")
	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Len(t, eps, 1)
	v, ok := metricValue(scrapeMetrics(t, node), `sluice_map_full_total{map="sluice_endpoints_v1"}`)
	assert.True(t, ok && v >= 1, "sluice_map_full_total names the endpoint map")
}

// A policy map too small for a pod's policy: the CNI ADD, which answers
// only once the policy is in the kernel, fails closed with the map named,
// and the counter names the map.
func TestPrivilegedMapFullPolicy(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--map-max-entries", "sluice_policy_v1=2"}})
	writeManifest(t, node, "web.yaml", `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {containers: [{name: app, image: none}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ports, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: 81}, {port: 82}, {port: 83}, {port: 84}, {port: 85}]
`)
	require.Eventually(t, func() bool {
		st, err := node.Client().PolicyStatus(context.Background())
		return err == nil && len(st) == 1 && st[0].Accepted
	}, 10*time.Second, 20*time.Millisecond)
	_, err := node.TryAddPod(t, "web")
	require.Error(t, err, "ADD fails closed: the pod's policy does not fit")
	assert.Contains(t, err.Error(), "update sluice_policy_v1: bpf map is full")
	v, ok := metricValue(scrapeMetrics(t, node), `sluice_map_full_total{map="sluice_policy_v1"}`)
	assert.True(t, ok && v >= 1, "sluice_map_full_total names the policy map")
	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Empty(t, eps, "no endpoint left of the failed ADD")
}

// The IP cache (an LPM trie: ENOSPC when full) too small for the pods: the
// ADD that does not fit fails closed naming the map, and the counter names
// it.
func TestPrivilegedMapFullIPCache(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--map-max-entries", "sluice_ipcache4_v1=4"}})
	var err error
	added := 0
	for i := 0; i < 8 && err == nil; i++ {
		if _, err = node.TryAddPod(t, fmt.Sprintf("p-%d", i)); err == nil {
			added++
		}
	}
	require.Error(t, err, "an ADD finds the IP cache full")
	assert.Contains(t, err.Error(), "update sluice_ipcache4_v1: bpf map is full")
	v, ok := metricValue(scrapeMetrics(t, node), `sluice_map_full_total{map="sluice_ipcache4_v1"}`)
	assert.True(t, ok && v >= 1, "sluice_map_full_total names the IP cache")
	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Len(t, eps, added, "no endpoint left of the failed ADD")
}
