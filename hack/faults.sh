#!/usr/bin/env bash
# Faults campaign, "map pressure and faults" (issue 13): runs the privileged
# TestPrivilegedFault* tests on simulated nodes (network namespaces without
# uplink, BPF_PROG_TEST_RUN; everything they create is removed) and prints
# one RESULT line per scenario:
#
#   RESULT faults scenario=ct_full capacity=<n> new_flows=<n> new_dropped=<n> drop_ct_map_full=<n> established_kept=<n>/<n> idle_kept=<n>/<n> recovered=yes|no
#   RESULT faults scenario=nat_full capacity=<n> new_flows=<n> new_dropped=<n> drop_nat_failed=<n> drop_nat_no_port=<n> established_kept=<n>/<n> recovered=yes|no
#   RESULT faults scenario=nat_port_exhaustion ports=<n> new_flows=<n> new_dropped=<n> drop_nat_no_port=<n> established_kept=<n>/<n> recovered=yes|no
#   RESULT faults scenario=state_dir_unwritable add_failed=yes error_clear=yes|no leaked=<n> retry=ok|failed
#   RESULT faults scenario=agent_killed_in_add add_failed=yes leaked=<n> retry=ok|failed
#   RESULT faults scenario=apiserver_away seconds=<n> checks=<n> allowed_failed=<n> denied_passed=<n> caught_up_s=<x>
#
#   hack/faults.sh            # full floods (64 x the map or port range)
#   hack/faults.sh --quick    # floods of 1/8 of that (CI; well under 90 s once built)
#
# apiserver_away runs a real etcd and kube-apiserver (hack/k8s/build.sh's
# cache) in the node's namespace and stops the API server for 120 s (10 s
# quick) under an agent in Kubernetes mode.
# Exits 1 when a test failed or a scenario printed no RESULT line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
quick=0
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
	esac
done
if [[ $(id -u) != 0 ]]; then
	echo "faults: needs root (network namespaces, BPF, mounts)" >&2
	exit 1
fi

make build >/dev/null
log=$(mktemp /tmp/sluice-faults.XXXXXX.log)
echo "faults log: $log"
rc=0
SLUICE_PRIVILEGED_TESTS=1 SLUICE_FAULTS_QUICK=$quick SLUICE_BIN_DIR=$PWD/bin \
	go test -count=1 -v -timeout 10m -run '^TestPrivilegedFault' ./datapath/ ./test/integration/ >"$log" 2>&1 || rc=1
grep -E '^--- (PASS|FAIL|SKIP): TestPrivilegedFault' "$log" || true
grep '^RESULT faults ' "$log" || true
for s in ct_full nat_full nat_port_exhaustion state_dir_unwritable agent_killed_in_add apiserver_away; do
	grep -q "^RESULT faults scenario=$s " "$log" || { echo "faults: no RESULT line for $s" >&2; rc=1; }
done
if grep -qE '^--- SKIP: TestPrivilegedFault' "$log"; then
	echo "faults: a scenario was skipped" >&2
	rc=1
fi
if ((rc != 0)); then
	grep -vE '^\s*time=' "$log" | tail -60 >&2
fi
exit $rc
