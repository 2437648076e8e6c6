#!/usr/bin/env bash
# TCP_CRR benchmark: pod → ClusterIP through Sluice (socket LB, tc LB) vs
# kube-proxy-style iptables at 1, 1 000 and 10 000 services vs direct pod IP,
# plus control-plane programming times. Runs as root on simulated nodes
# (network namespaces without uplink); removes everything it creates.
#
#   hack/bench-crr.sh            # 3 rounds, 5 s samples (~8-10 min)
#   hack/bench-crr.sh --quick    # 1 round, 2 s samples (~2 min), every RESULT line
#   hack/bench-crr.sh --configs direct,iptables --services 1,10 --rounds 1 --duration 1s
#   hack/bench-crr.sh --cluster [--quick]   # on the real node of hack/local-cluster.sh: Sluice vs the real kube-proxy
#                                           # (hack/k8s/bench-crr-cluster.sh; see its header)
#
# Every flag is passed to the driver (test/bench/crrbench); see --help.
# Output: a table, then one line per measurement:
#   RESULT config=<name> services=<n> tps=<median> ratio_direct=<median over rounds of tps / that round's direct> ratio_min=.. ratio_max=..
#   RESULT config=direct services=0 tps=<median> ratio_direct=1.00 self_ratio=<direct's 2nd sample / its 1st, median> self_min=.. self_max=..
#   RESULT config=program-<iptables|sluice> services=<n> seconds=<x>
# Direct is measured twice per round (first and mid-round), every configuration runs the same agent flags.
# The exit status is 1 when a measurement that was available failed, or when
# no Sluice configuration asked for produced a number (all unavailable or failed).
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do [[ $a == --cluster ]] && exec hack/k8s/bench-crr-cluster.sh "$@"; done

if [[ $(id -u) != 0 ]]; then
	echo "bench-crr: needs root (network namespaces, BPF, iptables)" >&2
	exit 1
fi
for tool in iptables-restore nsenter ip; do
	command -v "$tool" >/dev/null || { echo "bench-crr: $tool not found" >&2; exit 1; }
done

make build >/dev/null
go build -o bin/crr ./test/bench/crr
go build -o bin/crrbench ./test/bench/crrbench
exec bin/crrbench --bin-dir bin "$@"
