#!/bin/bash
# hack/k8s/build-e2e.sh: what `make conformance` (hack/conformance.sh) runs against the local cluster, cached under
# $CACHE/e2e (CACHE default /var/cache/sluice-k8s, the cache hack/k8s/build.sh fills; run that first, `up` does).
#
# - e2e.test v1.33.13 (`go test -c k8s.io/kubernetes/test/e2e`, ≈10 min cold on 2 cores), the ginkgo CLI at the
#   onsi/ginkgo/v2 version the Kubernetes module requires (parallel runs) and kubectl v1.33.13 (the framework execs it),
#   built in a scratch module $CACHE/e2ebuild: build.sh's kbuild go.mod (every staging module pinned; sample-apiserver,
#   which only e2e.test needs, at v0.33.3 as v0.33.13 is not on the proxy) plus the test-only requirements.
# - The test images under the exact names test/utils/image/manifest.go gives, as docker-archive tars in $CACHE/e2e/images
#   (hack/k8s/mkimage.sh, no registry, no Docker; the suite's pods pull IfNotPresent, so imported images are used):
#     registry.k8s.io/e2e-test-images/agnhost:2.53        agnhost from k8s.io/kubernetes/test/images/agnhost, /coredns
#                                                         (hack/k8s/coredns) and the tools the tests exec in it
#     registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7 the same tools (dig, getent, sh): the DNS tests' prober
#     registry.k8s.io/e2e-test-images/busybox:1.36.1-1    Debian's static busybox
#     registry.k8s.io/e2e-test-images/nginx:1.14-4        busybox httpd on :80 (the EndpointSlice test only needs a
#                                                         running pod with named ports)
#     registry.k8s.io/pause:3.10                          the pause binary of hack/k8s/src/pause
#   The tools, from Debian with their shared libraries and the loader (ldd), in a merged /usr (/bin -> usr/bin, the
#   tests name /bin/sleep and /bin/false): dig, nslookup, host (bind9-dnsutils), curl, wget (busybox-static's segfaults),
#   nc (netcat-openbsd, as upstream's agnhost), ip and ss (iproute2), getent (libc-bin), bash, dash as /bin/sh,
#   coreutils, grep, sed, mawk, hostname, findutils; busybox-static for the rest (ps, ...).
# Knobs (env): CACHE, SKIP_APT=1, FORCE=1 (rebuild the binaries even when present).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-/var/cache/sluice-k8s}
export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache GOPATH=$CACHE/gopath
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0
V=1.33.13
E=$CACHE/e2e MOD=$CACHE/e2ebuild
t() { local s; s=$(date +%s); "$@"; echo "TIME $(($(date +%s) - s))s  $*" | cut -c1-140; }
quiet() { grep -v '^go: \(downloading\|added\|upgraded\|finding\)' || true; }
mkdir -p "$E/bin" "$E/images" "$MOD"

# 1. Debian packages whose binaries go into the images (and jq, for hack/conformance.sh's summary).
if [ "${SKIP_APT:-0}" != 1 ]; then
	missing=""
	for p in jq busybox-static bind9-dnsutils curl wget netcat-openbsd iproute2 bash libc-bin dash coreutils grep sed mawk hostname findutils; do
		dpkg -s $p >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		t apt-get update -qq
		t env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
fi

# 2. The scratch module: kbuild's requirements plus what the e2e tests, agnhost, kubectl and the ginkgo CLI need.
if [ ! -f "$CACHE/kbuild/.ok-$V" ]; then
	echo "$CACHE/kbuild is not ready: run hack/k8s/build.sh (hack/local-cluster.sh up does) first" >&2
	exit 1
