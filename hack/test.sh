#!/usr/bin/env bash
# Runs every Go test (unit and, as root with SLUICE_PRIVILEGED_TESTS=1, the
# privileged ones) and prints a summary. With SLUICE_PRIVILEGED_TESTS=1 it
# fails when no privileged test passed or when a privileged test or subtest
# was skipped (hack/check-test-log.sh), so that a green run always means the
# datapath was exercised in a real kernel.
# Knobs for a developer's run (CI ignores them, .ci/run): TEST_PKGS, TEST_FLAGS, TEST_LOG.
set -uo pipefail
cd "$(dirname "$0")/.."

# The upgrade test (TestPrivilegedUpgradeFromPreviousBuild) runs the previous
# release's agent and CNI plugin: build them (hack/build-prev.sh, cached by
# commit) unless SLUICE_PREV_BIN_DIR already names them.
if [[ ${SLUICE_PRIVILEGED_TESTS:-0} == 1 && -z ${SLUICE_PREV_BIN_DIR:-} ]]; then
	export SLUICE_PREV_BIN_DIR=$PWD/bin/prev
	hack/build-prev.sh "$SLUICE_PREV_BIN_DIR" || { echo "test: building the previous release failed" >&2; exit 1; }
fi

# The Kubernetes-mode integration tests run the agent against a real etcd and kube-apiserver (test/harness
# StartAPIServer), from hack/k8s/build.sh's cache (the e2e stage needs the same build; cached, seconds when warm).
if [[ ${SLUICE_PRIVILEGED_TESTS:-0} == 1 && -z ${SLUICE_K8S_BIN_DIR:-} ]] &&
	! [[ -x /var/cache/sluice-k8s/bin/etcd && -x /var/cache/sluice-k8s/bin/kube-apiserver ]]; then
	SKIP_APT=1 hack/k8s/build.sh || { echo "test: building etcd and kube-apiserver failed" >&2; exit 1; }
fi

log=${TEST_LOG:-$(mktemp /tmp/sluice-test.XXXXXX.log)}
pkgs=${TEST_PKGS:-./...}
echo "test: go test $pkgs (SLUICE_PRIVILEGED_TESTS=${SLUICE_PRIVILEGED_TESTS:-0}), log: $log"
# shellcheck disable=SC2086
go test -count=1 -v -timeout 20m $pkgs ${TEST_FLAGS:-} 2>&1 | tee "$log" | grep -E '^(ok|FAIL|---|panic:|\?)' | grep -v '^--- PASS' 
rc=${PIPESTATUS[0]}

passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if [[ ${SLUICE_PRIVILEGED_TESTS:-0} == 1 ]]; then
	# fails when no privileged test passed or a privileged test or subtest was skipped
	hack/check-test-log.sh privileged "$log" || rc=1
fi
if ((rc != 0)) && ((failed > 0)); then
	echo "--- failures (full log: $log)"
	grep -B2 -A30 -E '^\s*--- FAIL' "$log" | head -300
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
