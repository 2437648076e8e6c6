// Command sluice-agent is Sluice's node agent: it loads and pins the
// datapath, owns its maps and serves the local API on a unix socket.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/datapath"
)

func main() {
	if err := command().Execute(); err != nil {
		os.Exit(1)
	}
}

func command() *cobra.Command {
	cfg := daemon.DefaultConfig()
	logLevel := "info"
	cleanup := false
	cmd := &cobra.Command{
		Use:           "sluice-agent",
		Short:         "Sluice node agent",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logrus.New()
			lvl, err := logrus.ParseLevel(logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log.SetLevel(lvl)
			cfg.Log = log
			if cleanup {
				// Uninstall: every pin goes, the process sensor's tracepoints
				// with them; the programs detach.
				if err := datapath.Unpin(cfg.BPFRoot); err != nil {
					log.WithError(err).Error("Cleanup failed")
					return err
				}
				log.WithField("bpfRoot", cfg.BPFRoot).Info("Unpinned every program, map and link")
				return nil
			}
			err = run(cmd.Context(), cfg)
			if err != nil {
				log.WithError(err).Error("Agent failed")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.BPFRoot, "bpf-root", cfg.BPFRoot, "bpffs directory to pin programs, maps and links under")
	f.BoolVar(&cleanup, "cleanup", false, "uninstall: remove every pin under --bpf-root (programs, maps, links: the datapath and the process sensor detach) and exit")
	f.StringVar(&cfg.RunDir, "run-dir", cfg.RunDir, "directory for the API socket, endpoint state and the CNI delete queue")
	f.DurationVar(&cfg.ResyncInterval, "resync-interval", cfg.ResyncInterval, "period of the full datapath resync")
	f.StringVar(&logLevel, "log-level", logLevel, "log level (debug, info, warn, error)")
	f.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "name of this node (default: the host name)")
	f.StringVar(&cfg.ManifestsDir, "manifests-dir", cfg.ManifestsDir, "standalone mode: directory of Kubernetes YAML to watch (Services, EndpointSlices, Pods, Namespaces)")
	f.BoolVar(&cfg.SocketLB, "socket-lb", cfg.SocketLB, "translate services at connect() with cgroup socket hooks")
	f.StringVar(&cfg.CgroupRoot, "cgroup-root", cfg.CgroupRoot, "cgroup v2 directory the socket load balancer attaches to")
	f.BoolVar(&cfg.K8s, "k8s", cfg.K8s, "Kubernetes mode: watch the API server (in-cluster, or --kubeconfig) and write the CNI conflist from this node's PodCIDR")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "kubeconfig file for --k8s (default: in-cluster service account)")
	f.StringVar(&cfg.CNIConflist, "cni-conflist", cfg.CNIConflist, "where --k8s writes the CNI conflist")
	f.StringVar(&cfg.ServiceProxyName, "service-proxy-name", cfg.ServiceProxyName, "handle only Services whose service.kubernetes.io/service-proxy-name label is this name (empty: only Services without the label, as kube-proxy)")
	f.DurationVar(&cfg.CTGCInterval, "ct-gc-interval", 30*time.Second, "period of conntrack garbage collection")
	f.StringSliceVar(&cfg.Devices, "devices", cfg.Devices, "external devices to attach the NodePort/ExternalIP/LoadBalancer programs to (comma-separated; empty: none)")
	f.StringVar(&cfg.LBMode, "lb-mode", "snat", "how NodePort/ExternalIP/LoadBalancer flows reach a backend on another node: snat (replies return through this node), dsr (IP-in-IP to the backend's node, which answers the client directly from the frontend) or hybrid (DSR for TCP, SNAT for UDP)")
	f.StringVar(&cfg.LBAcceleration, "lb-acceleration", "disabled", "XDP for NodePort/ExternalIP/LoadBalancer flows to remote backends on --devices: native (in the driver; a device without it stays on tc), generic (XDP_FLAGS_SKB_MODE) or disabled (tc only)")
	f.TextVar(&cfg.NodeIP, "node-ip", cfg.NodeIP, "IPv4 address flows to remote backends are SNATed to (default: first IPv4 address of the first device)")
	f.StringVar(&cfg.Routing, "routing", cfg.Routing, "cross-node pod routing: native (route each node's PodCIDR via its InternalIP), vxlan (encapsulate to it, device sluice_vxlan, UDP 8472) or none")
	f.IntVar(&cfg.MTU, "mtu", cfg.MTU, "MTU of pod interfaces (0: auto, the MTU of the device holding the node IP, less 50 bytes of VXLAN overhead with --routing=vxlan)")
	f.StringVar(&cfg.LBAlgorithm, "lb-algorithm", cfg.LBAlgorithm, "backend selection of service packets: random, or maglev (consistent hashing: every node picks the same backend for a flow; the socket LB stays random)")
	f.Uint32Var(&cfg.MaglevTableSize, "maglev-table-size", cfg.MaglevTableSize, "entries of each service's Maglev table: a prime up to 65521 (4 bytes each per service)")
	f.StringVar(&cfg.PolicyEnforcement, "policy-enforcement", "default", "policy enforcement mode: default (enforce a direction once a policy selects the endpoint), always, never")
	f.BoolVar(&cfg.PolicyAudit, "policy-audit", false, "audit mode: report policy drops as AUDIT flows and let the packets pass")
	f.StringVar(&cfg.RejectedPolicy, "rejected-policy", "deny", "what the endpoints a rejected policy (unsupported field such as L7 or FQDN, invalid value) selects get: deny (default deny in the directions it covers: fail closed) or ignore (nothing of it is enforced)")
	f.DurationVar(&cfg.PodFetchTimeout, "pod-fetch-timeout", 5*time.Second, "--k8s: how long a CNI ADD of a pod the agent has not seen yet retries to GET the Pod from the API server before the ADD fails (fail closed)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "address to serve Prometheus /metrics on (empty disables)")
	f.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, "address to serve GET /healthz (liveness) and /readyz (readiness) on (empty disables)")
	f.StringVar(&cfg.ProxyHealthAddr, "proxy-health-addr", cfg.ProxyHealthAddr, "address to serve kube-proxy's node health check on (GET /healthz, /livez; kube-proxy's --healthz-bind-address; empty disables)")
	f.Var(mapSizes{&cfg.MapMaxEntries}, "map-max-entries", "testing: override BPF map sizes, NAME=ENTRIES,... (a pinned map of another size is refused)")
	if err := f.MarkHidden("map-max-entries"); err != nil {
		panic(err)
	}
	pf := &cfg.Process
	f.BoolVar(&pf.Sensor, "process-sensor", pf.Sensor, "load the process-tracing sensor: exec, exit, fork and connect events with ancestry and pods (sluice events)")
	f.IntVar(&pf.CacheSize, "process-cache-size", pf.CacheSize, "bound of the process cache (entries)")
	f.IntVar(&pf.AncestorsDepth, "process-ancestors-depth", pf.AncestorsDepth, "ancestors carried by every process event")
	f.IntVar(&pf.EventCapacity, "process-event-history", pf.EventCapacity, "process events kept for sluice events (0: 8192)")
	f.IntVar(&pf.RateLimit, "process-rate-limit", pf.RateLimit, "per-pod process events per second above which events are dropped with throttle events (0: no limit; exits are never dropped)")
	f.StringVar(&pf.ExportFilename, "export-filename", pf.ExportFilename, "write every process event as a JSON line to this file (empty: no export)")
	f.IntVar(&pf.ExportMaxSizeMB, "export-file-max-size-mb", pf.ExportMaxSizeMB, "rotate the export file at this size")
	f.IntVar(&pf.ExportMaxBackups, "export-file-max-backups", pf.ExportMaxBackups, "rotated export files to keep")
	f.StringVar(&pf.ExportAllowList, "export-allowlist", pf.ExportAllowList, "export only events matching one of these JSON filters (one per line; event_set, namespace, pod_regex, binary_regex)")
	f.StringVar(&pf.ExportDenyList, "export-denylist", pf.ExportDenyList, "never export events matching one of these JSON filters")
	return cmd
}

func run(ctx context.Context, cfg daemon.Config) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// mapSizes is the --map-max-entries flag: NAME=ENTRIES pairs, comma-separated
// or repeated.
type mapSizes struct{ m *map[string]uint32 }

func (s mapSizes) String() string {
	if s.m == nil || *s.m == nil {
		return ""
	}
	var parts []string
	for k, v := range *s.m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (s mapSizes) Set(v string) error {
	if *s.m == nil {
		*s.m = map[string]uint32{}
	}
	for _, kv := range strings.Split(v, ",") {
		name, n, ok := strings.Cut(kv, "=")
		size, err := strconv.ParseUint(n, 10, 32)
		if !ok || name == "" || err != nil || size == 0 {
			return fmt.Errorf("%q is not NAME=ENTRIES with ENTRIES > 0", kv)
		}
		(*s.m)[name] = uint32(size)
	}
	return nil
}

func (mapSizes) Type() string { return "NAME=ENTRIES,..." }
