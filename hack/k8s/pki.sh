#!/bin/bash
# pki.sh DIR NODE HOSTIP [NODE2...]: a CA, the API server's serving cert, the service-account key pair, static tokens and a
# kubeconfig per client of the local cluster (node NODE's kubelet on a token, at 127.0.0.1). Every further node NODEk
# (hack/k8s/node.sh) gets a client certificate of its own (CN system:node:NODEk, O system:nodes: the Node authorizer's
# identity) and kubelet-NODEk.kubeconfig, which reaches the API server at HOSTIP (127.0.0.1 is its own loopback).
set -euo pipefail
P=$1 NODE=$2 HOSTIP=$3
shift 3
mkdir -p "$P" && cd "$P"
APISERVER=https://127.0.0.1:6443
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 -subj /CN=sluice-local-ca 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.crt -days 365 \
	-CA ca.crt -CAkey ca.key -subj /CN=kube-apiserver \
	-addext "subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$HOSTIP,IP:10.96.0.1" \
	-addext "extendedKeyUsage=serverAuth" -addext "basicConstraints=CA:FALSE" 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
tok() { head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
T_ADMIN=$(tok) T_KCM=$(tok) T_SCHED=$(tok) T_KUBELET=$(tok) T_PROXY=$(tok)
cat >tokens.csv <<EOT
$T_ADMIN,admin,admin,"system:masters"
$T_KCM,system:kube-controller-manager,kcm
$T_SCHED,system:kube-scheduler,sched
$T_KUBELET,system:node:$NODE,kubelet,"system:nodes"
$T_PROXY,system:kube-proxy,kube-proxy
EOT
chmod 600 tokens.csv ca.key apiserver.key sa.key
mkkc() { # name user-fields [server]
	cat >"$1.kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: sluice-local
  cluster: {server: ${3:-$APISERVER}, certificate-authority: $P/ca.crt}
users:
- name: $1
  user: {$2}
contexts:
- name: default
  context: {cluster: sluice-local, user: $1}
current-context: default
EOT
	chmod 600 "$1.kubeconfig"
}
mkkc admin "token: $T_ADMIN"
mkkc kcm "token: $T_KCM"
mkkc scheduler "token: $T_SCHED"
mkkc kubelet "token: $T_KUBELET"
mkkc kube-proxy "token: $T_PROXY"
for n in "$@"; do
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "kubelet-$n.key" -out "kubelet-$n.crt" -days 365 \
		-CA ca.crt -CAkey ca.key -subj "/O=system:nodes/CN=system:node:$n" \
		-addext "extendedKeyUsage=clientAuth" -addext "basicConstraints=CA:FALSE" 2>/dev/null
	chmod 600 "kubelet-$n.key"
	mkkc "kubelet-$n" "client-certificate: $P/kubelet-$n.crt, client-key: $P/kubelet-$n.key" "https://$HOSTIP:6443"
done
