package harness

import "fmt"

// AddPodIn is AddPod for a pod in a Kubernetes namespace (the CNI args carry
// K8S_POD_NAMESPACE, so the agent joins the endpoint with the Pod object and
// its namespace's labels).
func (n *Node) AddPodIn(tb T, namespace, name string) *Pod {
	tb.Helper()
	p, err := n.TryAddPodIn(tb, namespace, name)
	if err != nil {
		tb.Fatalf("CNI ADD %s/%s: %v", namespace, name, err)
	}
	return p
}

// FullName returns "<namespace>/<name>".
func (p *Pod) FullName() string { return fmt.Sprintf("%s/%s", p.Namespace, p.Name) }
