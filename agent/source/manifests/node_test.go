package manifests

import (
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestParseFileNode(t *testing.T) {
	objs, err := parseFile("nodes.yaml", []byte(`apiVersion: v1
kind: Node
metadata: {name: node-b, namespace: stray, labels: {zone: b}}
spec: {podCIDR: 10.244.2.0/24, podCIDRs: [10.244.2.0/24]}
status:
  addresses:
  - {type: InternalIP, address: 172.31.250.2}
  - {type: Hostname, address: node-b}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDR: 10.244.1.0/24}
`))
	require.NoError(t, err)
	require.Len(t, objs, 2)
	n := objs[0].node
	require.NotNil(t, n)
	require.Equal(t, "node-b", n.Name)
	require.Equal(t, "", n.Namespace, "nodes are cluster-scoped")
	require.Equal(t, []string{"10.244.2.0/24"}, n.Spec.PodCIDRs)
	require.Equal(t, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "172.31.250.2"}, n.Status.Addresses[0])
	require.Equal(t, objectKey{kind: "Node", name: "node-b"}, objs[0].key)

	s := merge(map[string]*fileState{"nodes.yaml": {objects: objs}}, logrus.New())
	require.Len(t, s.Nodes, 2)
	require.Equal(t, "node-a", s.Nodes[0].Name, "sorted by name")
	require.Empty(t, s.Others, "nodes are decoded, not raw")
	c := s.DeepCopy()
	c.Nodes[0].Name = "changed"
	require.Equal(t, "node-a", s.Nodes[0].Name, "deep copy")
}

func TestParseFileNodeStrict(t *testing.T) {
	_, err := parseFile("bad.yaml", []byte("apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCidr: 10.0.0.0/24}\n"))
	require.ErrorContains(t, err, "podCidr")
	_, err = parseFile("bad.yaml", []byte("apiVersion: v1beta1\nkind: Node\nmetadata: {name: a}\n"))
	require.ErrorContains(t, err, "unsupported apiVersion")
}
