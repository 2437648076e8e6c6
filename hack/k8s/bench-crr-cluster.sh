#!/bin/bash
# hack/k8s/bench-crr-cluster.sh (run as `hack/bench-crr.sh --cluster`): TCP_CRR on the real node of hack/local-cluster.sh,
# Sluice (socket LB) vs the real kube-proxy in iptables mode (the same Kubernetes build, $CACHE/bin/kube-proxy), with
# 1 / 1 000 / 10 000 Services created through the API, and the direct pod IP as the baseline.
#
#   hack/bench-crr.sh --cluster            # 3 samples of 5 s per case
#   hack/bench-crr.sh --cluster --quick    # 1 sample of 2 s per case
#   hack/bench-crr.sh --cluster --services 1,1000 --rounds 2 --duration 3s --workers 4
#
# Topology: two backend pods (pod network, `crr serve`) and a client pod with hostNetwork (`crr run`, through kubectl
# exec). The client is on the host network because Sluice's pod datapath delivers a backend's reply straight into a
# local client pod (bpf_redirect_peer), past the host's conntrack: kube-proxy's DNAT could never be reversed for a
# pod-network client on this node. From the host network both implementations see the same path: the client's
# connect() (Sluice: cgroup socket LB, the client pod is in the kubepods cgroup) or the host's nat OUTPUT chain
# (kube-proxy), then the host routes to the backend's veth; the reply leaves the pod into the host stack.
#
# Configurations never overlap:
#   direct, sluice    the normal cluster: agent with --socket-lb=true, kube-proxy not running, no KUBE-* rules.
#   iptables          the agent redeployed with --socket-lb=false (same rendered manifest, that flag flipped), then
#                     kube-proxy started. Sluice then translates nothing on the client's path: its only other service
#                     translation is per packet on the pods' veths (from_container, packets a pod sends) and on the
#                     NodePort device, neither of which this host-network client's packets cross. Before kube-proxy
#                     starts, the script checks that the measured ClusterIP does not answer (nobody translates it).
# Per service count, once the Services exist: --rounds rounds, each with a Sluice phase and a kube-proxy phase whose
# order alternates (odd rounds Sluice first, even rounds kube-proxy first), so neither always runs first. Every phase
# waits for its implementation to answer, for every EndpointSlice and for the machine to be quiet (settle: under --quiet
# percent CPU busy over 3 s, twice running; the 2-core node's control plane digests 10 000 Service creates for minutes),
# then measures direct (the two pod IPs, a backend at random per connection), the implementation, and direct again.
# A configuration's ratio is its sample over the mean of the two directs of its own phase, median over the rounds; the
# directs' second-over-first is the method's noise (self_ratio). Direct in the kube-proxy phase is `direct-kp`: with
# kube-proxy running, every new connection from the host, service or not, walks the nat OUTPUT chain's KUBE-SERVICES
# list (a direct connection matches no rule, so it walks all of them); iptables is therefore also given over the Sluice
# phase's direct of the same round (ratio_nokp), which charges kube-proxy that walk.
# At the end (also on failure or ^C): kube-proxy stopped and `kube-proxy --cleanup`, the normal agent manifest applied, the benchmark namespace deleted.
#
# Output: a table, then `RESULT config=<sluice|iptables> services=<n> tps=<median> ratio_direct=<x.xx> ratio_min= ratio_max=`
# (iptables also ratio_nokp=), `RESULT config=<direct|direct-kp> services=<n> tps=<median> self_ratio= self_min= self_max=` and
# `RESULT config=program-<sluice|iptables> services=<n> seconds=<x>`: Sluice, from the return of the last Service create
# until that Service answers (how far the agent lags the API); kube-proxy, from its start until the last Service answers
# (a full sync of n Services; median over its starts). `SETTLE` lines say how long the machine took to be quiet.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-/var/cache/sluice-k8s}
R=$CACHE/run
P=$R/pki L=$R/logs BIN=$CACHE/bin
KC="kubectl --kubeconfig $P/admin.kubeconfig"
NS=crr-bench IMG=sluice.local/crr:1 PORT=8080
SERVICES=1,1000,10000 ROUNDS=3 DURATION=5s WARMUP=1s WORKERS=4 QUIET=25 SETTLE_MAX=600
while [ $# -gt 0 ]; do
	case $1 in
	--cluster) ;;
	--quick) ROUNDS=1 DURATION=2s WARMUP=500ms ;;
	--services) SERVICES=$2 && shift ;;
	--rounds) ROUNDS=$2 && shift ;;
	--duration) DURATION=$2 && shift ;;
	--warmup) WARMUP=$2 && shift ;;
	--workers) WORKERS=$2 && shift ;;
	--quiet) QUIET=$2 && shift ;;
	--settle-max) SETTLE_MAX=$2 && shift ;;
	-h | --help) sed -n '2,40p' "$0" && exit 0 ;;
	*) echo "bench-crr --cluster: unknown flag $1" >&2 && exit 2 ;;
	esac
	shift
