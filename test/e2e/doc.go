// Package e2e tests Sluice on a real local Kubernetes node started by
// hack/local-cluster.sh up (kube-apiserver, kubelet, containerd, Sluice as the
// CNI, no kube-proxy). The tests skip unless SLUICE_E2E=1 (`make e2e` sets it).
// Pods run the echo image (test/e2e/echo), whose every reply names the pod.
package e2e
