#!/usr/bin/env bash
# hack/check-test-log.sh privileged|e2e|multinode LOG: the skip gate over a `go test -v` log.
#
# Looks at every result line of the tests of one family (TestPrivileged* for
# privileged, TestE2E* for e2e, TestMultiNode* for multinode), top-level tests and their subtests at any
# depth (a subtest's name starts with its parent's), and fails when
#   - no test of the family passed (none ran, or the family was filtered out), or
#   - a test or subtest of the family was skipped: CI runs them on a kernel
#     that has every feature they need, so a skip only hides what was not
#     exercised (e.g. SLUICE_PRIVILEGED_TESTS or SLUICE_E2E unset).
# It prints the counts, and the skipped tests with their reasons.
set -euo pipefail

usage() { echo "usage: $0 privileged|e2e|multinode LOG" >&2; exit 2; }
(($# == 2)) || usage
case $1 in
privileged) prefix=TestPrivileged ;;
e2e) prefix=TestE2E ;;
multinode) prefix=TestMultiNode ;;
*) usage ;;
esac
log=$2
[[ -r $log ]] || { echo "check-test-log: cannot read $log" >&2; exit 2; }

count() { # result top|sub: lines of that result for the family's tests or subtests
	local indent=''
	[[ $2 == sub ]] && indent='[[:space:]]+'
	grep -cE "^$indent--- $1: $prefix" "$log" || true
}
pass=$(count PASS top) fail=$(count FAIL top) skip=$(count SKIP top)
spass=$(count PASS sub) sfail=$(count FAIL sub) sskip=$(count SKIP sub)
echo "$1 tests: $pass passed, $fail failed, $skip skipped; subtests: $spass passed, $sfail failed, $sskip skipped"

rc=0
if ((pass == 0)); then
	echo "check-test-log: no $prefix* test passed (none ran, or all were skipped or failed)" >&2
	rc=1
fi
if ((skip + sskip > 0)); then
	echo "check-test-log: $((skip + sskip)) $prefix* tests or subtests were skipped:" >&2
	# Each skipped test with what it logged (its reason): go test -v prints a test's log lines under its
	# `=== RUN|CONT|NAME` line, and the result lines (subtests' with their parent's) later.
	awk -v prefix="$prefix" '
		NR == FNR {
			if (match($0, "^[[:space:]]*--- SKIP: " prefix)) { n = $3; if (!(n in skipped)) order[++k] = n; skipped[n] = 1 }
			next
		}
		/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; next }
		/^[[:space:]]*--- / || /^(ok|FAIL|PASS)/ { cur = ""; next }
		cur in skipped { reason[cur] = reason[cur] "\n" $0 }
		END { for (i = 1; i <= k; i++) print "--- SKIP: " order[i] reason[order[i]] }
	' "$log" "$log" >&2
	rc=1
fi
exit "$rc"
