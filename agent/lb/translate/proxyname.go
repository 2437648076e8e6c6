package translate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// LabelServiceProxyName is the Service label naming the service proxy that
// handles it (kube-proxy's and Cilium's service.kubernetes.io/service-proxy-name).
// It lets several service proxies share a cluster.
const LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// notOurs returns why svc is left to another service proxy, or "" when an
// agent named proxyName handles it. With no name the agent handles only
// Services without the label (kube-proxy: a Service carrying it, whatever
// its value, is another proxy's); with a name, only Services whose label
// equals it (Cilium's --k8s-service-proxy-name). A Service labelled
// service.kubernetes.io/headless is never handled, as in kube-proxy.
func notOurs(svc *corev1.Service, proxyName string) string {
	if _, ok := svc.Labels[corev1.IsHeadlessService]; ok {
		return fmt.Sprintf("labelled %s, not load-balanced", corev1.IsHeadlessService)
	}
	label, labelled := svc.Labels[LabelServiceProxyName]
	switch {
	case labelled && label != proxyName:
		return fmt.Sprintf("service-proxy-name %q is not this agent's (%q)", label, proxyName)
	case labelled && proxyName == "":
		// An empty label value still names a proxy other than the default one.
		return fmt.Sprintf("service-proxy-name %q is set; this agent handles only unlabelled services", label)
	case !labelled && proxyName != "":
		return fmt.Sprintf("no service-proxy-name label; this agent handles only %q", proxyName)
	}
	return ""
}
