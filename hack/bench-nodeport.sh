#!/usr/bin/env bash
# NodePort benchmark: an outside client's TCP_CRR and UDP_RR rate to a
# NodePort with a local backend (on the node it addresses) and a remote one
# (on the other node), through kube-proxy's iptables layout with conntrack
# (iptables), Sluice's tc programs (sluice-tc, --lb-acceleration disabled)
# and Sluice's XDP program (sluice-xdp, native XDP on the nodes' external
# devices); sluice-xdp-dsr is reported unavailable until DSR is built.
# Runs as root on two simulated nodes (network namespaces without uplink,
# pods wired by the real sluice-cni) plus a client namespace; removes
# everything it creates, also on Ctrl-C.
#
#   hack/bench-nodeport.sh            # 3 rounds, 5 s samples (~6 min)
#   hack/bench-nodeport.sh --quick    # 1 round, 2 s samples (~1-2 min)
#   hack/bench-nodeport.sh --configs iptables,sluice-xdp --rounds 1 --duration 1s
#
# Every flag is passed to the driver (test/bench/npbench); see --help.
# Output: one line per sample, a table, then one line per cell:
#   RESULT config=<name> backend=<local|remote> proto=<tcp_crr|udp_rr> rate=<median> ratio_iptables=<median over rounds of rate / that round's iptables rate>
# The exit status is 1 when a sample of a built configuration failed, or
# when no Sluice configuration produced a number.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
	echo "bench-nodeport: needs root (network namespaces, BPF, XDP, iptables)" >&2
	exit 1
fi
for tool in iptables-restore nsenter ip; do
	command -v "$tool" >/dev/null || { echo "bench-nodeport: $tool not found" >&2; exit 1; }
done

make build >/dev/null
go build -o bin/crr ./test/bench/crr
go build -o bin/npbench ./test/bench/npbench
exec bin/npbench --bin-dir bin "$@"
