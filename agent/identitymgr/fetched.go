package identitymgr

import (
	"cmp"
	"maps"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
)

// AddPod makes the manager use pod (and its namespace ns, when not nil)
// for the pod's local endpoints until the state source has it: the agent
// looks up, at CNI ADD, a pod its informers have not seen yet, so that the
// endpoint's identity carries the pod's labels when ADD returns. The state
// source's objects win once they hold the pod; the entry goes when no
// local endpoint is the pod's any more. It schedules a sync.
func (m *Manager) AddPod(pod *corev1.Pod, ns *corev1.Namespace) {
	m.mu.Lock()
	m.fetched.add(pod, ns)
	m.mu.Unlock()
	m.Changed()
}

// fetchedPods are the pods and namespaces AddPod was given, by
// namespace/name and by name.
type fetchedPods struct {
	pods map[string]*corev1.Pod
	nss  map[string]*corev1.Namespace
}

func (f *fetchedPods) add(pod *corev1.Pod, ns *corev1.Namespace) {
	if f.pods == nil {
		f.pods, f.nss = map[string]*corev1.Pod{}, map[string]*corev1.Namespace{}
	}
	f.pods[pod.Namespace+"/"+pod.Name] = pod
	if ns != nil {
		f.nss[ns.Name] = ns
	}
}

func (f *fetchedPods) copy() fetchedPods {
	return fetchedPods{pods: maps.Clone(f.pods), nss: maps.Clone(f.nss)}
}

// caughtUp drops what the state source's objects now hold.
func (f *fetchedPods) caughtUp(o Objects) {
	for _, p := range o.Pods {
		delete(f.pods, p.Namespace+"/"+p.Name)
	}
	for _, ns := range o.Namespaces {
		delete(f.nss, ns.Name)
	}
}

// prune drops the pods of seen (a copy taken before the endpoints were
// listed) that no local endpoint is, unless added again since, and the
// namespaces no pod left needs.
func (f *fetchedPods) prune(seen fetchedPods, local map[string]bool) {
	for k, p := range seen.pods {
		if !local[k] && f.pods[k] == p {
			delete(f.pods, k)
		}
	}
	need := map[string]bool{}
	for _, p := range f.pods {
		need[p.Namespace] = true
	}
	for k := range f.nss {
		if !need[k] {
			delete(f.nss, k)
		}
	}
}

// endpointPods returns the namespace/name of every endpoint's pod.
func endpointPods(eps []api.Endpoint) map[string]bool {
	out := make(map[string]bool, len(eps))
	for _, ep := range eps {
		out[cmp.Or(ep.PodNamespace, "default")+"/"+ep.PodName] = true
	}
	return out
}

// merge returns o with the pods and namespaces o does not hold added.
func (f fetchedPods) merge(o Objects) Objects {
	if len(f.pods) == 0 && len(f.nss) == 0 {
		return o
	}
	havePod, haveNS := map[string]bool{}, map[string]bool{}
	for _, p := range o.Pods {
		havePod[p.Namespace+"/"+p.Name] = true
	}
	for _, ns := range o.Namespaces {
		haveNS[ns.Name] = true
	}
	out := Objects{Pods: append([]*corev1.Pod(nil), o.Pods...), Namespaces: append([]*corev1.Namespace(nil), o.Namespaces...)}
	for k, p := range f.pods {
		if !havePod[k] {
			out.Pods = append(out.Pods, p)
		}
	}
	for k, ns := range f.nss {
		if !haveNS[k] {
			out.Namespaces = append(out.Namespaces, ns)
		}
	}
	return out
}
