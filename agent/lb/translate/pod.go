package translate

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// PodFromObject converts a Kubernetes Pod into the translator's Pod. The IP
// is status.podIPs' IPv4 address (or status.podIP), invalid if none. Ready
// is the Ready condition; a pod without any condition (a hand-written
// standalone manifest) counts as ready unless it is being deleted. Ports are
// the named container ports of all containers.
func PodFromObject(p *corev1.Pod) Pod {
	out := Pod{
		Namespace: p.Namespace,
		Name:      p.Name,
		Labels:    p.Labels,
		NodeName:  p.Spec.NodeName,
		Ready:     p.DeletionTimestamp == nil && len(p.Status.Conditions) == 0,
	}
	ips := []string{p.Status.PodIP}
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap().Is4() {
			out.IP = a.Unmap()
			break
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Ready = c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" {
				continue
			}
			if out.Ports == nil {
				out.Ports = make(map[string]int32)
			}
			out.Ports[cp.Name] = cp.ContainerPort
		}
	}
	return out
}