done

# shellcheck source=hack/k8s/lib.sh
. "$REPO/hack/k8s/lib.sh"
WAITFOR_QUIET=1
for n in kube-apiserver kubelet containerd; do
	alive $n || { echo "bench-crr --cluster: $n is not running: hack/local-cluster.sh up first" >&2 && exit 1; }
done
[ -f "$R/sluice.yaml" ] || { echo "bench-crr --cluster: $R/sluice.yaml missing (rendered by local-cluster.sh up)" >&2 && exit 1; }
alive kube-proxy && { echo "bench-crr --cluster: a kube-proxy is running already" >&2 && exit 1; }
grep -q -- '--socket-lb=true' "$R/sluice.yaml" || { echo "bench-crr --cluster: the agent manifest has no --socket-lb=true" >&2 && exit 1; }

now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }

# --- agent modes and kube-proxy -------------------------------------------------------------------------------------
agent_mode() { # true|false: the agent's --socket-lb, rolled out and ready
	sed "s/--socket-lb=true/--socket-lb=$1/" "$R/sluice.yaml" | $KC apply -f - >/dev/null
	$KC -n kube-system rollout status ds/sluice-agent --timeout=180s >/dev/null
	echo "agent: --socket-lb=$1 (rolled out)"
}
# The node's service CIDR has a blackhole route (local-cluster.sh's safety net), on which a host socket's connect() fails
# before kube-proxy's nat OUTPUT rules see a packet. While kube-proxy runs, a `local` route in the local table (looked
# up first) lets connect() proceed; an untranslated packet is then delivered to this host, never to the uplink.
SVC_CIDR=10.96.0.0/16
start_kube_proxy() {
	ip route replace local $SVC_CIDR dev lo table local
	setsid "$BIN/kube-proxy" --kubeconfig="$P/kube-proxy.kubeconfig" --proxy-mode=iptables \
		--hostname-override="$(hostname)" --cluster-cidr=10.244.0.0/16 --iptables-localhost-nodeports=false \
		--conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
		--metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
		>>"$L/kube-proxy.log" 2>&1 </dev/null &
	echo $! >"$R/pids/kube-proxy.pid"
	echo "kube-proxy started (pid $!)"
}
stop_kube_proxy() { # by its recorded PID, then --cleanup removes its chains
	local f=$R/pids/kube-proxy.pid p
	if [ -f "$f" ]; then
		p=$(cat "$f")
		if kill -0 "$p" 2>/dev/null; then
			kill "$p"
			for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
			kill -0 "$p" 2>/dev/null && kill -9 "$p"
			echo "kube-proxy stopped ($p)"
		fi
		rm -f "$f"
	fi
	"$BIN/kube-proxy" --cleanup >>"$L/kube-proxy.log" 2>&1 || true
	ip route del local $SVC_CIDR dev lo table local 2>/dev/null || true
}
kube_rules() { { iptables-save -t nat; iptables-save -t filter; } 2>/dev/null | grep -c '^-A KUBE-\(SERVICES\|SVC\|SEP\)' || true; }

