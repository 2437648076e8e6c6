package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicenet/sluice/agent/atomicfile"
	"github.com/sluicenet/sluice/test/harness"
)

// Ports the campaign's servers listen on inside pods.
const (
	crrPort    = 8080 // tcpcrr.Serve: answers '?' with its name
	streamPort = 8081 // harness.ServeTCP: announces its name, then echoes
)

// writeManifest writes a file into the node's manifests directory
// atomically, so the agent's watcher never reads half a file.
func writeManifest(node *harness.Node, name, yaml string) error {
	return atomicfile.WriteFile(filepath.Join(node.ManifestsDir, name), []byte(yaml), 0o600)
}

// removeManifest removes a file of the manifests directory.
func removeManifest(node *harness.Node, name string) error {
	return os.Remove(filepath.Join(node.ManifestsDir, name))
}

// namespaceYAML is a Namespace labelled team=<name>.
func namespaceYAML(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {team: %s}\n---\n", name, name)
}

// podYAML is a Pod with the given labels whose container names the ports
// the campaign's services target.
func podYAML(namespace, name string, labels map[string]string) string {
	var ls []string
	for k, v := range labels {
		ls = append(ls, fmt.Sprintf("%s: %s", k, v))
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {%s}
spec:
  containers:
  - name: app
    image: none
    ports:
    - {name: crr, containerPort: %d}
    - {name: stream, containerPort: %d}
---
`, name, namespace, strings.Join(ls, ", "), crrPort, streamPort)
}

// serviceYAML is a ClusterIP Service selecting app=<app> with port 80 to
// the crr port and port 81 to the stream port (port+1 and port+2 when
// shifted, so that a churned Service changes its frontends).
func serviceYAML(namespace, name, clusterIP, app string, shift int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  clusterIP: %s
  selector: {app: %s}
  ports:
  - {name: crr, port: %d, targetPort: crr, protocol: TCP}
  - {name: stream, port: %d, targetPort: stream, protocol: TCP}
---
`, name, namespace, clusterIP, app, 80+shift, 81+shift)
}

// policyYAML is a SluiceNetworkPolicy selecting app=<app>: ingress from
// app=<from> on a port that depends on gen, and an egress deny to a /24 of
// another node's PodCIDR (a CIDR identity) that also depends on gen; egress
// stays open otherwise (enableDefaultDeny), so it never stops a pod from
// reaching the campaign's servers.
func policyYAML(namespace, name, app, from string, gen int) string {
	return fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: %s, namespace: %s}
spec:
  endpointSelector: {matchLabels: {app: %s}}
  enableDefaultDeny: {egress: false}
  ingress:
  - fromEndpoints: [{matchLabels: {app: %s}}]
    toPorts: [{ports: [{port: "%d", protocol: TCP}]}]
  egressDeny:
  - toCIDR: [10.244.%d.0/24]
---
`, name, namespace, app, from, 9000+gen%7, 100+gen%50)
}