fi
KMOD=$(cd "$CACHE/kbuild" && go mod download -json k8s.io/kubernetes@v$V | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
GINKGOV=$(awk '$1 == "github.com/onsi/ginkgo/v2" {print $2; exit}' "$KMOD")
cd "$MOD"
if [ ! -f .ok-$V ] || [ "$CACHE/kbuild/go.mod" -nt .ok-$V ]; then
	sed 's#^module .*#module sluice.local/e2ebuild#' "$CACHE/kbuild/go.mod" >go.mod
	cp "$CACHE/kbuild/go.sum" go.sum
	t go get -t k8s.io/kubernetes/test/e2e@v$V k8s.io/kubernetes/test/images/agnhost@v$V \
		k8s.io/kubernetes/cmd/kubectl@v$V "github.com/onsi/ginkgo/v2/ginkgo@$GINKGOV" 2>&1 | quiet
	touch .ok-$V
fi

# 3. Binaries, with the version stamps build.sh gives the server binaries.
LD="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	LD="$LD -X $p.gitVersion=v$V -X $p.gitMajor=1 -X $p.gitMinor=$(echo $V | cut -d. -f2) -X $p.gitTreeState=clean"
done
fresh() { [ "${FORCE:-0}" != 1 ] && [ -x "$1" ] && [ -f "$1.v$V" ]; }
if ! fresh "$E/bin/e2e.test"; then
	t go test -c -trimpath -ldflags "$LD" -o "$E/bin/e2e.test" k8s.io/kubernetes/test/e2e
	touch "$E/bin/e2e.test.v$V"
fi
for p in github.com/onsi/ginkgo/v2/ginkgo k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/test/images/agnhost; do
	if ! fresh "$E/bin/$(basename $p)"; then
		t go build -trimpath -ldflags "$LD" -o "$E/bin/$(basename $p)" $p
		touch "$E/bin/$(basename $p).v$V"
	fi
done
if [ ! -x "$CACHE/img/coredns/coredns" ] || [ ! -x "$CACHE/img/pause/pause" ]; then
	echo "$CACHE/img/{coredns,pause} missing: run hack/k8s/build.sh first" >&2
	exit 1
fi

# 4. Image root filesystems.
copybin() { # ROOT PROGRAM...: each program into ROOT/usr/bin, with its shared libraries and the loader at their paths
	local root=$1 p f l
	shift
	for p in "$@"; do
		f=$(type -P "$p") || { echo "$p not found" >&2; return 1; }
		install -D -m 755 "$(readlink -f "$f")" "$root/usr/bin/$p"
		for l in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
			[ -e "$root$l" ] || install -D -m 755 "$(readlink -f "$l")" "$root$l"
		done
	done
}
base() { # ROOT: busybox as /bin/sh and every applet no real program in ROOT/usr/bin shadows; users, groups, nsswitch
	local root=$1 a
	install -D -m 755 "$(command -v busybox)" "$root/bin/busybox"
	for a in $("$root/bin/busybox" --list); do
		[ -e "$root/usr/bin/$a" ] || [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	mkdir -p "$root/etc" "$root/tmp" "$root/sbin" "$root/usr/sbin" "$root/proc" "$root/sys" "$root/dev"
	chmod 1777 "$root/tmp"
	# upstream's agnhost has user-defined-in-image (1000) in group-defined-in-image (50000)
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser-defined-in-image:x:1000:1000::/home/user:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >"$root/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
}
IMG=$CACHE/e2e/img
rm -rf "$IMG" && mkdir -p "$IMG"
# Debian's userland, so `sh -c "... | nc ..."` runs OpenBSD nc: Debian's static busybox prefers its own applets in its
# shell and in what it execs, whatever PATH says. Busybox only adds the applets Debian's programs leave out (wget, ...).
TOOLS="dig nslookup host curl wget nc ip ss getent bash $(dpkg -L coreutils dash grep sed mawk hostname findutils |
	sed -n 's#^/\(usr/\)\{0,1\}s\{0,1\}bin/##p' | sort -u | tr '\n' ' ')"
for i in agnhost jessie-dnsutils; do
	# merged /usr as Debian 12 (and /bin/sleep, /bin/false where the tests' probes and hooks name them)
	mkdir -p "$IMG/$i/usr/bin" "$IMG/$i/usr/sbin"
	ln -s usr/bin "$IMG/$i/bin"
	ln -s usr/sbin "$IMG/$i/sbin"
	copybin "$IMG/$i" $TOOLS
	ln -sf dash "$IMG/$i/usr/bin/sh"
	ln -sf mawk "$IMG/$i/usr/bin/awk"
	base "$IMG/$i"
	install -m 755 "$CACHE/img/coredns/coredns" "$IMG/$i/coredns"
done
A=$IMG/agnhost
install -m 755 "$E/bin/agnhost" "$A/agnhost"
ln -s agnhost "$A/agnhost-2" # the entrypoint tests run agnhost-2
mkdir -p "$A/uploads"        # netexec's /upload
KSRC=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
cp "$KSRC/test/images/agnhost/porter/localhost.crt" "$KSRC/test/images/agnhost/porter/localhost.key" "$A/"
base "$IMG/busybox"
base "$IMG/nginx"
mkdir -p "$IMG/nginx/usr/share/nginx/html" && echo ok >"$IMG/nginx/usr/share/nginx/html/index.html"
mkdir -p "$IMG/pause" && install -m 755 "$CACHE/img/pause/pause" "$IMG/pause/pause"
# a missing library shows here, not as a pod that never starts: the image's loader resolves each tool in the image
for i in agnhost jessie-dnsutils; do
	for p in $TOOLS; do
		[ ! -L "$IMG/$i/usr/bin/$p" ] && head -c4 "$IMG/$i/usr/bin/$p" | grep -q ELF || continue # not scripts
		if ! out=$(chroot "$IMG/$i" /lib64/ld-linux-x86-64.so.2 --list /usr/bin/$p 2>&1) || echo "$out" | grep -q 'not found'; then
			echo "$i: $p does not load in the image: $out" >&2
			exit 1
		fi
	done
done

# 5. Images.
export MKIMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=registry.k8s.io/e2e-test-images
MKIMAGE_CMD=pause "$HERE/mkimage.sh" $R/agnhost:2.53 "$E/images/agnhost.tar" "$A" /agnhost
MKIMAGE_CMD=sh "$HERE/mkimage.sh" $R/jessie-dnsutils:1.7 "$E/images/jessie-dnsutils.tar" "$IMG/jessie-dnsutils"
MKIMAGE_CMD=sh "$HERE/mkimage.sh" $R/busybox:1.36.1-1 "$E/images/busybox.tar" "$IMG/busybox"
"$HERE/mkimage.sh" $R/nginx:1.14-4 "$E/images/nginx.tar" "$IMG/nginx" /bin/httpd -f -p 80 -h /usr/share/nginx/html
"$HERE/mkimage.sh" registry.k8s.io/pause:3.10 "$E/images/pause.tar" "$IMG/pause" /pause
