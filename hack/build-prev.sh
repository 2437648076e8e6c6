#!/usr/bin/env bash
# Builds the agent, CNI plugin and CLI of the previous release (the commit in
# hack/upgrade-from) into DIR, for the upgrade test
# (test/integration TestPrivilegedUpgradeFromPreviousBuild, which reads
# SLUICE_PREV_BIN_DIR). The commit is checked out with `git worktree add
# --detach` in a temporary directory that is removed afterwards. It fails
# loudly when the commit is not in the repository.
#
# With COMMIT (any revision, e.g. HEAD^1), it builds that commit instead
# (hack/restart-under-load.sh switches between the previous commit and this
# build).
#
# usage: hack/build-prev.sh DIR [COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: hack/build-prev.sh DIR [COMMIT]}
rev=${2:-$(tr -d '[:space:]' <hack/upgrade-from)}
if ! commit=$(git rev-parse --verify --quiet "${rev}^{commit}"); then
	src=${2:+given as an argument}
	echo "build-prev: commit $rev (${src:-from hack/upgrade-from}) is not in this repository; fetch it" >&2
	exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Reuse a previous build of the same commit.
if [[ -f $out/.commit && $(cat "$out/.commit") == "$commit" ]] &&
	[[ -x $out/sluice-agent && -x $out/sluice-cni && -x $out/sluice ]]; then
	exit 0
fi

tmp=$(mktemp -d /tmp/sluice-prev.XXXXXX)
cleanup() {
	git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --detach --quiet "$tmp/src" "$commit"
echo "build-prev: building $commit into $out" >&2
(cd "$tmp/src" && go build -o "$out/" ./cmd/sluice-agent ./cmd/sluice-cni ./cmd/sluice)
echo "$commit" >"$out/.commit"
