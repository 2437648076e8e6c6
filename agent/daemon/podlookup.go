package daemon

import (
	"cmp"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
)

// lookupPod returns, in Kubernetes mode, the Pod of an endpoint the CNI
// is adding, and its Namespace: from the informer caches, else from the API
// server, retried for at most PodFetchTimeout (k8s.Source.LookupPod). An
// error fails the ADD before anything is stored (fail closed): without the
// pod's labels its identity would miss every label-selected policy when ADD
// returns; the kubelet retries the ADD.
//
// A standalone agent's pods are the manifests directory's: it reads the
// directory now (manifests.Watcher.Flush), so that a Pod manifest written
// before the ADD is applied when ADD returns, and returns nil. An endpoint
// without a Pod manifest is a pod with its namespace's labels only, as
// before: there is no API server to ask, and the embedded uses (demo,
// tests, plain hosts) add pods without manifests on purpose.
func (d *Daemon) lookupPod(ep api.Endpoint) (*corev1.Pod, *corev1.Namespace, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.PodFetchTimeout)
	defer cancel()
	if d.manifests != nil {
		if err := d.manifests.Flush(ctx); err != nil {
			return nil, nil, fmt.Errorf("endpoint %s not added: %w", ep.Key(), err)
		}
		return nil, nil, nil
	}
	if d.k8s == nil {
		return nil, nil, nil
	}
	if ep.PodName == "" {
		return nil, nil, fmt.Errorf("endpoint %s names no pod (CNI_ARGS K8S_POD_NAME): its labels cannot be known", ep.Key())
	}
	pod, ns, err := d.k8s.LookupPod(ctx, cmp.Or(ep.PodNamespace, "default"), ep.PodName)
	if err != nil {
		return nil, nil, fmt.Errorf("endpoint %s not added: its pod's labels are unknown, so its policy could not be enforced: %w", ep.Key(), err)
	}
	return pod, ns, nil
}

// requirePodKnown fails, in Kubernetes mode, an ADD whose endpoint's
// identity was computed without its Pod (identitymgr PodKnown).
func (d *Daemon) requirePodKnown(ep api.Endpoint) error {
	if d.k8s == nil {
		return nil
	}
	ei, ok := d.ids.Endpoints()[ep.ID]
	if !ok || !ei.PodKnown {
		return fmt.Errorf("endpoint %s: the identity was computed without pod %s/%s's labels", ep.Key(), cmp.Or(ep.PodNamespace, "default"), ep.PodName)
	}
	return nil
}
