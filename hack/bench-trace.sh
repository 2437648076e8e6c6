#!/usr/bin/env bash
# Exec benchmark: the cost of Sluice's process sensor on a fork+exec storm in a
# pod (N workers, one per CPU, each starting a copy of /bin/true in a loop),
# against no agent at all. Runs as root on simulated nodes (network namespaces
# without uplink, pods wired by the real sluice-cni); removes everything it
# creates, also on Ctrl-C.
#
#   hack/bench-trace.sh            # 5 rounds, 5 s samples (~3 min)
#   hack/bench-trace.sh --quick    # 1 round, 2 s samples (~30 s), every RESULT line
#   hack/bench-trace.sh --configs baseline,agent,sluice --rounds 3 --duration 3s
#
# Every flag is passed to the driver (test/bench/tracebench); see --help.
# Output: one line per sample, a table, then one line per configuration:
#   RESULT workload=exec config=<name> ops_per_s=<median> ratio_baseline=<x> lost=<events lost>
#          [received=<n> execs=<m> [exported=<k>] bpf_ns_per_exec=<x>] [agent_cpu_s_per_1k_execs=<x>]
# The exit status is 1 when a sample failed or an exec of the storm never
# reached the agent's API (or the export file).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
	echo "bench-trace: needs root (network namespaces, BPF)" >&2
	exit 1
fi
for tool in nsenter ip; do
	command -v "$tool" >/dev/null || { echo "bench-trace: $tool not found" >&2; exit 1; }
done

make build >/dev/null
go build -o bin/execstorm ./test/bench/execstorm
go build -o bin/tracebench ./test/bench/tracebench
exec bin/tracebench --bin-dir bin "$@"
