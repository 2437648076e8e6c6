// Package datapath loads, pins and drives Sluice's BPF programs. It is the only
// package tree that imports cilium/ebpf: it holds the bpf2go output for the C
// in bpf/, the loader that pins programs and maps under the bpffs root and
// adopts what an earlier agent pinned, and typed access to the maps.
package datapath

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -type endpoint_key -type endpoint_info -type metrics_key -type metrics_value -type sluice_reason -type sluice_direction lxc ../bpf/lxc.c -- -I../bpf -I/usr/include/x86_64-linux-gnu -mcpu=v3 -O2 -g -Wall -Werror
