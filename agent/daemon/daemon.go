package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/flows"
	"github.com/sluicenet/sluice/agent/healthcheck"
	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/agent/servicemgr"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/agent/source/k8s"
	"github.com/sluicenet/sluice/agent/source/manifests"
	"github.com/sluicenet/sluice/agent/state"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// shutdownTimeout bounds how long in-flight API requests may take on exit.
const shutdownTimeout = 5 * time.Second

// Daemon is a started agent.
type Daemon struct {
	cfg      Config
	log      logrus.FieldLogger
	dp       *datapath.Datapath
	hostOpts datapath.HostOptions
	xdp      xdpState
	eps      *endpointmgr.Manager
	svcs     *servicemgr.Manager
	// hc serves the health-check node ports; nodeEligible is false while
	// this node is being deleted (the node's proxy health check).
	hc           *healthcheck.Manager
	nodeEligible atomic.Bool
	// startSourceLoops starts the loops that write what the state source
	// says (once): at Run without a state source, else at its first
	// snapshot (startLoops); sourceLoops is closed when they started.
	startSourceLoops func()
	sourceLoops      chan struct{}
	ids              *identitymgr.Manager
	pols             *policymgr.Manager
	flows            *flows.Observer
	nodes            *nodemgr.Manager
	mtu              nodemgr.MTUs
	flowR            *monitor.Reader
	reg              *prometheus.Registry
	metricsLn        net.Listener
	healthLn         net.Listener
	// clusterIDs is set in --k8s mode (SluiceIdentity objects).
	clusterIDs *clusterIdentities
	ready      readiness
	source     source.Source // state source: a manifests directory or the Kubernetes API
	k8s        *k8s.Source
	manifests  *manifests.Watcher // the standalone state source, if any
	ln         net.Listener
	srv        *http.Server
	closeOnce  sync.Once
	proc       *processTracing // nil without --process-sensor

	// For `sluice status` (status.go): when New started, the clientset
	// (--k8s) to ask the API server, the resync loop's outcomes and the
	// event rates.
	started   time.Time
	k8sClient kubernetes.Interface
	// k8sEvents records Events on Kubernetes objects (Kubernetes mode).
	k8sEvents *k8sEvents
	resync    reconcile.Status
	rates     eventRates
}

// New starts the agent up to the point where it is ready: configuration
// checked (before anything is touched), bpffs root, IP forwarding, datapath
// load and link adoption, endpoint restore, delete queue, map
// reconciliation, and a listening socket. Call Run to serve. On error
// everything opened is closed again; pins are never removed.
func New(cfg Config) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Log, started: time.Now()}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	steps := []func() error{
		d.prepareHost, d.loadDatapath, d.setupEndpoints, d.setupSocketLB, d.setupServices,
		d.setupPolicy, d.setupProcess, d.setupMTU, d.setupRouting, d.setupHealth, d.setupSource, d.setupAPI,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	d.log.WithField("socket", cfg.SocketPath()).Info("Agent ready")
	return d, nil
}

