package process

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
)

func owned(kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{
		{Kind: "Other", Name: "not-the-controller"},
		{Kind: kind, Name: name, Controller: &yes},
	}
}

func testPod(ns, name string, labels map[string]string, owners []metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(testUID), Labels: labels, OwnerReferences: owners},
		Status: corev1.PodStatus{
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", ContainerID: "containerd://0123456789ab", Image: "busybox"}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "side", ContainerID: "containerd://ffffffffffff", Image: "envoy"},
				{Name: "app", ContainerID: "containerd://" + testCID, Image: "docker.io/library/nginx:1.27", ImageID: "docker.io/library/nginx@sha256:abc"},
			},
		},
	}
}

func TestWorkload(t *testing.T) {
	hash := map[string]string{"app": "web", "pod-template-hash": "5d4b9c7f8"}
	for _, tc := range []struct {
		name        string
		pod         *corev1.Pod
		wName, kind string
	}{
		{"deployment", testPod("default", "web-5d4b9c7f8-x2x9z", hash, owned("ReplicaSet", "web-5d4b9c7f8")), "web", "Deployment"},
		{"bare replicaset", testPod("default", "rs-abcde", map[string]string{"app": "rs"}, owned("ReplicaSet", "rs")), "rs", "ReplicaSet"},
		{"replicaset hash mismatch", testPod("default", "rs-1", hash, owned("ReplicaSet", "rs-other")), "rs-other", "ReplicaSet"},
		{"statefulset", testPod("db", "pg-0", nil, owned("StatefulSet", "pg")), "pg", "StatefulSet"},
		{"daemonset", testPod("kube-system", "agent-x", nil, owned("DaemonSet", "agent")), "agent", "DaemonSet"},
		{"job", testPod("batch", "j-x", nil, owned("Job", "j")), "j", "Job"},
		{"no controller", testPod("default", "solo", nil, nil), "solo", "Pod"},
	} {
		name, kind := workload(tc.pod)
		assert.Equal(t, tc.wName, name, tc.name)
		assert.Equal(t, tc.kind, kind, tc.name)
	}
}

func TestAPIPodContainer(t *testing.T) {
	pod := testPod("default", "web-5d4b9c7f8-x2x9z", map[string]string{"app": "web", "pod-template-hash": "5d4b9c7f8"},
		owned("ReplicaSet", "web-5d4b9c7f8"))
	assert.Equal(t, &api.Pod{
		Namespace: "default", Name: "web-5d4b9c7f8-x2x9z", Labels: pod.Labels, Workload: "web", WorkloadKind: "Deployment",
		Container: &api.Container{ID: testCID, Name: "app", Image: &api.Image{
			ID: "docker.io/library/nginx@sha256:abc", Name: "docker.io/library/nginx:1.27",
		}},
	}, apiPod(pod, testCID))
	assert.Equal(t, "init", apiPod(pod, "0123456789ab").Container.Name, "init containers too")
	assert.Equal(t, &api.Container{ID: "abcdefabcdef"}, apiPod(pod, "abcdefabcdef").Container, "not in the status yet")
	assert.Nil(t, apiPod(pod, "").Container)
}
