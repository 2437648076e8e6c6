#!/usr/bin/env bash
# NodePort benchmark: an outside client's TCP_CRR and UDP_RR rate to a
# NodePort with a local backend (on the node it addresses) and a remote one
# (on the other node), through kube-proxy's iptables layout with conntrack
# (iptables), Sluice's tc programs (sluice-tc, --lb-acceleration disabled),
# Sluice's XDP program (sluice-xdp, native XDP on node 1's external
# devices), and both in DSR mode (sluice-tc-dsr, sluice-xdp-dsr: --lb-mode
# dsr on both nodes; node 1 sends the remote backend's requests IP-in-IP to
# node 2, whose replies go straight to the client over the client's second
# link, to node 2); and direct: the client sends to the backend pod's own
# address through node 1, no NAT, no NodePort program: the no-translation
# bound of this topology. A sample fails (no number) unless its replies name
# the backend and its packets took the configuration's way (DSR: node 1
# encapsulated, node 2 decapsulated and reverse-translated, nothing came
# back through node 1; everything else: back through node 1 only).
# Runs as root on two simulated nodes (network namespaces without uplink,
# pods wired by the real sluice-cni) plus a client namespace; removes
# everything it creates, also on Ctrl-C.
#
#   hack/bench-nodeport.sh            # 3 rounds, 5 s samples (~8 min)
#   hack/bench-nodeport.sh --quick    # 1 round, 2 s samples (~2-3 min)
#   hack/bench-nodeport.sh --configs iptables,sluice-xdp --rounds 1 --duration 1s
#
# Every flag is passed to the driver (test/bench/npbench); see --help.
# Output: one line per sample, a table (with each row's ratio to iptables and
# to direct, and what carries its packets), then one line per cell:
#   RESULT config=<name> backend=<local|remote> proto=<tcp_crr|udp_rr> rate=<median> ratio_iptables=<median over rounds of rate / that round's iptables rate>
# The exit status is 1 when a sample failed, or
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
