#!/bin/bash
# hack/local-cluster.sh up [--nodes N] [--routing native|vxlan] [--lb-acceleration MODE] | down | status | restart-apiserver: a real Kubernetes of
# one to three nodes on this machine with Sluice as the CNI and no kube-proxy.
#
# up:     builds what is missing (hack/k8s/build.sh, cached in $CACHE; ~13 min cold, seconds warm), `make image`, then starts
#         etcd, kube-apiserver, kube-controller-manager (allocating node PodCIDRs), kube-scheduler, containerd and kubelet,
#         each in its own process group with its PID recorded, and installs Sluice from install/helm/sluice (the agent
#         DaemonSet writes /etc/cni/net.d/05-sluice.conflist once it is up). --nodes N (1, the default, to 3) adds nodes
#         2..N (hack/k8s/node.sh, layout below); --routing (default native) is the chart's routing.mode for all of them.
#         --lb-acceleration (native|generic|disabled) is the chart's loadBalancer.acceleration: XDP NodePort on $EXTDEV.
#         Default: generic with one node, disabled with more. Generic because $EXTDEV is a veth whose peer is the outside
#         client's eth0: native XDP_TX onto a veth is delivered only if the peer runs an XDP program (or veth GRO/NAPI)
#         and sends full checksums (TX checksum offload off), which would need ethtool or a BPF loader here; generic XDP
#         transmits through the ordinary xmit path and needs neither (test/e2e/nodeport_xdp_test.go runs against it).
#         With more nodes $EXTDEV is a bridge (no native XDP) whose ports lead to veths: not exercised yet, so off.
# down:   deletes the workloads (CNI DEL runs), stops every recorded PID, and restores the host: mounts, netns, routes,
#         sysctls, cgroups, pins, iptables chains, files; every further node with all of it. Safe to run twice or after a
#         failed up.
# status: processes of every node, nodes, pods.
# restart-apiserver: stops kube-apiserver (by its PID) and starts it again with the same arguments; waits for /readyz.
# Safety: the pod CIDR and the service CIDR get blackhole routes (pod /32 routes are more specific), so nothing addressed
# to them can leave through the uplink. The socket load balancer attaches to the kubepods cgroup only.
# NodePort: the agent's host programs attach to a dedicated test device, never to the uplink: a veth pair $EXTDEV (host,
# $EXTNET.1) <-> eth0 in netns $EXTNS ($EXTNET.2), TEST-NET-2 addresses only (not the uplink's subnet, and not
# TEST-NET-3: the package registry these machines use answers inside 203.0.113.0/24, and a connected /24 there would capture it); e2e clients in $EXTNS reach $EXTNET.1:nodePort.
#
# Layout with --nodes N >= 2 (node 1 is the host, as with one node; its InternalIP is the uplink's address $HOSTIP):
#   underlay  $EXTDEV on the host is a bridge ($EXTNET.1/24): the L2 segment of every node and of the "external" client,
#             as a real cluster's LAN. Its ports: sluice-extp (peer: eth0 in $EXTNS, $EXTNET.2) and sluice-nK (peer:
#             $EXTDEV in netns sluice-nodeK, $EXTNET.1K = node K's InternalIP). A remote NodePort backend's reply thus
#             comes back through node 1's --devices device, where the host program translates it, as on a real LAN.
#             Node K's routes: $EXTNET.0/24 and $HOSTIP/32 on-link (the host answers ARP for its own address); no
#             default route, nothing toward the uplink. Pod routes (native) or the VXLAN device are the agents' own.
#             The host's route to node K is $EXTNET.1K/32 dev $EXTDEV src $HOSTIP: node 1 reaches the other nodes from
#             its InternalIP, as nodes of a real cluster do (source-IP checks, externalTrafficPolicy=Local).
#   node K    (hack/k8s/node.sh) containerd and kubelet of node sluice-nodeK (hostname-override; client certificate
#             system:node:sluice-nodeK) run in netns sluice-nodeK, in a mount namespace of their own (slave of the
#             host's, kept in $R/nodes/sluice-nodeK/ns/mnt), in a cgroup namespace rooted at /sluice-nodeK of every
#             hierarchy ($R/nodes/sluice-nodeK/ns/cgroup) and in a UTS namespace with hostname sluice-nodeK
#             ($R/nodes/sluice-nodeK/ns/uts; its hostNetwork pods report it, as on a real node). There: sysfs of its netns on /sys, its own bpffs on /sys/fs/bpf
#             (shared), its cgroup hierarchies on /sys/fs/cgroup (its kubepods is /sys/fs/cgroup/unified/kubepods in its
#             view: the chart's one --cgroup-root fits), and $R/nodes/sluice-nodeK/{run,cni-conf,cni-lib,log} over /run
#             (/run/sluice, /run/netns, containerd's shims), /etc/cni/net.d, /var/lib/cni and /var/log. /opt/cni/bin is
#             the host's. Its containerd socket: $R/nodes/sluice-nodeK/containerd.sock (hack/k8s/lib.sh node_sockets);
#             the agent's API socket, from the host: $R/nodes/sluice-nodeK/run/sluice/agent.sock.
#   Sluice    one rendered chart for all nodes (--devices=$EXTDEV exists on each; the SNAT and VXLAN address of node K
#             is its InternalIP; node 1's SNAT address is $EXTNET.1, on the same segment).
# Knobs (env): CACHE (default /var/cache/sluice-k8s).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-/var/cache/sluice-k8s}
R=$CACHE/run
P=$R/pki L=$R/logs
BIN=$CACHE/bin
POD_CIDR=10.244.0.0/16 SVC_CIDR=10.96.0.0/16 METRIC=4242
EXTNS=sluice-e2e-ext EXTDEV=sluice-ext0 EXTNET=198.51.100
KC="kubectl --kubeconfig $P/admin.kubeconfig"
export PATH=$BIN:$PATH

