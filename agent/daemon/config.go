package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/healthcheck"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/maglev"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/agent/source/k8s"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/policy"
)

// Defaults of the agent's configuration.
const (
	DefaultRunDir         = "/var/run/sluice"
	DefaultResyncInterval = 30 * time.Second
	DefaultCgroupRoot     = "/sys/fs/cgroup/unified"
	DefaultMetricsAddr    = "127.0.0.1:9962"
)

// Load-balancing algorithms (Config.LBAlgorithm, --lb-algorithm).
const (
	LBAlgorithmRandom = "random"
	LBAlgorithmMaglev = "maglev"
)

// maglevSize is the Maglev table size of the node's default algorithm: 0
// with random selection.
func (c Config) maglevSize() uint32 {
	if c.LBAlgorithm != LBAlgorithmMaglev {
		return 0
	}
	if c.MaglevTableSize == 0 {
		return maglev.DefaultTableSize
	}
	return c.MaglevTableSize
}

// maglevTableSize is the Maglev table size the datapath is loaded with and
// the service manager builds tables of, whatever the default algorithm: a
// Service may ask for Maglev by annotation on a node whose default is
// random (only such Services get a table).
func (c Config) maglevTableSize() uint32 {
	if c.MaglevTableSize == 0 {
		return maglev.DefaultTableSize
	}
	return c.MaglevTableSize
}

// lbDefaults are the node's defaults Services' lb-mode and lb-algorithm
// annotations are resolved against.
func (c Config) lbDefaults(mode datapath.LBMode) translate.LBDefaults {
	d := translate.LBDefaults{Mode: lb.Mode(mode), Algorithm: lb.Random}
	if c.LBAlgorithm == LBAlgorithmMaglev {
		d.Algorithm = lb.Maglev
	}
	if m, err := nodemgr.ParseMode(c.Routing); err == nil && m == nodemgr.ModeVXLAN {
		d.NoDSR = dsrVXLANReason
	}
	return d
}

// dsrVXLANReason is why a node in VXLAN routing cannot send DSR.
const dsrVXLANReason = "routing vxlan: the IP-in-IP packet would arrive on the tunnel device, where no program decapsulates it"

// Bounds of the lookup of a pod unknown at CNI ADD (Config.PodFetchTimeout):
// the maximum leaves the ADD time for the rest within the CNI's 20s wait
// for the agent.
const (
	DefaultPodFetchTimeout = 5 * time.Second
	MaxPodFetchTimeout     = 15 * time.Second
)

