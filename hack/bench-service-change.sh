#!/usr/bin/env bash
# Service change latency at scale: 10 000 Services programmed into real LB
# maps, then CHANGES changes (default 1000), each replacing one backend of
# one Service, timed from the change's arrival at the services manager to
# the map update (agent/servicemgr BenchmarkServiceChange10k). Runs as root
# (BPF maps pinned under a test-owned bpffs directory, removed afterwards).
#
#   hack/bench-service-change.sh         # 1000 changes
#   hack/bench-service-change.sh 200
#
# Output:
#   RESULT service_change services=10000 changes=<n> median_ms=<x> p99_ms=<x> cpu_ms_per_change=<x>
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
	echo "bench-service-change: needs root (BPF maps)" >&2
	exit 1
fi
changes=${1:-1000}
SLUICE_PRIVILEGED_TESTS=1 go test -count=1 -run '^$' -bench '^BenchmarkServiceChange10k$' \
	-benchtime "${changes}x" ./agent/servicemgr/ | grep -E '^(RESULT|BenchmarkServiceChange10k)'