uplink() { ip -4 -o route show default | awk '{print $5; exit}'; }
HOSTIP=$(ip -4 -o addr show dev "$(uplink)" | awk '{print $4; exit}' | cut -d/ -f1)
NODE=$(hostname)

# shellcheck source=hack/k8s/lib.sh
. "$REPO/hack/k8s/lib.sh"
# shellcheck source=hack/k8s/node.sh
. "$REPO/hack/k8s/node.sh"
NODES=1 ROUTING=native LBACCEL=
start() { # name cmd...
	local n=$1
	shift
	setsid "$@" >"$L/$n.log" 2>&1 </dev/null &
	echo $! >"$R/pids/$n.pid"
	echo "started $n (pid $!)"
}
stop() { # name: SIGTERM the recorded process group, wait up to 20s, then SIGKILL
	local f=$R/pids/$1.pid p
	[ -f "$f" ] || return 0
	p=$(cat "$f")
	if kill -0 "$p" 2>/dev/null; then
		kill -- "-$p" 2>/dev/null || kill "$p"
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$p" 2>/dev/null && kill -9 -- "-$p" 2>/dev/null
		echo "stopped $1 ($p)"
	fi
	rm -f "$f"
}

start_apiserver() { # the one definition of the API server's arguments (up and restart-apiserver)
	start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
		--advertise-address="$HOSTIP" --secure-port=6443 \
		--tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
		--token-auth-file="$P/tokens.csv" --authorization-mode=Node,RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
		--service-cluster-ip-range=$SVC_CIDR --allow-privileged=true --cert-dir="$R/apiserver-certs" \
		--kubelet-preferred-address-types=InternalIP,Hostname
	waitfor kube-apiserver 120 $KC get --raw /readyz
}

# restart-apiserver: stop kube-apiserver by its recorded PID and start it again with the same arguments (the e2e
# API-server-restart test). The log of the previous run is kept as kube-apiserver.log.<n>.
restart_apiserver() {
	if ! alive kube-apiserver; then
		echo "kube-apiserver is not running: $0 up first" >&2
		exit 1
	fi
	local n=1
	while [ -e "$L/kube-apiserver.log.$n" ]; do n=$((n + 1)); done
	stop kube-apiserver
	cp "$L/kube-apiserver.log" "$L/kube-apiserver.log.$n"
	start_apiserver
}