// Config is the agent's configuration.
type Config struct {
	// BPFRoot is where programs, maps and links are pinned. When its parent
	// is /sys/fs/bpf, a bpffs is mounted there if needed; any other parent
	// must already be on a bpffs.
	BPFRoot string
	// RunDir holds the socket (agent.sock), endpoint state files
	// (endpoints/<id>.json) and the CNI delete queue (delete-queue/).
	RunDir string
	// ResyncInterval is the period of the full map resync.
	ResyncInterval time.Duration
	// IPForward sets net.ipv4.ip_forward=1 at start, in the network
	// namespace of the thread calling New.
	IPForward bool
	// LinkExists checks restored endpoints' host interfaces; nil uses
	// netlink in the network namespace of the thread calling New.
	LinkExists endpointmgr.LinkChecker
	// Log is the agent's logger; nil uses logrus's standard logger.
	Log logrus.FieldLogger

	// NodeName names this node: endpoints on it are local for traffic
	// policies. Defaults to the host name.
	NodeName string
	// ManifestsDir, when set, is the standalone state source: a directory
	// of Kubernetes YAML (Services, EndpointSlices, Pods, Namespaces, ...).
	ManifestsDir string
	// SocketLB attaches the socket load-balancing programs to CgroupRoot;
	// when false they are detached (if an earlier run attached them).
	SocketLB bool
	// CgroupRoot is the cgroup v2 directory the socket LB attaches to.
	CgroupRoot string
	// CTGCInterval is the period of conntrack garbage collection.
	CTGCInterval time.Duration
	// ServiceProxyName is the service.kubernetes.io/service-proxy-name
	// this agent answers to: empty handles only Services without the label
	// (as kube-proxy does), a name only Services labelled with it.
	ServiceProxyName string

	// K8s makes the Kubernetes API server the state source (instead of
	// ManifestsDir), with Kubeconfig or the in-cluster service account, and
	// writes CNIConflist from this node's PodCIDR.
	K8s         bool
	Kubeconfig  string
	CNIConflist string

	// Devices are the external devices the host programs (NodePort,
	// ExternalIP, LoadBalancer) attach to; empty: none.
	Devices []string
	// LBAcceleration attaches the XDP NodePort program to Devices: native
	// (in the driver), generic (XDP_FLAGS_SKB_MODE) or disabled (empty:
	// disabled). A device without native XDP stays on tc.
	LBAcceleration string
	// LBMode is how NodePort/ExternalIP/LoadBalancer flows reach remote
	// backends: snat (empty: snat), dsr (IP-in-IP to the backend's node,
	// which answers the client itself) or hybrid (DSR for TCP, SNAT for
	// UDP), as Cilium's loadBalancer.mode.
	LBMode string
	// NodeIP is the address flows to remote backends are SNATed to; unset:
	// the first IPv4 address of the first device. It is also this node's
	// VXLAN source address (unset: its Node object's InternalIP).
	NodeIP netip.Addr
	// Routing is how pod traffic reaches other nodes' PodCIDRs: native
	// (routes via each node's InternalIP), vxlan or none.
	Routing string
	// MTU is the MTU of pod interfaces; 0 derives it from the MTU of the
	// device holding the node IP, less the VXLAN overhead in VXLAN mode
	// (see nodemgr.ComputeMTUs). sluice-cni asks for it (GET /v1/config)
	// unless its network config sets "mtu"; --k8s writes it into the
	// conflist.
	MTU int
	// LBAlgorithm is how packets of a new flow pick a service backend:
	// "random" (default) or "maglev" (a Maglev table of MaglevTableSize
	// entries per service, the same on every node). The socket LB is
	// random either way, as Cilium's.
	LBAlgorithm string
	// MaglevTableSize is the Maglev table size, a prime up to 65521
	// (0: the default, 16381); each service's table takes 4 bytes per
	// entry.
	MaglevTableSize uint32

	// PolicyEnforcement is default, always or never (empty: default).
	PolicyEnforcement string
	// PolicyAudit reports policy drops as audit flows and lets the
	// packets pass.
	PolicyAudit bool
	// RejectedPolicy is what the endpoints a rejected policy selects get:
	// deny (default deny in its directions: fail closed) or ignore
	// (nothing of it); empty: deny.
	RejectedPolicy string
	// PodFetchTimeout bounds, in Kubernetes mode, how long an endpoint PUT
	// (CNI ADD) of a pod the informers have not seen yet retries to GET the
	// Pod from the API server before it fails (default 5s).
	PodFetchTimeout time.Duration
	// MetricsAddr is where /metrics is served; empty disables it.
	MetricsAddr string
	// HealthAddr is where GET /healthz (liveness) and GET /readyz
	// (readiness) are served; empty disables them.
	HealthAddr string
	// ProxyHealthAddr is where kube-proxy's node health check (GET
	// /healthz and /livez, JSON) is served, as kube-proxy's
	// --healthz-bind-address; empty disables it.
	ProxyHealthAddr string
	// FlowCapacity is how many flows the agent keeps (default 8192).
	FlowCapacity int
	// MapMaxEntries overrides the size of BPF maps by name (tests and fault
	// campaigns fill maps with it; a pinned map of another size is refused
	// at load).
	MapMaxEntries map[string]uint32

	// Process is the process-tracing sensor's configuration.
	Process ProcessConfig
}

// ProcessConfig configures the process-tracing sensor and its event export.
type ProcessConfig struct {
	// Sensor loads the exec/exit/fork/connect tracing programs.
	Sensor bool
	// CacheSize bounds the process cache (entries).
	CacheSize int
	// AncestorsDepth is how many ancestors every event carries.
	AncestorsDepth int
	// RateLimit is the per-pod event rate (events/s) above which events are
	// dropped with throttle events; 0 is no limit. Exits are never dropped.
	RateLimit int
	// ExportFilename, when set, receives every event as a JSON line,
	// rotated at ExportMaxSizeMB with ExportMaxBackups old files kept.
	ExportFilename   string
	ExportMaxSizeMB  int
	ExportMaxBackups int
	// ExportAllowList and ExportDenyList are JSON filters (Tetragon's
	// --export-allowlist/--export-denylist), one per line.
	ExportAllowList, ExportDenyList string
	// EventCapacity is how many events the agent keeps for the API.
	EventCapacity int
}

// Defaults of the process sensor's configuration.
const (
	DefaultProcessCacheSize      = 65536
	DefaultProcessAncestorsDepth = 10
	DefaultExportMaxSizeMB       = 10
	DefaultExportMaxBackups      = 5
)

// DefaultConfig returns the production configuration.
func DefaultConfig() Config {
	return Config{
		BPFRoot:         pin.DefaultRoot,
		RunDir:          DefaultRunDir,
		ResyncInterval:  DefaultResyncInterval,
		IPForward:       true,
		SocketLB:        true,
		CgroupRoot:      DefaultCgroupRoot,
		CNIConflist:     k8s.DefaultConflistPath,
		MetricsAddr:     DefaultMetricsAddr,
		HealthAddr:      DefaultHealthAddr,
		ProxyHealthAddr: healthcheck.DefaultNodeAddr,
		Routing:         string(nodemgr.ModeNative),
		LBAlgorithm:     LBAlgorithmRandom,
		MaglevTableSize: maglev.DefaultTableSize,
		Process: ProcessConfig{
			CacheSize:        DefaultProcessCacheSize,
			AncestorsDepth:   DefaultProcessAncestorsDepth,
			ExportMaxSizeMB:  DefaultExportMaxSizeMB,
			ExportMaxBackups: DefaultExportMaxBackups,
		},
	}
}

