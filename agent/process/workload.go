package process

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
)

// apiPod describes pod for an event, with the container whose id is cid
// (no container when cid is empty).
func apiPod(pod *corev1.Pod, cid string) *api.Pod {
	p := &api.Pod{Namespace: pod.Namespace, Name: pod.Name, Labels: pod.Labels}
	p.Workload, p.WorkloadKind = workload(pod)
	if cid != "" {
		p.Container = container(pod, cid)
	}
	return p
}

// workload returns the workload that owns pod: its controller, except that
// a ReplicaSet made by a Deployment (named <deployment>-<pod-template-hash>)
// gives the Deployment. A pod without a controller is its own workload.
func workload(pod *corev1.Pod) (name, kind string) {
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return pod.Name, "Pod"
	}
	if owner.Kind == "ReplicaSet" {
		hash := pod.Labels["pod-template-hash"]
		if d, ok := strings.CutSuffix(owner.Name, "-"+hash); ok && hash != "" {
			return d, "Deployment"
		}
	}
	return owner.Name, owner.Kind
}

// container returns the container of pod with id cid, named from the pod's
// status when it lists it (regular, init and ephemeral containers).
func container(pod *corev1.Pod, cid string) *api.Container {
	for _, list := range [][]corev1.ContainerStatus{
		pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses,
	} {
		for _, st := range list {
			if trimRuntime(st.ContainerID) != cid {
				continue
			}
			return &api.Container{ID: cid, Name: st.Name, Image: &api.Image{ID: st.ImageID, Name: st.Image}}
		}
	}
	return &api.Container{ID: cid}
}

// trimRuntime drops the runtime prefix of a container id ("containerd://").
func trimRuntime(id string) string {
	if _, after, ok := strings.Cut(id, "://"); ok {
		return after
	}
	return id
}
