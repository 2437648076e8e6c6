# shellcheck shell=bash
# Shared by hack/local-cluster.sh and hack/k8s/bench-crr-cluster.sh (sourced; both set $R, the run directory).

# alive NAME: the process local-cluster.sh recorded as $R/pids/NAME.pid is running.
alive() { [ -f "$R/pids/$1.pid" ] && kill -0 "$(cat "$R/pids/$1.pid")" 2>/dev/null; }

# waitfor WHAT TIMEOUT-SECONDS CMD...: runs CMD every 0.5 s until it succeeds (then says so unless WAITFOR_QUIET=1), or
# fails after TIMEOUT-SECONDS.
waitfor() {
	local w=$1 to=$2 s
	shift 2
	s=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		if [ $(($(date +%s) - s)) -ge "$to" ]; then
			echo "timed out after ${to}s waiting for $w" >&2
			return 1
		fi
		sleep 0.5
	done
	[ "${WAITFOR_QUIET:-0}" = 1 ] || echo "$w ready after $(($(date +%s) - s))s"
}

# node_sockets: the containerd socket of every node of the local cluster that is up, node 1 first, one a line (node K's
# containerd runs in its own namespaces, but its socket is a file the host reaches). To import an image into every node:
#   for s in $(node_sockets); do ctr --address "$s" -n k8s.io images import IMAGE.tar; done
# (local-cluster.sh up imports every $CACHE/images/*.tar into each node by itself.)
node_sockets() {
	local s
	for s in "$R/containerd.sock" "$R"/nodes/*/containerd.sock; do
		if [ -S "$s" ]; then echo "$s"; fi
	done
}
