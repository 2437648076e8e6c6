#!/bin/bash
# hack/k8s/node.sh: the further nodes (k = 2, 3) of `hack/local-cluster.sh up --nodes N`; the layout is in that script's
# header. Sourced by local-cluster.sh for node_up and node_down (they use its variables and start/stop); executed as
#   node.sh enter NODEDIR CMD...   runs CMD as a process of the node whose directory is NODEDIR ($R/nodes/NAME): in its
#                                  cgroups, then (nsenter) its network, mount, cgroup and UTS namespaces;
#   node.sh mount-setup NODEDIR    (node_up, inside the node's new mount namespace) mounts the node's own filesystems.

# node_up K: creates node sluice-nodeK and starts its containerd (with the cached images) and kubelet.
node_up() {
	local k=$1 n=sluice-node$1 ip=$EXTNET.1$1 nr=$R/nodes/sluice-node$1 h
	rm -rf "$nr"
	mkdir -p "$nr"/ns "$nr"/run/netns "$nr"/run/lock "$nr"/cni-conf "$nr"/cni-lib "$nr"/log "$nr"/conf
	# network: its underlay end, named like node 1's test device so the chart's one --devices fits every node
	ip netns add "$n"
	ip link add "sluice-n$k" type veth peer name $EXTDEV netns "$n"
	ip link set "sluice-n$k" master $EXTDEV up
	ip -n "$n" link set lo up
	ip -n "$n" addr add "$ip/24" dev $EXTDEV
	ip -n "$n" link set $EXTDEV up
	ip -n "$n" route add "$HOSTIP/32" dev $EXTDEV
	# the host reaches node K from its InternalIP, as a real node from its own address (the connected /24 route's
	# source would be $EXTNET.1, which source-IP checks such as externalTrafficPolicy=Local's see as a stranger)
	ip route replace "$ip/32" dev $EXTDEV src "$HOSTIP"
	ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
	# cgroups: /NAME in every hierarchy (cpuset needs its cpus and mems before a process may join)
	for h in /sys/fs/cgroup/*/; do mkdir -p "$h$n"; done
	if [ -d /sys/fs/cgroup/cpuset/"$n" ]; then
		cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/"$n"/cpuset.cpus
		cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/"$n"/cpuset.mems
	fi
	# mount and cgroup namespaces, kept by bind mounts of their files (on a private mount, as unshare wants)
	findmnt -rn -t cgroup,cgroup2 -o TARGET,FSTYPE,FS-OPTIONS | grep '^/sys/fs/cgroup/' >"$nr/cgroup-mounts"
	mount --bind "$nr/ns" "$nr/ns"
	mount --make-private "$nr/ns"
	touch "$nr/ns/mnt" "$nr/ns/cgroup" "$nr/ns/uts"
	(
		node_join_cgroups "$n" "$BASHPID"
		exec nsenter --net=/run/netns/"$n" unshare --mount="$nr/ns/mnt" --cgroup="$nr/ns/cgroup" --uts="$nr/ns/uts" \
			--propagation slave \
			"$REPO/hack/k8s/node.sh" mount-setup "$nr"
	)
	# containerd and kubelet from the same templates as node 1's
	for f in containerd.toml kubelet.yaml; do sed "s#@RUN@#$nr#g" "$REPO/hack/k8s/conf/$f.in" >"$nr/conf/$f"; done
	start "$n-containerd" "$REPO/hack/k8s/node.sh" enter "$nr" containerd --config "$nr/conf/containerd.toml"
	waitfor "$n containerd" 60 ctr --address "$nr/containerd.sock" version
	for t in "$CACHE"/images/*.tar; do ctr --address "$nr/containerd.sock" -n k8s.io images import "$t" >/dev/null; done
	start "$n-kubelet" "$REPO/hack/k8s/node.sh" enter "$nr" "$BIN/kubelet" --config="$nr/conf/kubelet.yaml" \
		--kubeconfig="$P/kubelet-$n.kubeconfig" --root-dir="$nr/kubelet" --node-ip="$ip" --hostname-override="$n" --v=1
}

# node_down NAME: removes node NAME and everything of it; tolerates "already gone" (down may run twice).
node_down() {
	local n=$1 nr=$R/nodes/$1 h m
	stop "$n-kubelet"
	if alive kube-apiserver; then $KC delete node "$n" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
	if alive "$n-containerd" && [ -x "$BIN/crimini" ]; then CRI_ENDPOINT=unix://$nr/containerd.sock "$BIN/crimini" rmp || true; fi
	stop "$n-containerd"
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $nr/containerd.sock" || true); do kill "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do pgrep -f "containerd-shim-runc-v2 .*-address $nr/containerd.sock" >/dev/null || break; sleep 0.2; done
	# a container the runtime could not stop is still in the node's cgroups: end it by its PID
	for p in $(node_procs "$n"); do
		echo "$n: ending leftover process $p ($(cat /proc/"$p"/comm 2>/dev/null))"
		kill -9 "$p" 2>/dev/null || true
	done
	for _ in $(seq 25); do [ -z "$(node_procs "$n")" ] && break; sleep 0.2; done
	# the namespaces go with their last process and the bind mounts of their files
	for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^$nr/" | sort -r); do umount "$m" 2>/dev/null || umount -l "$m"; done
	ip netns del "$n" 2>/dev/null || true
	ip route del "$EXTNET.1${n#sluice-node}/32" dev $EXTDEV 2>/dev/null || true
	ip link del "sluice-n${n#sluice-node}" 2>/dev/null || true
	for h in /sys/fs/cgroup/*/; do
		if [ -d "$h$n" ]; then find "$h$n" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
	done
	rm -rf "$nr"
}