up() {
	local t0
	t0=$(date +%s)
	if ls "$R"/pids/*.pid >/dev/null 2>&1; then
		echo "already up (or not cleanly down): run $0 down first" >&2
		exit 1
	fi
	# 1. build (cached) and the Sluice image
	# A failed build is fatal (pipefail: build.sh's status is the pipeline's), or stale binaries from the cache would run;
	# only the filter's "no line matched" is forgiven.
	CACHE=$CACHE "$REPO/hack/k8s/build.sh" | { grep -E '^(TIME|build total)' || true; }
	make -C "$REPO" -s image IMAGE=sluice.local/sluice:dev IMAGE_TAR="$CACHE/images/sluice.tar"
	rm -rf "$R/etcd" "$R/containerd" "$R/kubelet" "$R/pod-logs" "$R/apiserver-certs" "$P"
	mkdir -p "$R/pids" "$L" "$R/conf"
	# 2. host state recorded for down (kept from an earlier up that failed half-way: that one saw the pristine host)
	[ -f "$R/host-orig.env" ] || {
		echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward) overcommit=$(cat /proc/sys/vm/overcommit_memory)"
		echo "panic=$(cat /proc/sys/kernel/panic) panic_on_oops=$(cat /proc/sys/kernel/panic_on_oops) panic_on_oom=$(cat /proc/sys/vm/panic_on_oom)"
		echo "preexisting_netns='$(ls /run/netns 2>/dev/null | tr '\n' ' ')' had_run_containerd=$([ -e /run/containerd ] && echo 1 || echo 0)"
		echo "had_bpffs=$(mountpoint -q /sys/fs/bpf && echo 1 || echo 0) had_cni_dir=$([ -d /etc/cni/net.d ] && echo 1 || echo 0)"
		echo "had_optcni=$([ -d /opt/cni/bin ] && echo 1 || echo 0) had_ipam=$([ -d /var/lib/cni ] && echo 1 || echo 0)"
		echo "had_runsluice=$([ -e /var/run/sluice ] && echo 1 || echo 0)"
		echo "cni_bins='$(ls /opt/cni/bin 2>/dev/null | tr '\n' ' ')'"
	} >"$R/host-orig.env"
	# 3. safety routes, bpffs (shared, so the agent's Bidirectional mount works on this private-propagation root)
	ip route replace blackhole $POD_CIDR metric $METRIC
	ip route replace blackhole $SVC_CIDR metric $METRIC
	if ! mountpoint -q /sys/fs/bpf; then mount -t bpf bpffs /sys/fs/bpf; fi
	mount --make-shared /sys/fs/bpf
	# the NodePort test device (see the header)
	if ip -4 -o addr show | grep -q " inet $EXTNET\." || ip -4 route show | grep -q "^$EXTNET\."; then
		echo "$EXTNET.0/24 is in use on this host: pick another EXTNET" >&2
		exit 1
	fi
	# nothing the host really talks to may live in the test subnet (a connected route would capture it)
	for h in proxy.golang.org deb.debian.org; do
		if getent ahostsv4 $h 2>/dev/null | awk '{print $1}' | grep -q "^$EXTNET\."; then
			echo "$h resolves into $EXTNET.0/24: pick another EXTNET" >&2
			exit 1
		fi
	done
	ip netns add $EXTNS
	if [ "$NODES" = 1 ]; then
		ip link add $EXTDEV type veth peer name eth0 netns $EXTNS
	else # the underlay bridge (see the header), with a fixed MAC (a bridge's follows its ports otherwise)
		ip link add $EXTDEV address 02:00:c6:33:64:01 type bridge
		ip link add sluice-extp type veth peer name eth0 netns $EXTNS
		ip link set sluice-extp master $EXTDEV up
	fi
	ip addr add $EXTNET.1/24 dev $EXTDEV
	ip link set $EXTDEV up
	ip -n $EXTNS addr add $EXTNET.2/24 dev eth0
	ip -n $EXTNS link set eth0 up
	ip -n $EXTNS link set lo up
	# 4. certs and configs
	"$REPO/hack/k8s/pki.sh" "$P" "$NODE" "$HOSTIP" $(for k in $(seq 2 "$NODES"); do echo "sluice-node$k"; done)
	for f in containerd.toml kubelet.yaml; do sed "s#@RUN@#$R#g" "$REPO/hack/k8s/conf/$f.in" >"$R/conf/$f"; done
	# 5. control plane
	start etcd "$BIN/etcd" --name default --data-dir "$R/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster default=http://127.0.0.1:2380
	waitfor etcd 60 curl -sf http://127.0.0.1:2379/health
	start_apiserver
	start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$P/kcm.kubeconfig" \
		--leader-elect=false --bind-address=127.0.0.1 --root-ca-file="$P/ca.crt" \
		--service-account-private-key-file="$P/sa.key" --use-service-account-credentials=true \
		--cluster-cidr=$POD_CIDR --allocate-node-cidrs=true --node-cidr-mask-size=24
	start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$P/scheduler.kubeconfig" \
		--leader-elect=false --bind-address=127.0.0.1
	# 6. containerd with the local images, then kubelet
	mkdir -p "$R/containerd"
	start containerd containerd --config "$R/conf/containerd.toml"
	waitfor containerd 60 ctr --address "$R/containerd.sock" version
	for t in "$CACHE"/images/*.tar; do ctr --address "$R/containerd.sock" -n k8s.io images import "$t" >/dev/null; done
	start kubelet "$BIN/kubelet" --config="$R/conf/kubelet.yaml" --kubeconfig="$P/kubelet.kubeconfig" \
		--root-dir="$R/kubelet" --node-ip="$HOSTIP" --hostname-override="$NODE" --v=1
	# further nodes: their mount namespaces bind their own directories over these (created here, removed by down
	# unless the host had them)
	[ "$NODES" = 1 ] || mkdir -p /etc/cni/net.d /var/lib/cni /opt/cni/bin
	for k in $(seq 2 "$NODES"); do node_up "$k"; done
	for n in "$NODE" $(for k in $(seq 2 "$NODES"); do echo "sluice-node$k"; done); do
		waitfor "node $n registered" 60 $KC get node "$n"
	done
	# 7. Sluice from the chart: agent on the host's API server address (no kube-proxy serves the kubernetes Service yet)
	"$REPO/hack/k8s/render.sh" --set apiServer.host="$HOSTIP" --set image.pullPolicy=Never \
		--set socketLB.cgroupRoot=/sys/fs/cgroup/unified/kubepods --set devices=$EXTDEV \
		--set routing.mode="$ROUTING" --set loadBalancer.acceleration="$LBACCEL" >"$R/sluice.yaml"
	$KC apply -f "$R/sluice.yaml" >/dev/null
	waitfor "sluice-agent DaemonSet" 180 sh -c "$KC -n kube-system rollout status ds/sluice-agent --timeout=5s"
	waitfor "$NODES node(s) Ready" 120 sh -c "[ \$($KC get nodes -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}' | grep -o True | wc -l) = $NODES ]"
	"$REPO/hack/k8s/coredns.sh" "$P/admin.kubeconfig" # cluster DNS (kube-dns 10.96.0.10, kubelet's clusterDNS)
	echo "cluster up in $(($(date +%s) - t0))s; kubeconfig: $P/admin.kubeconfig"
}

down() {
	local t0
	t0=$(date +%s)
	# 1. workloads first while everything runs, so kubelet tears pods down with CNI DEL
	if alive kube-apiserver && alive kubelet; then
		$KC delete ns -l sluice-e2e --wait=true --timeout=60s 2>/dev/null || true
		$KC delete pod --all -n default --wait=true --timeout=60s 2>/dev/null || true
	fi
	# 2. further nodes, whole; then node 1's leftover sandboxes (the agent's included) through CRI and its processes
	for n in $(node_names); do node_down "$n"; done
	rmdir "$R/nodes" 2>/dev/null || true
	stop kubelet
	if alive containerd && [ -x "$BIN/crimini" ]; then CRI_ENDPOINT=unix://$R/containerd.sock "$BIN/crimini" rmp || true; fi
	stop containerd
	# shims our containerd started (found by our socket path in their command line), by PID
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $R/containerd.sock" || true); do kill "$p" 2>/dev/null || true; done
	sleep 1
	for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop $n; done
	# 3. mounts under our tree and the CNI netns
	for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^$R/|^/run/netns/cni-" | sort -r); do umount "$m" 2>/dev/null || umount -l "$m"; done
	if [ -f "$R/host-orig.env" ]; then . "$R/host-orig.env"; fi
	for n in $(ls /run/netns 2>/dev/null | grep '^cni-' || true); do
		case " ${preexisting_netns:-} " in *" $n "*) continue ;; esac
		rm -f "/run/netns/$n"
	done
	# 4. Sluice's host state: pins (links pinned there detach with them), run dir, CNI files. Each step tolerates
	#    "already gone", so down can run again after a partial one.
	rm -rf /sys/fs/bpf/sluice
	if [ "${had_bpffs:-1}" = 0 ] && mountpoint -q /sys/fs/bpf; then umount /sys/fs/bpf || umount -l /sys/fs/bpf; fi
	if [ "${had_runsluice:-1}" = 0 ]; then rm -rf /var/run/sluice; fi
	rm -f /etc/cni/net.d/05-sluice.conflist
	if [ "${had_cni_dir:-1}" = 0 ]; then rmdir /etc/cni/net.d /etc/cni 2>/dev/null || true; fi
	for b in sluice-cni host-local loopback; do
		case " ${cni_bins-sluice-cni host-local loopback} " in *" $b "*) ;; *) rm -f "/opt/cni/bin/$b" ;; esac
	done
	rm -f /opt/cni/bin/.sluice-cni.* /opt/cni/bin/.host-local.* /opt/cni/bin/.loopback.*
	if [ "${had_optcni:-1}" = 0 ]; then rmdir /opt/cni/bin /opt/cni 2>/dev/null || true; fi
	rm -rf /var/lib/cni/networks/sluice
	if [ "${had_ipam:-1}" = 0 ]; then rm -rf /var/lib/cni; fi
	# 5. network: pod veths left without a netns, safety routes, kubelet's iptables chains
	for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^lxc' || true); do
		ip link del "$v" 2>/dev/null || true
	done
	ip netns del $EXTNS 2>/dev/null || true
	ip link del $EXTDEV 2>/dev/null || true
	ip link del sluice-extp 2>/dev/null || true
	ip link del sluice_vxlan 2>/dev/null || true
	while ip rule del table 2111 2>/dev/null; do :; done # the agent's VXLAN node-IP rules (agent/nodemgr NodeTable)
	ip route del blackhole $POD_CIDR metric $METRIC 2>/dev/null || true
	ip route del blackhole $SVC_CIDR metric $METRIC 2>/dev/null || true
	for ipt in iptables ip6tables; do
		command -v $ipt >/dev/null || continue
		for t in filter nat mangle; do
			{ $ipt -t $t -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*KUBE-' || true; } |
				sed 's/^-A/-D/' | while read -r r; do eval $ipt -t $t $r; done
			for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -F "$c" || true; done
			for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -X "$c" || true; done
		done
	done
	# 6. cgroups kubelet and containerd made (deepest first)
	for h in /sys/fs/cgroup/*/; do for d in kubepods k8s.io; do
		if [ -d "$h$d" ]; then find "$h$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
	done; done
	# 7. sysctls kubelet and the agent changed
	if [ -n "${ip_forward:-}" ]; then
		sysctl -qw net.ipv4.ip_forward="$ip_forward" vm.overcommit_memory="$overcommit" kernel.panic="$panic" \
			kernel.panic_on_oops="$panic_on_oops" vm.panic_on_oom="$panic_on_oom"
	fi
	# containerd 1.6 keeps shim sockets and runc state under /run/containerd (hardcoded)
	if [ "${had_run_containerd:-1}" = 0 ]; then rm -rf /run/containerd; fi
	rm -f "$R/host-orig.env"
	echo "down in $(($(date +%s) - t0))s"
}