// prepareHost makes the bpffs root, IP forwarding and the run directories.
func (d *Daemon) prepareHost() error {
	if err := pin.EnsureRoot(d.cfg.BPFRoot, d.cfg.mountsParent()); err != nil {
		return fmt.Errorf("prepare bpf root: %w", err)
	}
	if d.cfg.IPForward {
		if err := EnableIPForward(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(d.cfg.RunDir, 0o700); err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	if err := os.MkdirAll(d.cfg.DeleteQueueDir(), 0o700); err != nil {
		return fmt.Errorf("create delete queue: %w", err)
	}
	return nil
}

// loadDatapath loads the datapath (adopting pinned links) and attaches the
// host device programs.
func (d *Daemon) loadDatapath() error {
	var err error
	if d.hostOpts, err = d.cfg.hostOptions(); err != nil {
		return err
	}
	if d.dp, err = datapath.Load(d.cfg.BPFRoot, datapath.Options{Host: d.hostOpts, ProcessEvents: d.cfg.Process.Sensor, MaxEntries: d.cfg.MapMaxEntries, MaglevTableSize: d.cfg.maglevTableSize()}); err != nil {
		return fmt.Errorf("load datapath: %w", err)
	}
	d.log.WithField("bpfRoot", d.cfg.BPFRoot).Info("Datapath loaded, pinned links adopted")
	pruned, err := d.dp.PrunedMaps()
	if len(pruned) > 0 {
		d.log.WithField("maps", pruned).Info("Removed the pins of maps an earlier agent version used")
	}
	if err != nil {
		d.log.WithError(err).Warn("Stale map pins left in place")
	}
	return d.setupDevices()
}

// setupEndpoints restores the endpoint manager from its state files, applies
// the CNI delete queue and reconciles the endpoint map.
func (d *Daemon) setupEndpoints() error {
	store, err := state.New(d.cfg.EndpointsDir())
	if err != nil {
		return err
	}
	d.eps = endpointmgr.New(d.dp.Endpoints(), d.dp.Metrics(), store, d.log.WithField("subsys", "endpoint"))
	if err := d.eps.Restore(d.cfg.LinkExists); err != nil {
		return fmt.Errorf("restore endpoints: %w", err)
	}
	if err := d.eps.ProcessDeleteQueue(d.cfg.DeleteQueueDir()); err != nil {
		// Entries that failed stay queued for the resync loop.
		d.log.WithError(err).Warn("Delete queue not fully processed")
	}
	st, err := d.eps.Reconcile()
	if err != nil {
		return fmt.Errorf("reconcile endpoint map: %w", err)
	}
	d.log.WithFields(logrus.Fields{"written": st.Written, "deleted": st.Deleted}).Info("Endpoint map reconciled")
	return nil
}

// setupServices constructs the service manager, adopting the LB maps' IDs.
func (d *Daemon) setupServices() error {
	var err error
	d.svcs, err = servicemgr.New(servicemgr.Config{
		NodeName: d.cfg.NodeName, ResyncInterval: d.cfg.ResyncInterval, CTGCInterval: d.cfg.CTGCInterval,
		ServiceProxyName: d.cfg.ServiceProxyName, MaglevTableSize: d.cfg.maglevTableSize(),
		LB: d.cfg.lbDefaults(d.hostOpts.LBMode),
	}, d.dp.LB(), d.dp.CT(), d.eps, d.log.WithField("subsys", "services"))
	if err != nil {
		return fmt.Errorf("adopt load-balancing maps: %w", err)
	}
	d.setupHealthChecks()
	return nil
}

// setupSource wires endpoint changes to the managers and constructs the
// state source (Kubernetes or a manifests directory; none is fine).
func (d *Daemon) setupSource() error {
	d.eps.OnChange(func() {
		d.svcs.Changed()
		d.ids.Changed()
		if d.proc != nil && d.proc.assoc != nil {
			d.proc.assoc.EndpointsChanged()
			d.proc.policies.Changed()
		}
	})
	d.sourceLoops = make(chan struct{})
	switch {
	case d.cfg.K8s:
		var err error
		if d.k8s, err = d.newK8sSource(); err != nil {
			return err
		}
		d.source = d.k8s
	case d.cfg.ManifestsDir != "":
		d.manifests = manifests.New(d.cfg.ManifestsDir, d.log.WithField("subsys", "manifests"))
		d.source = d.manifests
	}
	return nil
}

// setupAPI listens on the API socket; every route comes from server.Handler.
func (d *Daemon) setupAPI() error {
	var err error
	if d.ln, err = server.Listen(d.cfg.SocketPath()); err != nil {
		return err
	}
	cfg := server.Config{
		Endpoints: regeneratingEndpoints{d.eps, d}, BPFRoot: d.cfg.BPFRoot, Health: d.health,
		Agent:    &api.AgentConfig{PodMTU: d.mtu.Pod},
		Services: servicesWithHealthChecks{d.svcs, d.hc}, Policies: d.pols, Identities: d.ids, Flows: d.flows, Tracer: tracer{d}, Status: d.Status,
		Log: d.log.WithField("subsys", "api"),
	}
	if d.proc != nil {
		cfg.Events, cfg.Processes, cfg.Tracing = d.proc.pipe.Hub(), d.proc.mgr, d.proc.status
		cfg.TracingPolicies = d.proc.policies
		cfg.TracingRules = tracingRules{d}
	}
	mux := server.Handler(cfg)
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// Run serves the API and resyncs periodically until ctx is cancelled, then
// stops serving and closes the daemon's handles (pins stay).
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	d.startLoops(ctx, &wg)

	errc := make(chan error, 1)
	go func() { errc <- d.srv.Serve(d.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve api: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	if serr := d.srv.Shutdown(sctx); serr != nil {
		d.log.WithError(serr).Warn("API shutdown incomplete")
	}
	cancel()
	wg.Wait()
	d.Close()
	d.log.Info("Agent stopped; pinned programs stay attached")
	return err
}

// Close releases the daemon's handles: listener and datapath. It never
// unpins anything. It is safe to call more than once.
func (d *Daemon) Close() error {
	var err error
	d.closeOnce.Do(func() {
		if d.ln != nil {
			d.ln.Close()
		}
		if d.metricsLn != nil {
			d.metricsLn.Close()
		}
		if d.healthLn != nil {
			d.healthLn.Close()
		}
		if d.flowR != nil {
			d.flowR.Close()
		}
		if d.proc != nil {
			d.proc.close()
		}
		if d.nodes != nil {
			d.nodes.Close()
		}
		if d.k8sEvents != nil {
			d.k8sEvents.close()
		}
		if d.dp != nil {
			err = d.dp.Close()
		}
	})
	return err
}

// Resync runs one full resync: the delete queue, the endpoint map
// reconciliation and link adoption.
func (d *Daemon) Resync() error {
	qerr := d.eps.ProcessDeleteQueue(d.cfg.DeleteQueueDir())
	st, rerr := d.eps.Reconcile()
	if st.Written > 0 || st.Deleted > 0 {
		d.log.WithFields(logrus.Fields{"written": st.Written, "deleted": st.Deleted}).Info("Endpoint map drift repaired")
	}
	_, aerr := d.dp.AdoptLinks()
	if aerr != nil {
		aerr = fmt.Errorf("adopt links: %w", aerr)
	}
	derr := d.resyncDevices()
	if derr != nil {
		derr = fmt.Errorf("host devices: %w", derr)
	}
	return errors.Join(qerr, rerr, aerr, derr)
}

// setupSocketLB attaches (or, when disabled, detaches) the socket
// load-balancing programs.
func (d *Daemon) setupSocketLB() error {
	if !d.cfg.SocketLB {
		if err := d.dp.SocketLB().Detach(); err != nil {
			return fmt.Errorf("detach socket LB: %w", err)
		}
		return nil
	}
	if err := d.dp.SocketLB().Attach(d.cfg.CgroupRoot); err != nil {
		return fmt.Errorf("attach socket LB to %s: %w", d.cfg.CgroupRoot, err)
	}
	d.log.WithField("cgroup", d.cfg.CgroupRoot).Info("Socket load balancing attached")
	return nil
}

// setupPolicy constructs the identity and policy managers, the flow
// observer and the metrics registry (and listener).
func (d *Daemon) setupPolicy() error {
	mode, err := policy.ParseEnforcementMode(d.cfg.PolicyEnforcement)
	if err != nil {
		return err
	}
	rejected, err := policymgr.ParseRejectedMode(d.cfg.RejectedPolicy)
	if err != nil {
		return err
	}
	var pols *policymgr.Manager
	store, cluster, err := d.identityStore()
	if err != nil {
		return err
	}
	d.ids = identitymgr.New(identitymgr.Config{ResyncInterval: d.cfg.ResyncInterval, HostAddrs: hostAddrs, Store: store, Cluster: cluster},
		d.eps, d.dp.IPCache(), func(ev identity.Event) { pols.IdentityEvent(ev) }, d.log.WithField("subsys", "identity"))
	pols = policymgr.New(policymgr.Config{Mode: mode, Audit: d.cfg.PolicyAudit, Rejected: rejected, ResyncInterval: d.cfg.ResyncInterval},
		d.dp.Policy(), d.ids, d.log.WithField("subsys", "policy"))
	d.pols = pols
	d.ids.OnSynced(pols.Changed)
	d.reg = d.newRegistry()
	d.flows = flows.New(d.cfg.FlowCapacity, flowNames{d}, d.reg, d.log.WithField("subsys", "flows"))
	if d.flowR, err = d.dp.Flows().NewReader(); err != nil {
		return fmt.Errorf("open flow events: %w", err)
	}
	if d.cfg.MetricsAddr != "" {
		if d.metricsLn, err = net.Listen("tcp", d.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", d.cfg.MetricsAddr, err)
		}
	}
	d.log.WithFields(logrus.Fields{"enforcement": d.cfg.PolicyEnforcement, "audit": d.cfg.PolicyAudit, "rejectedPolicy": rejected, "metrics": d.cfg.MetricsAddr}).Info("Policy enforcement configured")
	return nil
}

// Policies returns the policy manager.
func (d *Daemon) Policies() *policymgr.Manager { return d.pols }

// Identities returns the identity manager.
func (d *Daemon) Identities() *identitymgr.Manager { return d.ids }

// Services returns the service manager.
func (d *Daemon) Services() *servicemgr.Manager { return d.svcs }

// Datapath returns the loaded datapath.
func (d *Daemon) Datapath() *datapath.Datapath { return d.dp }

// Endpoints returns the endpoint manager.
func (d *Daemon) Endpoints() *endpointmgr.Manager { return d.eps }

// SocketPath returns the path the API listens on.
func (d *Daemon) SocketPath() string { return d.cfg.SocketPath() }

// health reports whether the pod programs are still pinned.
func (d *Daemon) health() error {
	for _, h := range pin.PodHooks {
		if _, err := os.Stat(pin.ProgPath(d.cfg.BPFRoot, h.Prog)); err != nil {
			return fmt.Errorf("program %s is not pinned: %w", h.Prog, err)
		}
	}
	return nil
}

// LinkExists reports whether the interface index exists in the calling
// thread's network namespace with the given name.
func LinkExists(name string, index int) (bool, error) {
	l, err := netlink.LinkByIndex(index)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up interface %d: %w", index, err)
	}
	return l.Attrs().Name == name, nil
}
