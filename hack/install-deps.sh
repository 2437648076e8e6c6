#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12, when missing:
# the pinned BPF toolchain (clang-19/llvm-19 19.1.7 from Debian), kernel and
# libbpf headers, iproute2, iptables, nsenter, headless Chromium (the service
# map's browser test drives it), Prometheus and promtool (the chart's alerts and
# dashboards are checked against a real agent), and the Go tools. Idempotent.
set -euo pipefail

CLANG_VERSION=19.1.7
STATICCHECK_VERSION=v0.8.2
pkgs=(clang-19 llvm-19 libbpf-dev linux-libc-dev iproute2 iptables util-linux chromium prometheus)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing packages ${missing[*]}; run as root" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! clang-19 --version | grep -q "version $CLANG_VERSION"; then
	echo "install-deps: clang-19 is not $CLANG_VERSION: generated BPF objects would differ" >&2
	clang-19 --version >&2
	exit 1
fi

GOBIN=$(go env GOPATH)/bin
if [[ ! -x $GOBIN/staticcheck ]] || ! "$GOBIN/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
	echo "install-deps: installing staticcheck $STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
