#!/bin/bash
# pki.sh DIR NODE HOSTIP: a CA, the API server's serving cert, the service-account key pair, static tokens and a
# kubeconfig per client of a single-node cluster.
set -euo pipefail
P=$1 NODE=$2 HOSTIP=$3
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
mkkc() { # name token
	cat >"$1.kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: sluice-local
  cluster: {server: $APISERVER, certificate-authority: $P/ca.crt}
users:
- name: $1
  user: {token: $2}
contexts:
- name: default
  context: {cluster: sluice-local, user: $1}
current-context: default
EOT
	chmod 600 "$1.kubeconfig"
}
mkkc admin "$T_ADMIN"
mkkc kcm "$T_KCM"
mkkc scheduler "$T_SCHED"
mkkc kubelet "$T_KUBELET"
mkkc kube-proxy "$T_PROXY"
