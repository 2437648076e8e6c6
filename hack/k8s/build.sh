#!/bin/bash
# hack/k8s/build.sh: build everything a local Kubernetes node needs, cached under $CACHE (default /var/cache/sluice-k8s).
#
# Kubernetes v1.33.13 server binaries from the Go module proxy (a scratch module requiring k8s.io/kubernetes with a replace
# for every ./staging module), etcd 3.5.21, a tiny CRI client (crimini, for teardown), the test images (pause, echo) and
# CoreDNS (hack/k8s/coredns) as docker-archive tars. Debian's containerd and runc are installed with apt when missing.
# A second run with the same cache reuses the module and build caches and skips binaries that already exist.
# Knobs (env): CACHE, SKIP_APT=1, FORCE=1 (rebuild binaries even when present).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-/var/cache/sluice-k8s}
export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache GOPATH=$CACHE/gopath
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0
BIN=$CACHE/bin IMAGES=$CACHE/images KBUILD=$CACHE/kbuild
V=1.33.13     # the release whose staging modules are all served by the module proxy here
ETCDV=3.5.21  # what Kubernetes 1.33.13 pins
T0=$(date +%s)
t() { local s; s=$(date +%s); "$@"; echo "TIME $(($(date +%s) - s))s  $*" | cut -c1-140; }
quiet() { grep -v '^go: \(downloading\|added\|upgraded\|finding\)' || true; }
mkdir -p "$BIN" "$IMAGES" "$KBUILD"

# 1. Debian packages: containerd 1.6 and runc (iptables for kubelet's canary chains).
if [ "${SKIP_APT:-0}" != 1 ]; then
	missing=""
	for p in containerd runc iptables; do dpkg -s $p >/dev/null 2>&1 || missing="$missing $p"; done
	if [ -n "$missing" ]; then
		t apt-get update -qq
		t env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
fi

# 2. Scratch module: require k8s.io/kubernetes and pin every ./staging replace to the matching v0.x tag.
PKGS="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
cd "$KBUILD"
if [ ! -f go.sum ] || [ ! -f .ok-$V ]; then
	KMOD=$(go mod download -json k8s.io/kubernetes@v$V | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
	{
		printf 'module sluice.local/kbuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' $V
		for m in $(grep '=> ./staging' "$KMOD" | awk '{print $1}'); do
			mv=v0.${V#1.}
			[ "$m" = k8s.io/sample-apiserver ] && mv=v0.33.3 # v0.33.13 is not on the proxy (only e2e.test needs it)
			printf '\t%s => %s %s\n' "$m" "$m" "$mv"
		done
		printf ')\n'
	} >go.mod
	rm -f go.sum
	t go get $(for p in $PKGS; do echo $p@v$V; done) go.etcd.io/etcd/server/v3@v$ETCDV 2>&1 | quiet
	touch .ok-$V
fi

# 3. Builds (sequential so each is timed; the build cache makes repeats take seconds).
LD="-s -w"
MINOR=$(echo $V | cut -d. -f2)
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	LD="$LD -X $p.gitVersion=v$V -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
done
build() { # out pkg ldflags
	if [ "${FORCE:-0}" = 1 ] || [ ! -x "$BIN/$1" ] || [ ! -f "$BIN/.v$V-$1" ]; then
		t go build -trimpath -ldflags "$3" -o "$BIN/$1" "$2"
		touch "$BIN/.v$V-$1"
	fi
}
for p in $PKGS; do build "$(basename $p)" $p "$LD"; done
build etcd go.etcd.io/etcd/server/v3 "-s -w"
# helm renders install/helm/sluice (hack/k8s/render.sh); a separate module cache entry, same caches.
if [ ! -x "$BIN/helm" ]; then
	(cd "$CACHE" && t env GOBIN="$BIN" go install helm.sh/helm/v3/cmd/helm@v3.18.6 2>&1 | quiet)
fi

# 4. The project's own small programs (hack/k8s/src, a separate module): the CRI client and the pause image; the echo
#    image is built from the main module
#    (static Go binaries as docker-archive tars for `ctr images import`; pods use imagePullPolicy: Never).
cd "$HERE/src"
t go build -trimpath -ldflags "-s -w" -o "$BIN/crimini" ./crimini
mkdir -p "$CACHE/img"
for i in pause echo; do
	rm -rf "$CACHE/img/$i" && mkdir -p "$CACHE/img/$i"
	if [ $i = echo ]; then
		# The echo workload is in the main module (test/e2e/echo; its servers are
		# test/echoserver, shared with the harness): build it with the main
		# module's own caches, as `make build` does.
		(cd "$HERE/../.." && env -u GOMODCACHE -u GOCACHE -u GOPATH \
			go build -trimpath -ldflags "-s -w" -o "$CACHE/img/$i/$i" ./test/e2e/echo)
	else
		go build -trimpath -ldflags "-s -w" -o "$CACHE/img/$i/$i" ./$i
	fi
	"$HERE/mkimage.sh" sluice.local/$i:1 "$IMAGES/$i.tar" "$CACHE/img/$i" /$i
done
# 5. CoreDNS for the cluster DNS (hack/k8s/coredns.yaml): hack/k8s/coredns is a module of its own whose main links only
#    the plugins the offline Corefile uses.
if [ "${FORCE:-0}" = 1 ] || [ ! -f "$IMAGES/coredns.tar" ] || [ "$HERE/coredns/go.sum" -nt "$IMAGES/coredns.tar" ] ||
	[ "$HERE/coredns/main.go" -nt "$IMAGES/coredns.tar" ]; then
	rm -rf "$CACHE/img/coredns" && mkdir -p "$CACHE/img/coredns"
	(cd "$HERE/coredns" && t go build -trimpath -ldflags "-s -w" -o "$CACHE/img/coredns/coredns" .)
	"$HERE/mkimage.sh" sluice.local/coredns:1 "$IMAGES/coredns.tar" "$CACHE/img/coredns" /coredns
fi
echo "build total $(($(date +%s) - T0))s"
ls -la "$BIN" "$IMAGES"
