#!/usr/bin/env bash
# Regenerates the bpf2go output in datapath/bpfgen/ (BPF objects and Go bindings)
# from bpf/, byte for byte the same wherever the repository is checked out.
#
# Why a fixed directory: clang's BTF output orders some types by the address
# of its heap objects, and those addresses shift with the length of the paths
# it is given (source, output, working directory). Generated in place, a
# checkout at /work/main and one at /tmp/ci/main produced different bytes for
# the same source. So bpf/ is copied to $GEN and bpf2go runs there, always at
# the same paths, under a lock (two generations at once share $GEN).
#
# The bpf2go invocations are the `//sluice:bpf2go` lines of datapath/bpfgen/doc.go.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GEN=/tmp/sluice-bpf2go
GO=${GO:-go}
exec 9>/tmp/sluice-bpf2go.lock
flock 9
rm -rf "$GEN"
mkdir -p "$GEN/datapath/bpfgen"
cp -r "$ROOT/bpf" "$GEN/bpf"
(cd "$ROOT" && $GO build -o "$GEN/bpf2go" github.com/cilium/ebpf/cmd/bpf2go)
cd "$GEN/datapath/bpfgen"
n=0
while read -r args; do
	# shellcheck disable=SC2086 # the line is a list of arguments
	GOPACKAGE=bpfgen GOFILE=doc.go "$GEN/bpf2go" $args
	n=$((n + 1))
done < <(sed -n 's|^//sluice:bpf2go ||p' "$ROOT/datapath/bpfgen/doc.go")
[ "$n" -gt 0 ] || { echo "bpf-generate: no //sluice:bpf2go lines in datapath/bpfgen/doc.go" >&2; exit 1; }
cp "$GEN"/datapath/bpfgen/*_bpfel.go "$GEN"/datapath/bpfgen/*_bpfel.o "$ROOT/datapath/bpfgen/"
rm -rf "$GEN"
