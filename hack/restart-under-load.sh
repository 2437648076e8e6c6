#!/usr/bin/env bash
# Restart-and-upgrade-under-load campaign: a simulated node (a network
# namespace with no uplink, socket LB on its own cgroup) is wired by the
# previous release (hack/upgrade-from: its sluice-agent and sluice-cni, built
# by hack/build-prev.sh into bin/prev, cached). Then TCP_CRR transactions run
# through a ClusterIP (each one connects, asks the backend's name with the
# bench's tcpcrr.Ask and checks it is one of the Service's backends) and
# long-lived streams echo random bytes that are compared end to end, while
# the agent is upgraded to this build, SIGKILLed and started again, and in
# each round trip stopped, replaced by the previous commit's agent (HEAD^1,
# built into bin/prev-commit, cached by commit) and back by this build's.
# Runs as root; removes everything it creates, also on failure.
#
#   hack/restart-under-load.sh           # 10 kills, 2 round trips, 3 s of load around each event
#   hack/restart-under-load.sh --quick   # 3 kills, 1 round trip, 2 s (CI, < 1 min)
#   hack/restart-under-load.sh --kills 5 --round-trips 0 --streams 40 --workers 4
#   PREV_COMMIT=<rev> hack/restart-under-load.sh   # round trips to another commit
#
# Output: the agent events, every failed transaction and broken stream with
# its time and the event before it, then
#   RESULT restart kills=<n> upgrades=<n> conn_attempts=<n> conn_failed=<n> streams_broken=<n>
# where upgrades counts agent binary switches (1 from the release, 2 per
# round trip). The exit status is 1 when a transaction failed or a stream
# broke.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
	echo "restart-under-load: needs root (network namespaces, BPF)" >&2
	exit 1
fi
make build >/dev/null
release=${SLUICE_PREV_BIN_DIR:-$PWD/bin/prev}
hack/build-prev.sh "$release"
hack/build-prev.sh bin/prev-commit "${PREV_COMMIT:-HEAD^1}"
go build -o bin/campaign ./test/campaign
exec bin/campaign restart --bin-dir bin --release-bin-dir "$release" --prev-bin-dir bin/prev-commit "$@"