# node_names: the further nodes this run directory or the host still has (for down and status).
node_names() {
	{
		ls "$R/nodes" 2>/dev/null || true
		ls /run/netns 2>/dev/null | grep '^sluice-node' || true
	} | sort -u
}

# node_procs NAME: the PIDs in node NAME's cgroups.
node_procs() { find /sys/fs/cgroup/pids/"$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true; }

# node_join_cgroups NAME PID: moves PID into /NAME of every cgroup hierarchy.
node_join_cgroups() {
	local h
	for h in /sys/fs/cgroup/*/; do echo "$2" >"$h$1/cgroup.procs"; done
}

# mount-setup NODEDIR (inside the new mount namespace, in the node's netns and cgroup namespace): sysfs of this netns,
# the cgroup hierarchies rooted at the node's cgroup, a bpffs of its own (shared, for the agent's Bidirectional
# volume), and the node's directories over the host's.
mount_setup() {
	local nr=$1 dir fs opts
	umount -R /sys # the host's sysfs and what is mounted on it (cgroups, bpffs): out of sight is not enough
	mount -t sysfs sysfs /sys
	mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
	while read -r dir fs opts; do
		mkdir -p "$dir"
		mount -t "$fs" -o "$opts" cgroup "$dir"
	done <"$nr/cgroup-mounts"
	mount -t bpf bpffs /sys/fs/bpf
	mount --make-shared /sys/fs/bpf
	mount --bind "$nr/run" /run
	mount --bind "$nr/cni-conf" /etc/cni/net.d
	mount --bind "$nr/cni-lib" /var/lib/cni
	mount --bind "$nr/log" /var/log
	hostname "${nr##*/}" # its own UTS namespace: hostNetwork pods of node K report sluice-nodeK
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case "${1:-}" in
	enter)
		nr=$2
		shift 2
		node_join_cgroups "${nr##*/}" $$
		exec nsenter --net=/run/netns/"${nr##*/}" --mount="$nr/ns/mnt" --cgroup="$nr/ns/cgroup" --uts="$nr/ns/uts" "$@"
		;;
	mount-setup) mount_setup "$2" ;;
	*)
		echo "usage: $0 enter NODEDIR CMD... | mount-setup NODEDIR (node_up and node_down: sourced by local-cluster.sh)" >&2
		exit 2
		;;
	esac
fi