# The client is on the host network, so the host's TCP_CRR client sysctls (KERNEL-NOTES): without them the default
# 28k ephemeral ports per backend sit in TIME_WAIT for 60 s after a few seconds of CRR, and every configuration
# collapses to ~900 connections/s. Set for the run, restored at the end.
declare -A SYSCTL_SAVED
set_sysctl() { SYSCTL_SAVED[$1]=${SYSCTL_SAVED[$1]:-$(sysctl -n "$1")}; sysctl -qw "$1=$2"; }
restore_sysctls() { for k in "${!SYSCTL_SAVED[@]}"; do sysctl -qw "$k=${SYSCTL_SAVED[$k]}"; done; }

restore() {
	local rc=$?
	trap - EXIT INT TERM
	echo "--- restoring the normal cluster"
	restore_sysctls
	stop_kube_proxy
	agent_mode true || echo "bench-crr --cluster: could not restore the agent manifest (apply $R/sluice.yaml)" >&2
	$KC delete ns $NS --wait=true --timeout=300s >/dev/null 2>&1 || echo "bench-crr --cluster: namespace $NS not deleted" >&2
	echo "KUBE-* service rules left: $(kube_rules); local routes for $SVC_CIDR: $(ip route show table local $SVC_CIDR | wc -l)"
	exit $rc
}
trap restore EXIT
trap 'exit 130' INT TERM
set_sysctl net.ipv4.ip_local_port_range "1024 65535"
set_sysctl net.ipv4.tcp_tw_reuse 1
set_sysctl net.core.somaxconn 8192

# --- the crr image, pods -------------------------------------------------------------------------------------------
mkdir -p "$CACHE/img/crr"
(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/img/crr/crr" ./test/bench/crr)
"$REPO/hack/k8s/mkimage.sh" $IMG "$CACHE/images/crr.tar" "$CACHE/img/crr" /crr >/dev/null
ctr --address "$R/containerd.sock" -n k8s.io images import "$CACHE/images/crr.tar" >/dev/null
echo "image $IMG imported"

# A namespace left terminating by an earlier run (10 000 Services take minutes to delete) must be gone first.
waitfor "namespace $NS from an earlier run deleted" 900 bash -c "! $KC get ns $NS"
$KC create ns $NS >/dev/null
$KC apply -f - >/dev/null <<EOF
apiVersion: v1
kind: List
items:
$(for i in 1 2; do cat <<POD
- apiVersion: v1
  kind: Pod
  metadata: {name: server-$i, namespace: $NS, labels: {app: crr-server}}
  spec:
    terminationGracePeriodSeconds: 0
    containers:
    - name: crr
      image: $IMG
      imagePullPolicy: Never
      args: [serve, --listen, "0.0.0.0:$PORT", --name, server-$i]
      readinessProbe: {tcpSocket: {port: $PORT}, periodSeconds: 1}
POD
done)
- apiVersion: v1
  kind: Pod
  metadata: {name: client, namespace: $NS}
  spec:
    hostNetwork: true
    terminationGracePeriodSeconds: 0
    containers:
    - name: crr
      image: $IMG
      imagePullPolicy: Never
      command: [/crr, serve, --listen, "127.0.0.1:0", --name, idle]
EOF
$KC -n $NS wait --for=condition=Ready pod --all --timeout=120s >/dev/null
S1=$($KC -n $NS get pod server-1 -o jsonpath='{.status.podIP}')
S2=$($KC -n $NS get pod server-2 -o jsonpath='{.status.podIP}')
echo "backends server-1 $S1, server-2 $S2; client on the host network"

crr() { timeout 300 $KC -n $NS exec client -- /crr "$@"; }
answers() { # addr: crr ask answers with a backend's name
	local out
	out=$(crr ask --target "$1" --timeout 1s 2>/dev/null) || return 1
	[ "$out" = server-1 ] || [ "$out" = server-2 ]
}
seen_both() { # addr: both backends answer within 40 asks
	local a=0 b=0 out
	for _ in $(seq 40); do
		out=$(crr ask --target "$1" --timeout 1s 2>/dev/null) || continue
		case $out in server-1) a=1 ;; server-2) b=1 ;; *) echo "unexpected answer $out from $1" >&2 && return 1 ;; esac
		[ $a = 1 ] && [ $b = 1 ] && return 0
	done
	echo "$1: backends seen server-1=$a server-2=$b" >&2
	return 1
}