// SocketPath returns the API socket under the run dir.
func (c Config) SocketPath() string { return filepath.Join(c.RunDir, "agent.sock") }

// EndpointsDir returns the directory of endpoint state files.
func (c Config) EndpointsDir() string { return filepath.Join(c.RunDir, "endpoints") }

// DeleteQueueDir returns the CNI delete-queue directory.
func (c Config) DeleteQueueDir() string { return filepath.Join(c.RunDir, "delete-queue") }

// mountsParent reports whether the agent may mount bpffs on the root's parent:
// only for the standard location under /sys/fs/bpf.
func (c Config) mountsParent() bool {
	return filepath.Dir(filepath.Clean(c.BPFRoot)) == "/sys/fs/bpf"
}

// Validate checks the configuration as a whole without touching anything
// (no file, pin, link or sysctl): New calls it first, so a bad flag never
// leaves half a setup behind. It returns every problem found.
func (c Config) Validate() error {
	var errs []error
	if c.K8s && c.ManifestsDir != "" {
		errs = append(errs, errors.New("choose one state source: Kubernetes or a manifests directory"))
	}
	if _, err := policy.ParseEnforcementMode(c.PolicyEnforcement); err != nil {
		errs = append(errs, err)
	}
	if _, err := policymgr.ParseRejectedMode(c.RejectedPolicy); err != nil {
		errs = append(errs, err)
	}
	if c.PodFetchTimeout < 0 || c.PodFetchTimeout > MaxPodFetchTimeout {
		errs = append(errs, fmt.Errorf("pod fetch timeout %s is not within 0-%s (the CNI waits 20s for the agent)", c.PodFetchTimeout, MaxPodFetchTimeout))
	}
	if _, err := device.ParseXDPMode(c.LBAcceleration); err != nil {
		errs = append(errs, err)
	}
	mode, err := nodemgr.ParseMode(c.Routing)
	if err != nil {
		errs = append(errs, fmt.Errorf("routing: %w", err))
	}
	if lbMode, err := datapath.ParseLBMode(c.LBMode); err != nil {
		errs = append(errs, err)
	} else if lbMode != datapath.LBModeSNAT && mode == nodemgr.ModeVXLAN {
		// The IP-in-IP packet would cross in VXLAN and arrive on the
		// tunnel device, where no host program decapsulates it.
		errs = append(errs, fmt.Errorf("lb mode %s needs routing native or none, not vxlan", lbMode))
	}
	if c.NodeIP.IsValid() && !c.NodeIP.Is4() {
		errs = append(errs, fmt.Errorf("node IP %s is not IPv4", c.NodeIP))
	}
	// The underlay is only known once the datapath is up; an explicit pod
	// MTU is checked against the bounds here.
	if _, err := nodemgr.ComputeMTUs(mode, 0, c.MTU); err != nil {
		errs = append(errs, fmt.Errorf("mtu: %w", err))
	}
	switch c.LBAlgorithm {
	case "", LBAlgorithmRandom, LBAlgorithmMaglev:
	default:
		errs = append(errs, fmt.Errorf("lb algorithm %q: want random or maglev", c.LBAlgorithm))
	}
	// A size is checked whenever one is given, so a typo is caught before
	// maglev is turned on (0: the default).
	if c.MaglevTableSize != 0 {
		if err := maglev.ValidateTableSize(c.MaglevTableSize); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.Process.validate()...)
	return errors.Join(errs...)
}

// withDefaults fills in what the configuration leaves unset: the logger,
// the resync interval, the interface check and the node name (the host
// name).
func (c Config) withDefaults() (Config, error) {
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.PodFetchTimeout == 0 {
		c.PodFetchTimeout = DefaultPodFetchTimeout
	}
	if c.LinkExists == nil {
		c.LinkExists = LinkExists
	}
	if c.NodeName == "" {
		name, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("node name: %w", err)
		}
		c.NodeName = name
	}
	return c, nil
}

// validate checks the process sensor's settings.
func (p ProcessConfig) validate() []error {
	var errs []error
	if p.CacheSize < 0 || p.AncestorsDepth < 0 || p.RateLimit < 0 {
		errs = append(errs, errors.New("process cache size, ancestors depth and rate limit must not be negative"))
	}
	if p.ExportFilename != "" && !p.Sensor {
		errs = append(errs, errors.New("event export needs the process sensor (--process-sensor)"))
	}
	if p.ExportFilename != "" && (p.ExportMaxSizeMB <= 0 || p.ExportMaxBackups < 0) {
		errs = append(errs, errors.New("export: max size must be positive and max backups not negative"))
	}
	return errs
}
