#!/usr/bin/env bash
# Churn campaign: on a simulated node (a network namespace with no uplink,
# the real sluice-agent in standalone mode), pods are created and deleted in
# waves through the real sluice-cni binary (concurrent ADDs and DELs; some
# waves start by SIGKILLing the agent, deleting pods while it is down and
# requiring ADDs to fail closed) while Services and policies keep changing
# in the manifests the agent watches. Then it hunts for what the gone pods
# left: IPAM addresses, host veths, pinned links, endpoint / IP-cache /
# policy / backend / conntrack / NAT entries, identities still referenced,
# and compares the agent's goroutines, descriptors and RSS with a baseline.
# Runs as root; removes everything it creates, also on failure.
#
#   hack/soak.sh            # 1 000 pods in waves of 50, 200 services, 50 policies, 5 kills
#   hack/soak.sh --quick    # 100 pods in waves of 20, 20 services, 5 policies, 2 kills (CI, < 1 min)
#   hack/soak.sh --pods 300 --wave 30 --services 50 ...   # see `bin/campaign soak --help`
#
# Output: progress, any LEAK lines, then
#   RESULT soak pods=<n> leaked_ips=<n> leaked_links=<n> leaked_pins=<n> leaked_entries=<n> leaked_identities=<n> rss_growth_mib=<x>
# The exit status is 1 on any leak, failed ADD/DEL, pod that could not reach
# the servers' ClusterIP, or growth of the agent's goroutines or descriptors.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
	echo "soak: needs root (network namespaces, BPF)" >&2
	exit 1
fi
make build >/dev/null
go build -o bin/campaign ./test/campaign
exec bin/campaign soak --bin-dir bin "$@"