# --- services through the API ---------------------------------------------------------------------------------------
HAVE=0
create_services() { # total: create crr-$HAVE..crr-$((total-1)), 8 kubectl processes in parallel
	local total=$1 from=$HAVE d
	[ "$total" -gt "$from" ] || return 0
	d=$(mktemp -d)
	for i in $(seq "$from" $((total - 1))); do
		printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: crr-%d, namespace: %s}\nspec: {selector: {app: crr-server}, ports: [{port: 80, targetPort: %d, protocol: TCP}]}\n' \
			"$i" $NS $PORT >>"$d/part-$((i % 8)).yaml"
	done
	for f in "$d"/part-*.yaml; do $KC create -f "$f" >/dev/null & done
	wait
	rm -rf "$d"
	HAVE=$($KC -n $NS get svc --no-headers | wc -l)
	[ "$HAVE" = "$total" ] || { echo "bench-crr --cluster: $HAVE Services, want $total" >&2 && return 1; }
}
vip() { $KC -n $NS get svc "crr-$1" -o jsonpath='{.spec.clusterIP}'; }
targets() { # n: ip:80 of up to 16 Services spread evenly over crr-0..crr-(n-1), comma-separated
	local n=$1 k all i out=""
	k=$((n < 16 ? n : 16))
	all=$($KC -n $NS get svc -o jsonpath='{range .items[*]}{.metadata.name} {.spec.clusterIP}{"\n"}{end}')
	for i in $(seq 0 $((k - 1))); do
		out="$out,$(awk -v n="crr-$((i * n / k))" '$1 == n {print $2}' <<<"$all"):80"
	done
	echo "${out#,}"
}
rule_positions() { # targets: where each VIP's rule sits in KUBE-SERVICES (1 = first)
	local rules t
	rules=$(iptables-save -t nat | grep '^-A KUBE-SERVICES ')
	for t in ${1//,/ }; do grep -n -- "-d ${t%:*}/32 " <<<"$rules" | head -1 | cut -d: -f1; done | sort -n | tr '\n' ' '
}

# --- settling ------------------------------------------------------------------------------------------------------
busy() { # percent of all CPUs' time not idle over 3 s (/proc/stat: user nice system idle iowait irq softirq steal)
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 3
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	python3 -c "import sys; t0,i0,t1,i1=map(float,sys.argv[1:]); print('%.0f' % (100*(1-(i1-i0)/max(t1-t0,1))))" $a $b
}
slices() { timeout 120 $KC -n $NS get endpointslices --no-headers 2>/dev/null | wc -l; }
settle() { # what services: every EndpointSlice exists (services > 0), then two quiet 3 s windows in a row
	local what=$1 n=$2 s t quiet=0 b
	s=$(date +%s)
	if [ "$n" -gt 0 ]; then
		until [ "$(slices)" -ge "$n" ]; do
			[ $(($(date +%s) - s)) -lt "$SETTLE_MAX" ] || { echo "bench-crr --cluster: $n EndpointSlices not there after ${SETTLE_MAX}s" >&2 && return 1; }
			sleep 2
		done
	fi
	t=$(date +%s)
	while [ $quiet -lt 2 ]; do
		b=$(busy)
		if [ "$b" -lt "$QUIET" ]; then quiet=$((quiet + 1)); else quiet=0; fi
		if [ $(($(date +%s) - t)) -ge "$SETTLE_MAX" ]; then
			echo "SETTLE $what services=$n NOT quiet after ${SETTLE_MAX}s (last ${b}% busy): measuring anyway"
			return 0
		fi
	done
	echo "SETTLE $what services=$n slices=$(($t - s))s quiet=$(($(date +%s) - t))s (last ${b}% busy)"
}

# --- measurement ----------------------------------------------------------------------------------------------------
declare -A TPS
measure() { # config services targets: one round, a target at random per connection
	local cfg=$1 n=$2 tgt=$3 out tps errs r
	r=$(($(wc -w <<<"${TPS[$cfg/$n]:-}") + 1))
	out=$(crr run --target "$tgt" --pick random --workers "$WORKERS" --duration "$DURATION" --warmup "$WARMUP" --timeout 2s)
	tps=$(jq -r '.tps' <<<"$out")
	errs=$(jq -r '.errors' <<<"$out")
	echo "  $cfg services=$n round $r: tps=$(printf %.0f "$tps") p50=$(jq -r '.p50_us' <<<"$out")us p99=$(jq -r '.p99_us' <<<"$out")us errors=$errs"
	[ "$errs" = 0 ] || echo "  ($cfg: first error $(jq -r '.first_error' <<<"$out"))"
	TPS[$cfg/$n]="${TPS[$cfg/$n]:-} $tps"
}
phase_round() { # config services targets direct-label: direct, config, direct again (both directs pair with config)
	measure "$4" "$2" "$S1:$PORT,$S2:$PORT"
	measure "$1" "$2" "$3"
	measure "$4" "$2" "$S1:$PORT,$S2:$PORT"
}
median() { # values [decimals, default 0]
	python3 -c "import statistics,sys; print('%.*f' % (int(sys.argv[1]), statistics.median(map(float, sys.argv[2:]))))" "${2:-0}" $1
}
declare -A PROG CREATE

T0=$(date +%s)
echo "--- TCP_CRR on $(hostname): $WORKERS workers, $ROUNDS x $DURATION (warmup $WARMUP), services $SERVICES"
[ "$(crr ask --target "$S1:$PORT")" = server-1 ] && [ "$(crr ask --target "$S2:$PORT")" = server-2 ]
MODE=sluice
to_sluice() { # kube-proxy stopped and cleaned up, the agent back to --socket-lb=true
	[ $MODE = sluice ] && return 0
	stop_kube_proxy
	agent_mode true
	MODE=sluice
}
to_iptables() { # n last: the agent without socket LB, then kube-proxy; records its sync time
	local n=$1 last=$2 s
	[ $MODE = iptables ] && return 0
	agent_mode false
	if answers "$(vip 0):80"; then
		echo "bench-crr --cluster: $(vip 0):80 still answers with --socket-lb=false and no kube-proxy" >&2
		exit 1
	fi
	s=$(now)
	start_kube_proxy
	MODE=iptables
	waitfor "crr-$((n - 1)) via kube-proxy" 600 answers "$last:80"
	PROG[iptables/$n]="${PROG[iptables/$n]:-} $(since "$s")"
	seen_both "$(vip 0):80"
	echo "iptables: kube-proxy answers for crr-$((n - 1)) $(since "$s")s after its start; KUBE-* rules: $(kube_rules)"
	echo "KUBE-SERVICES positions of the measured Services: $(rule_positions "$TARGETS") of $(iptables-save -t nat | grep -c '^-A KUBE-SERVICES ')"
}
for n in ${SERVICES//,/ }; do
	# Every Service selects the two servers; the measured ones are up to 16 spread evenly over the creation order (a
	# connection picks one at random), so no configuration is measured on a lucky rule position.
	to_sluice
	s=$(now)
	create_services "$n"
	CREATE[$n]=$(since "$s")
	last=$(vip $((n - 1)))
	s=$(now)
	waitfor "crr-$((n - 1)) via Sluice" 300 answers "$last:80"
	PROG[sluice/$n]=$(since "$s")
	TARGETS=$(targets "$n")
	seen_both "$(vip 0):80"
	echo "sluice: $n services (created in ${CREATE[$n]}s); the last answers ${PROG[sluice/$n]}s after its create returned; KUBE-* rules: $(kube_rules)"
	echo "measured Services: $(tr ',' ' ' <<<"$TARGETS" | wc -w) ($TARGETS)" | cut -c1-200
	# Round by round, the two implementations alternate which goes first (odd rounds Sluice, even rounds kube-proxy);
	# each phase is direct, the configuration, direct again, and its ratio is over the directs of that phase.
	for r in $(seq "$ROUNDS"); do
		order="sluice iptables"
		[ $((r % 2)) = 0 ] && order="iptables sluice"
		for mode in $order; do
			if [ $mode = sluice ]; then
				to_sluice
				waitfor "crr-$((n - 1)) via Sluice" 300 answers "$last:80"
				seen_both "$(vip 0):80"
				settle "sluice round $r" "$n"
				phase_round sluice "$n" "$TARGETS" direct
			else
				to_iptables "$n" "$last"
				settle "iptables round $r" "$n"
				phase_round iptables "$n" "$TARGETS" direct-kp
			fi
		done
	done
done
to_sluice

# Ratios per phase: a configuration's i-th sample over the mean of the two directs measured around it (same phase),
# then the median over the rounds; direct's self-ratio is its second sample of a phase over its first. iptables is also
# given over Sluice's phase direct of the same round (ratio_nokp): direct-kp pays kube-proxy's nat OUTPUT walk too.
ratios() { # config-samples direct-samples: "median min max" of paired ratios
	python3 - "$1" "$2" <<'PY'
import statistics, sys
c = [float(x) for x in sys.argv[1].split()]
d = [float(x) for x in sys.argv[2].split()]
r = [c[i] / ((d[2 * i] + d[2 * i + 1]) / 2) for i in range(min(len(c), len(d) // 2))]
print('%.2f %.2f %.2f' % (statistics.median(r), min(r), max(r)) if r else 'NA NA NA')
PY
}
self_ratios() { # direct-samples (pairs): "median min max" of second/first
	python3 - "$1" <<'PY'
import statistics, sys
d = [float(x) for x in sys.argv[1].split()]
r = [d[i + 1] / d[i] for i in range(0, len(d) - 1, 2)]
print('%.2f %.2f %.2f' % (statistics.median(r), min(r), max(r)) if r else 'NA NA NA')
PY
}
TABLE=() RESULTS=()
for n in ${SERVICES//,/ }; do
	for cfg in direct sluice direct-kp iptables; do
		m=$(median "${TPS[$cfg/$n]}")
		case $cfg in
		direct | direct-kp)
			read -r rm rmin rmax <<<"$(self_ratios "${TPS[$cfg/$n]}")"
			extra="self_ratio=$rm self_min=$rmin self_max=$rmax"
			TABLE+=("$(printf '%-10s %9s %10s %22s' $cfg "$n" "$m" "self $rm [$rmin-$rmax]")")
			;;
		sluice)
			read -r rm rmin rmax <<<"$(ratios "${TPS[sluice/$n]}" "${TPS[direct/$n]}")"
			extra="ratio_direct=$rm ratio_min=$rmin ratio_max=$rmax"
			TABLE+=("$(printf '%-10s %9s %10s %22s' $cfg "$n" "$m" "$rm [$rmin-$rmax]")")
			;;
		iptables)
			read -r rm rmin rmax <<<"$(ratios "${TPS[iptables/$n]}" "${TPS[direct-kp/$n]}")"
			read -r nk _ _ <<<"$(ratios "${TPS[iptables/$n]}" "${TPS[direct/$n]}")"
			extra="ratio_direct=$rm ratio_min=$rmin ratio_max=$rmax ratio_nokp=$nk"
			TABLE+=("$(printf '%-10s %9s %10s %22s  (over Sluice phase direct: %s)' $cfg "$n" "$m" "$rm [$rmin-$rmax]" "$nk")")
			;;
		esac
		RESULTS+=("RESULT config=$cfg services=$n tps=$m $extra")
	done
done
printf '\n%-10s %9s %10s %22s\n' config services tps 'vs own phase direct'
printf '%s\n' "${TABLE[@]}"
echo
printf '%s\n' "${RESULTS[@]}"
for n in ${SERVICES//,/ }; do
	echo "RESULT config=program-sluice services=$n seconds=${PROG[sluice/$n]}"
	echo "RESULT config=program-iptables services=$n seconds=$(median "${PROG[iptables/$n]}" 3)"
done
echo "benchmark took $(($(date +%s) - T0))s"
