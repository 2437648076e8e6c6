package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/events"
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/agent/tracingmgr"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// processTracing is the process sensor and what turns its events into the
// API's: the process cache and pod association (process.Manager) and the
// event pipeline (rate limit, metrics, history, export).
type processTracing struct {
	sensor *procsensor.Sensor
	reader *procsensor.Reader
	assoc  *process.Association
	mgr    *process.Manager
	pipe   *events.Pipeline
	// policies are the tracing policies, enforced by the sensor's exec rules.
	policies *tracingmgr.Manager
}

// setupProcess loads the process sensor when --process-sensor asks for it,
// seeds the process cache from the processes already running, and builds
// the event pipeline. Nothing is loaded otherwise.
func (d *Daemon) setupProcess() error {
	pc := d.cfg.Process
	log := d.log.WithField("subsys", "process")
	if !pc.Sensor {
		// An earlier agent's sensor stays attached until told: stop it.
		if err := procsensor.Unpin(d.cfg.BPFRoot); err != nil {
			return fmt.Errorf("unpin process sensor: %w", err)
		}
		return nil
	}
	var export *events.ExportConfig
	if pc.ExportFilename != "" {
		export = &events.ExportConfig{
			Filename: pc.ExportFilename, MaxSizeMB: pc.ExportMaxSizeMB, MaxBackups: pc.ExportMaxBackups,
			Allow: pc.ExportAllowList, Deny: pc.ExportDenyList,
		}
	}
	pipe, err := events.NewPipeline(events.Config{
		History: pc.EventCapacity, RateLimit: pc.RateLimit, Export: export,
		Registerer: d.reg, Log: d.log.WithField("subsys", "events"),
	})
	if err != nil {
		return fmt.Errorf("process events: %w", err)
	}
	pt := &processTracing{pipe: pipe}
	d.proc = pt
	if pt.sensor, err = procsensor.Load(d.cfg.BPFRoot, procsensor.Options{}); err != nil {
		return fmt.Errorf("process sensor: %w", err)
	}
	if maps := pt.sensor.RecreatedMaps(); len(maps) > 0 {
		log.WithField("maps", maps).Warn("Pinned tracing rule maps had another layout: created anew; their rules are not enforced until the policies are applied again")
	}
	if pt.reader, err = pt.sensor.Reader(); err != nil {
		return fmt.Errorf("process sensor: %w", err)
	}
	hostNS, err := process.HostNamespaces("/proc")
	if err != nil {
		return fmt.Errorf("process sensor: %w", err)
	}
	pt.assoc = process.NewAssociation(process.AssociationConfig{
		Kubernetes: d.cfg.K8s, Endpoints: d.eps, HostNetNS: hostNS.Net, Log: log,
	})
	tcfg := tracingmgr.Config{
		Rules: pt.sensor, Syscalls: pt.sensor, Compile: tracing.Compile, Endpoints: d.eps,
		// Containers' cgroups are under the cgroup root (the socket LB's:
		// the kubelet's pods cgroup in the chart).
		Cgroups:        process.NewCgroupFinder(d.cfg.CgroupRoot),
		ResyncInterval: d.cfg.ResyncInterval, Log: d.log.WithField("subsys", "tracingpolicy"),
	}
	// Connect rules run in the socket-LB hooks, loaded with the sensor's
	// maps (datapath.Options.ProcessEvents): only with the socket LB on.
	// (Left unset otherwise: a nil *Datapath in the interface would take
	// policies it never enforces.)
	if d.cfg.SocketLB {
		tcfg.Connects = d.dp
	}
	pt.policies = tracingmgr.New(tcfg, d.reg)
	pt.mgr = process.NewManager(process.Config{
		NodeName: d.cfg.NodeName, CacheSize: pc.CacheSize, AncestorsDepth: pc.AncestorsDepth,
		HostNS: hostNS, Pods: pt.assoc, Services: d.svcs, Backends: d.svcs, PodIPs: flowNames{d},
		Lost: pt.lost, Policies: pt.policies, Hooks: pt.policies, Log: log,
	}, pipe, d.reg)
	d.flows.SetProcesses(pt.mgr)
	log.WithField("hooks", pt.sensor.Hooks()).Info("Process sensor loaded")
	return nil
}

// lost is the sensor's count of events the ring buffer could not take.
func (pt *processTracing) lost() uint64 {
	n, _ := pt.sensor.Lost()
	return n
}

// seedWait bounds how long the process cache waits for the state source's
// first snapshot before it reads /proc: processes found there are attributed
// to pods with the Pod objects (labels, containers) the snapshot brings. The
// sensor's events wait in the ring buffer meanwhile.
const seedWait = 5 * time.Second

// run seeds the process cache from the processes running (once the first
// snapshot is in, or after seedWait), then reads the sensor until ctx ends;
// the pipeline ticks alongside. The tracing policies are written once the
// first snapshot is in (as every loop that writes what the state source
// says): until then the rules an earlier agent left pinned stay enforced,
// instead of an empty set replacing them.
func (pt *processTracing) run(ctx context.Context, wg *sync.WaitGroup, snapshot <-chan struct{}, logErr func(string, func() error) func()) {
	wg.Go(func() { pt.pipe.Run(ctx) })
	wg.Go(func() {
		select {
		case <-snapshot:
			pt.policies.Run(ctx)
		case <-ctx.Done():
		}
	})
	wg.Go(logErr("Process event reader stopped", func() error {
		select {
		case <-snapshot:
		case <-time.After(seedWait):
		case <-ctx.Done():
			return nil
		}
		if err := pt.mgr.Seed(pt.sensor.Running); err != nil {
			return fmt.Errorf("seed the process cache from /proc: %w", err)
		}
		return pt.mgr.Run(ctx, pt.reader)
	}))
}

// close releases the sensor (its pinned programs stay attached and its
// rules enforced until the next agent takes over), then flushes the
// pipeline (the manager has stopped publishing by then: Run waits for its
// loops first).
func (pt *processTracing) close() {
	if pt.reader != nil {
		pt.reader.Close()
	}
	if pt.sensor != nil {
		pt.sensor.Close()
	}
	pt.pipe.Close()
}

// status is the sensor's part of GET /v1/healthz.
func (pt *processTracing) status() *api.TracingStatus {
	return &api.TracingStatus{Hooks: pt.sensor.Hooks(), Lost: pt.lost()}
}
