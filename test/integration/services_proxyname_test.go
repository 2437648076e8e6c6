package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// proxyServiceYAML is a TCP Service name at clusterIP selecting the app=web
// pods, labelled service.kubernetes.io/service-proxy-name=proxyName unless
// proxyName is empty.
func proxyServiceYAML(name, clusterIP, proxyName string) string {
	labels := ""
	if proxyName != "" {
		labels = fmt.Sprintf("  labels:\n    service.kubernetes.io/service-proxy-name: %s\n", proxyName)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
%sspec:
  clusterIP: %s
  selector:
    app: web
  ports:
  - name: http
    port: %d
    targetPort: http
    protocol: TCP
---
`, name, labels, clusterIP, svcPort)
}

// proxyNameNode starts a node whose agent runs with args, a client pod and
// two app=web backends announcing their names.
func proxyNameNode(t *testing.T, args ...string) (*harness.Node, *harness.Pod) {
	t.Helper()
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: args})
	client := node.AddPod(t, "client")
	var pods strings.Builder
	for _, name := range []string{"web-1", "web-2"} {
		b := node.AddPod(t, name)
		harness.ServeTCP(t, b.NS, b.Addr(podPort), b.Name)
		pods.WriteString(podYAML(b, "web"))
	}
	writeManifest(t, node, "pods.yaml", pods.String())
	return node, client
}

// programmed reports whether the agent has a TCP frontend addr.
func programmed(t *testing.T, node *harness.Node, addr string) bool {
	t.Helper()
	ok, err := hasFrontend(node, addr)
	require.NoError(t, err)
	return ok
}

func hasFrontend(node *harness.Node, addr string) (bool, error) {
	svcs, err := node.Client().ListServices(context.Background())
	if err != nil {
		return false, err
	}
	for _, s := range svcs {
		if s.Frontend == addr && s.Protocol == "TCP" {
			return true, nil
		}
	}
	return false, nil
}

// requireBackendsAnswer requires replies from addr to name both backends.
func requireBackendsAnswer(t *testing.T, client *harness.Pod, addr string) {
	t.Helper()
	seen := askMany(t, client.NS, addr, 20)
	assert.Equal(t, []string{"web-1", "web-2"}, slices.Sorted(maps.Keys(seen)), "replies from %s", addr)
}

// requireNoAnswer requires a connection to addr to get no reply at all (the
// pod's packets to an address no proxy handles go nowhere).
func requireNoAnswer(t *testing.T, client *harness.Pod, addr string) {
	t.Helper()
	got, err := harness.Ask(client.NS, addr, time.Second)
	require.Error(t, err, "%s is not this agent's: no reply expected, got %q", addr, got)
}

// An agent without --service-proxy-name (kube-proxy's behaviour) leaves a
// Service labelled with another proxy's name alone, serves its unlabelled
// twin, programs the Service once the label is removed and unprograms it
// when the label comes back.
func TestPrivilegedServiceProxyNameDefault(t *testing.T) {
	node, client := proxyNameNode(t)
	web := fmt.Sprintf("%s:%d", vip, svcPort)
	other := fmt.Sprintf("10.96.0.20:%d", svcPort)

	// One file, the labelled Service first: once web is programmed, the
	// agent has seen (and skipped) other too.
	writeManifest(t, node, "svc.yaml", proxyServiceYAML("other", "10.96.0.20", "other-proxy")+proxyServiceYAML("web", vip, ""))
	waitBackends(t, node, web, 2)
	require.False(t, programmed(t, node, other), "a Service labelled service-proxy-name=other-proxy is not in the LB")
	requireBackendsAnswer(t, client, web)
	requireNoAnswer(t, client, other)

	// The label goes: the Service is ours.
	writeManifest(t, node, "svc.yaml", proxyServiceYAML("other", "10.96.0.20", "")+proxyServiceYAML("web", vip, ""))
	waitBackends(t, node, other, 2)
	requireBackendsAnswer(t, client, other)

	// The label comes back: its entries are removed, the twin is untouched.
	writeManifest(t, node, "svc.yaml", proxyServiceYAML("other", "10.96.0.20", "other-proxy")+proxyServiceYAML("web", vip, ""))
	require.Eventually(t, func() bool {
		ok, err := hasFrontend(node, other)
		return err == nil && !ok
	}, 10*time.Second, 50*time.Millisecond,
		"relabelled for another proxy: %s removed from the LB", other)
	requireNoAnswer(t, client, other)
	requireBackendsAnswer(t, client, web)
}

// An agent run with --service-proxy-name sluice handles only the Services
// labelled service-proxy-name=sluice.
func TestPrivilegedServiceProxyNameSet(t *testing.T) {
	node, client := proxyNameNode(t, "--service-proxy-name", "sluice")
	mine := fmt.Sprintf("10.96.0.20:%d", svcPort)
	unlabelled := fmt.Sprintf("%s:%d", vip, svcPort)
	other := fmt.Sprintf("10.96.0.30:%d", svcPort)

	writeManifest(t, node, "svc.yaml", proxyServiceYAML("other", "10.96.0.30", "other-proxy")+
		proxyServiceYAML("unlabelled", vip, "")+proxyServiceYAML("z-mine", "10.96.0.20", "sluice"))
	waitBackends(t, node, mine, 2)
	assert.False(t, programmed(t, node, unlabelled), "an unlabelled Service is not this agent's")
	assert.False(t, programmed(t, node, other), "another proxy's Service is not this agent's")
	requireBackendsAnswer(t, client, mine)
	requireNoAnswer(t, client, unlabelled)
	requireNoAnswer(t, client, other)
}
