#!/usr/bin/env bash
# Tracing benchmark: the cost of Sluice's process sensor and tracing policies
# on a workload in a pod, against no agent at all. --workload exec (default):
# a fork+exec storm (N workers, one per CPU, each starting a copy of /bin/true
# in a loop); --workload open: an openat/close loop. Configurations: baseline,
# sluice (sensor), sluice-export (exec), sluice-policy (a policy that matches
# none of the workload: exec prevention of another binary, or file monitoring
# of other paths), sluice-policy-match (open: a policy posting every open at
# --rate 10000/s; every event must arrive, none lost). Runs as root on simulated nodes (network namespaces
# without uplink, pods wired by the real sluice-cni); removes everything it
# creates, also on Ctrl-C.
#
#   hack/bench-trace.sh            # 5 rounds, 5 s samples (~3 min)
#   hack/bench-trace.sh --quick    # 1 round, 2 s samples (~30 s), every RESULT line
#   hack/bench-trace.sh --configs baseline,agent,sluice --rounds 3 --duration 3s
#   hack/bench-trace.sh --workload open
#
# Every flag is passed to the driver (test/bench/tracebench); see --help.
# Output: one line per sample, a table, then one line per configuration:
#   RESULT workload=exec config=<name> ops_per_s=<median> ratio_baseline=<x> lost=<events lost>
#          [received=<n> execs=<m> [exported=<k>] bpf_ns_per_exec=<x>] [agent_cpu_s_per_1k_execs=<x>]
#   RESULT workload=open config=<name> ops_per_s=<median> ratio_baseline=<x> lost=<events lost>
#          [received=<n> ops=<m>] [bpf_ns_per_op=<x>] [agent_cpu_s_per_1k_ops=<x>]
# The exit status is 1 when a sample failed, an event the workload caused
# never reached the agent's API (or the export file), or no Sluice (sensor)
# configuration asked for produced a number (all unavailable or failed).
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