status() {
	for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet \
		$(for k in $(node_names); do echo "$k-containerd $k-kubelet"; done); do
		if alive $n; then echo "$n: running (pid $(cat "$R/pids/$n.pid"))"; else echo "$n: not running"; fi
	done
	if alive kube-apiserver; then
		$KC get nodes -o wide || true
		$KC get pods -A -o wide || true
	fi
	ip route show | grep -E "^blackhole ($POD_CIDR|$SVC_CIDR)" || true
}

# up's flags
flags() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--nodes) NODES=${2:-} && shift ;;
		--routing) ROUTING=${2:-} && shift ;;
		--lb-acceleration) LBACCEL=${2:-} && shift ;;
		*) echo "up: unknown flag $1" >&2 && exit 2 ;;
		esac
		shift
	done
	case "$NODES" in 1 | 2 | 3) ;; *) echo "up: --nodes must be 1, 2 or 3" >&2 && exit 2 ;; esac
	case "$ROUTING" in native | vxlan) ;; *) echo "up: --routing must be native or vxlan" >&2 && exit 2 ;; esac
	if [ -z "$LBACCEL" ]; then
		if [ "$NODES" = 1 ]; then LBACCEL=generic; else LBACCEL=disabled; fi
	fi
	case "$LBACCEL" in native | generic | disabled) ;; *) echo "up: --lb-acceleration must be native, generic or disabled" >&2 && exit 2 ;; esac
}

case "${1:-}" in
up)
	shift
	flags "$@"
	up
	;;
down) down ;;
status) status ;;
restart-apiserver) restart_apiserver ;;
*)
	echo "usage: $0 up [--nodes 1|2|3] [--routing native|vxlan] [--lb-acceleration native|generic|disabled] | down | status | restart-apiserver" >&2
	exit 2
	;;
esac
