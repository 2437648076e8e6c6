package k8s

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podRetry is the pause between two GETs of a pod LookupPod does not find.
const podRetry = 100 * time.Millisecond

// LookupPod returns the Pod namespace/name and its Namespace, from the
// informer caches when they hold them, else from the API server (GET). It
// retries until it has both or ctx ends: the kubelet runs CNI ADD for a pod
// the informers may not have seen yet (its watch event, or the Pod object
// itself, can come a moment later), and a GET can fail for a moment too.
// The objects returned are the caller's.
func (s *Source) LookupPod(ctx context.Context, namespace, name string) (*corev1.Pod, *corev1.Namespace, error) {
	for {
		pod, ns, err := s.lookupPodOnce(ctx, namespace, name)
		if err == nil {
			return pod, ns, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("look up pod %s/%s: %w (last error: %w)", namespace, name, context.Cause(ctx), err)
		case <-time.After(podRetry):
		}
	}
}

func (s *Source) lookupPodOnce(ctx context.Context, namespace, name string) (*corev1.Pod, *corev1.Namespace, error) {
	pod, err := s.pods.Pods(namespace).Get(name)
	if err == nil {
		pod = pod.DeepCopy()
	} else if pod, err = s.cfg.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
		return nil, nil, fmt.Errorf("get pod: %w", err)
	}
	ns, err := s.namespaces.Get(namespace)
	if err == nil {
		ns = ns.DeepCopy()
	} else if ns, err = s.cfg.Client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); err != nil {
		return nil, nil, fmt.Errorf("get namespace: %w", err)
	}
	return pod, ns, nil
}
