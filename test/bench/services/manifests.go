package services

import (
	"fmt"
	"io"
	"strings"
)

// WriteManifests writes svcs as multi-document Kubernetes YAML: for each, a
// selector-less ClusterIP (or NodePort) Service and one EndpointSlice (label
// kubernetes.io/service-name) with its backends ready.
func WriteManifests(w io.Writer, svcs []Service) error {
	var b strings.Builder
	for _, s := range svcs {
		b.Reset()
		typ, proto := "ClusterIP", strings.ToUpper(s.Proto())
		if s.NodePort != 0 {
			typ = "NodePort"
		}
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  type: %[6]s
  clusterIP: %[3]s
  clusterIPs:
  - %[3]s
  ports:
  - name: %[4]s
    protocol: %[7]s
    port: %[5]d
`, s.Name, s.Namespace, s.VIP, s.PortName, s.Port, typ, proto)
		if s.NodePort != 0 {
			fmt.Fprintf(&b, "    nodePort: %d\n", s.NodePort)
		}
		if len(s.Backends) > 0 {
			fmt.Fprintf(&b, "    targetPort: %d\n", s.Backends[0].Port())
		}
		fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-1
  namespace: %[2]s
  labels:
    kubernetes.io/service-name: %[1]s
addressType: IPv4
ports:
- name: %[3]s
  protocol: %[4]s
`, s.Name, s.Namespace, s.PortName, proto)
		if len(s.Backends) > 0 {
			fmt.Fprintf(&b, "  port: %d\n", s.Backends[0].Port())
		}
		if len(s.Backends) == 0 {
			b.WriteString("endpoints: []\n")
		} else {
			b.WriteString("endpoints:\n")
		}
		for _, be := range s.Backends {
			fmt.Fprintf(&b, "- addresses:\n  - %s\n  conditions:\n    ready: true\n", be.Addr())
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write manifest of %s: %w", s.ID(), err)
		}
	}
	return nil
}
