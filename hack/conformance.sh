#!/bin/bash
# hack/conformance.sh (make conformance): the upstream Kubernetes v1.33.13 network conformance tests against the local
# cluster of hack/local-cluster.sh (up first; Sluice as the CNI and no kube-proxy, CoreDNS as the cluster DNS).
#
# Builds what is missing (hack/k8s/build-e2e.sh: e2e.test, the ginkgo CLI, kubectl and the test images, cached in
# $CACHE/e2e), imports the images into every node's containerd, then runs the specs matching FOCUS (default:
# `[sig-network] Services` and `[sig-network] .* [Conformance]`) minus hack/conformance-skip.txt (one regular
# expression per line, each with the reason it is skipped) in PROCS parallel ginkgo processes (default 4; [Serial]
# specs run alone at the end). Tests that need more nodes than the cluster has skip themselves (upstream's own check).
# Prints passed / failed / skipped (skip list, skipped by the test itself), every failure with its message, and the
# wall time. Exit status 1 when a spec failed or none passed.
# Knobs (env): CACHE, PROCS, FOCUS, SKIP_FILE, OUT (report directory, default $CACHE/e2e/results/<time>),
#   TIMEOUT (ginkgo's whole-suite timeout, default 55m), E2E_ARGS (more e2e.test flags).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-/var/cache/sluice-k8s}
R=$CACHE/run E=$CACHE/e2e
KCFG=$R/pki/admin.kubeconfig
PROCS=${PROCS:-4}
FOCUS=${FOCUS:-'\[sig-network\] Services|\[sig-network\] .*\[Conformance\]'}
SKIP_FILE=${SKIP_FILE:-$REPO/hack/conformance-skip.txt}
OUT=${OUT:-$E/results/$(date -u +%Y%m%dT%H%M%SZ)}
T0=$(date +%s)
# shellcheck source=hack/k8s/lib.sh
. "$REPO/hack/k8s/lib.sh"

if ! kubectl --kubeconfig "$KCFG" get --raw /readyz >/dev/null 2>&1; then
	echo "no local cluster: run hack/local-cluster.sh up first" >&2
	exit 1
fi
CACHE=$CACHE "$REPO/hack/k8s/build-e2e.sh" | { grep -E '^(TIME|/)' || true; }

# Every node's containerd gets the images (node_sockets: hack/k8s/lib.sh of the multi-node cluster; one node else).
socks=$R/containerd.sock
if declare -F node_sockets >/dev/null; then socks=$(node_sockets); fi
for s in $socks; do
	for t in "$E"/images/*.tar; do ctr --address "$s" -n k8s.io images import "$t" >/dev/null; done
done
echo "images imported into $(echo "$socks" | wc -w) node(s)"
# tests that need N nodes read the count from --num-nodes (the local provider has no cloud to ask)
NUM_NODES=$(kubectl --kubeconfig "$KCFG" get nodes -o name | wc -l)

# The skip list: "REGEX # reason" a line; an entry without a reason is an error.
SKIP=""
while IFS= read -r line; do
	case "$line" in '' | '#'*) continue ;; esac
	re=${line%% # *}
	re=${re%"${re##*[![:space:]]}"}
	if [ "$re" = "$line" ] || [ -z "${line#* # }" ]; then
		echo "$SKIP_FILE: entry without a reason: $line" >&2
		exit 1
	fi
	SKIP="$SKIP${SKIP:+|}$re"
done <"$SKIP_FILE"

# Safety: "should be possible to connect to a service via ExternalIP when the external IP is not assigned to a node"
# connects from a pod to 203.0.113.250 (TEST-NET-3, where this machine's package proxy lives), which Sluice must
# translate to a backend. Should it not, the SYN dies in a blackhole here instead of leaving through the uplink.
SAFE=203.0.113.250/32
trap 'ip route del blackhole $SAFE 2>/dev/null || true' EXIT
ip route replace blackhole $SAFE

mkdir -p "$OUT"
echo "focus: $FOCUS"
echo "skip:  $SKIP"
echo "procs: $PROCS; reports and logs: $OUT"
rc=0
# shellcheck disable=SC2086 # E2E_ARGS is a list of flags
(cd "$OUT" && "$E/bin/ginkgo" -p --procs="$PROCS" --focus="$FOCUS" --skip="$SKIP" --timeout="${TIMEOUT:-55m}" \
	--no-color --silence-skips --output-dir="$OUT" --json-report=report.json --junit-report=junit.xml \
	"$E/bin/e2e.test" -- --kubeconfig="$KCFG" --provider=local --num-nodes="$NUM_NODES" --kubectl-path="$E/bin/kubectl" \
	--e2e-output-dir="$OUT" ${E2E_ARGS:-}) >"$OUT/ginkgo.log" 2>&1 || rc=$?
WALL=$(($(date +%s) - T0))

# The summary from ginkgo's JSON report: the specs the focus selects, by outcome.
jq -r --arg focus "$FOCUS" --arg skip "$SKIP" '
	[.[].SpecReports[] | select(.LeafNodeType == "It")
		| .name = ((.ContainerHierarchyTexts + [.LeafNodeText]) | join(" "))
		| select(.name | test($focus))] as $s
	| ($s | map(select(.name | test($skip)))) as $listed
	| ($s | map(select((.name | test($skip) | not) and .State == "skipped"))) as $self
	| ($s | map(select(.State | IN("failed", "panicked", "timedout", "interrupted", "aborted")))) as $failed
	| "selected by the focus: \($s | length)",
	  "passed: \($s | map(select(.State == "passed")) | length)",
	  "failed: \($failed | length)",
	  "skipped: \(($listed | length) + ($self | length)) (skip list \($listed | length), by the test itself \($self | length))",
	  ($self | map("  self-skipped: \(.name) -- \(.Failure.Message // "" | split("\n")[0])")[]),
	  ($failed | map("  FAILED: \(.name)\n    \(.Failure.Location.FileName // ""):\(.Failure.Location.LineNumber // "")\n    \(.Failure.Message // "" | split("\n")[0:3] | join("\n    "))")[])
' "$OUT/report.json" | tee "$OUT/summary.txt"
grep -E '^(Ran [0-9]+ of|FAIL!|SUCCESS!|Test Suite)' "$OUT/ginkgo.log" || tail -5 "$OUT/ginkgo.log"
echo "wall time: $((WALL / 60))m$((WALL % 60))s (procs $PROCS; build and import included)"
passed=$(sed -n 's/^passed: //p' "$OUT/summary.txt")
failed=$(sed -n 's/^failed: //p' "$OUT/summary.txt")
if [ "$rc" != 0 ] || [ "${failed:-1}" != 0 ] || [ "${passed:-0}" = 0 ]; then
	echo "conformance: FAIL (ginkgo exit $rc, $failed failed, $passed passed); log: $OUT/ginkgo.log" >&2
	exit 1
fi
echo "conformance: PASS"
