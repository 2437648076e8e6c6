#!/bin/bash
# hack/k8s/coredns.sh KUBECONFIG: installs the cluster DNS (hack/k8s/coredns.yaml: CoreDNS and the kube-dns Service at
# 10.96.0.10, kubelet's clusterDNS) and waits until it answers: the Deployment is available and its Service has a ready
# endpoint. hack/local-cluster.sh up calls it once Sluice runs (CoreDNS reaches the API server through the kubernetes
# Service, which Sluice serves). The image sluice.local/coredns:1 comes from hack/k8s/build.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KC="kubectl --kubeconfig $1"
# shellcheck source=hack/k8s/lib.sh
. "$HERE/lib.sh"
$KC apply -f "$HERE/coredns.yaml" >/dev/null
waitfor "CoreDNS" 120 $KC -n kube-system rollout status deploy/coredns --timeout=5s
waitfor "kube-dns endpoint" 60 sh -c "$KC -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns \
	-o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}' | grep -q ."
