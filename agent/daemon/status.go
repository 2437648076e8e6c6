package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sort"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/datapath"
)

// apiServerTimeout bounds the API server check of `sluice status`.
const apiServerTimeout = 2 * time.Second

// Status returns the agent's state for GET /v1/status (`sluice status`),
// with the health verdict api.Status documents: problems make it
// unhealthy, warnings do not.
func (d *Daemon) Status() api.Status {
	now := time.Now()
	st := api.Status{
		Version: version(), Node: d.cfg.NodeName, Started: d.started,
		Problems: []string{}, Warnings: []string{},
		Endpoints: d.eps.Len(), Identities: len(d.ids.Identities()),
	}
	if err := d.readiness(context.Background()); err != nil {
		st.Problems = append(st.Problems, "not ready: "+err.Error())
	}
	d.sourceStatus(&st)
	d.kubeProxyStatus(&st)
	d.routingStatus(&st)
	d.policyStatus(&st)
	d.serviceStatus(&st)
	d.healthCheckStatus(&st)
	d.mapStatus(&st)
	d.loopStatus(&st)
	d.eventStatus(&st, now)
	st.Healthy = len(st.Problems) == 0
	return st
}

// Version names the agent's build when set at link time (go build
// -ldflags "-X github.com/sluicenet/sluice/agent/daemon.Version=v1.2.3");
// empty: the module version and VCS revision of the build info.
var Version string

// version is Version, else the module version and VCS revision, as built.
func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (%.12s%s)", rev, modified)
	}
	return v
}

// sourceStatus fills the state source: its mode, the API server's answer
// and cache sync in Kubernetes mode, the last snapshot.
func (d *Daemon) sourceStatus(st *api.Status) {
	src := &st.Source
	switch {
	case d.k8s != nil:
		src.Mode, src.CachesSynced, src.APIServer = "kubernetes", d.k8s.Synced(), "ok"
		if err := d.apiServerAnswers(); err != nil {
			src.APIServer = err.Error()
			st.Problems = append(st.Problems, "kubernetes API server: "+err.Error())
		}
		if cidr := d.k8s.Node().PodCIDR; cidr.IsValid() {
			st.IPAM.PodCIDR = cidr.String()
		}
	case d.manifests != nil:
		src.Mode, src.ManifestsDir = "standalone", d.cfg.ManifestsDir
	default:
		src.Mode = "none"
	}
	if ns := d.ready.lastSnapshot.Load(); ns != 0 {
		src.LastSnapshot = time.Unix(0, ns)
	}
	st.IPAM.Used, st.IPAM.Free = d.ipamUsage(st.IPAM.PodCIDR)
}

// apiServerAnswers asks the API server's /readyz.
func (d *Daemon) apiServerAnswers() error {
	if d.k8sClient == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiServerTimeout)
	defer cancel()
	return d.k8sClient.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
}

// ipamUsage counts the local endpoints with an address in podCIDR and the
// addresses host-local has left there (all but network, gateway and
// broadcast); without a PodCIDR, every endpoint and no free count.
func (d *Daemon) ipamUsage(podCIDR string) (used, free int) {
	pfx, perr := netip.ParsePrefix(podCIDR)
	eps, err := d.eps.List()
	if err != nil {
		return 0, 0
	}
	for _, ep := range eps {
		a, err := netip.ParseAddr(ep.IPv4)
		if err == nil && (perr != nil || pfx.Contains(a)) {
			used++
		}
	}
	if perr != nil || pfx.Bits() > 30 {
		return used, 0
	}
	return used, max(1<<(32-pfx.Bits())-3-used, 0)
}

// kubeProxyStatus fills what of kube-proxy the agent replaces.
func (d *Daemon) kubeProxyStatus(st *api.Status) {
	kp := &st.KubeProxy
	kp.SocketLB, kp.PerPacketLB, kp.Algorithm = d.cfg.SocketLB, true, LBAlgorithmRandom
	if n := d.cfg.maglevSize(); n != 0 {
		kp.Algorithm = fmt.Sprintf("%s (table size %d; socket LB random)", LBAlgorithmMaglev, n)
	}
	if d.cfg.SocketLB {
		kp.SocketLBCgroup = d.cfg.CgroupRoot
	}
	kp.NodePortDevices = append([]string{}, d.cfg.Devices...)
	if len(kp.NodePortDevices) > 0 {
		kp.NodePortAttach = "tc (tcx)"
	}
	kp.LBAcceleration, kp.NodePortXDP = d.xdp.status(d.cfg.Devices)
	if d.hostOpts.SNATAddr.IsValid() {
		kp.NodeIP = d.hostOpts.SNATAddr.String()
	}
	if len(kp.NodePortDevices) > 0 {
		kp.LBMode = string(d.hostOpts.LBMode)
	}
	kp.ServiceProxyName = d.cfg.ServiceProxyName
}

// routingStatus fills the routing mode, tunnel, MTUs and peers.
func (d *Daemon) routingStatus(st *api.Status) {
	r := &st.Routing
	r.Mode, r.PodMTU, r.UnderlayMTU = d.cfg.Routing, d.mtu.Pod, d.mtu.Underlay
	if d.cfg.Routing == string(nodemgr.ModeVXLAN) {
		r.Tunnel = nodemgr.VXLANDevice
	}
	if d.nodes != nil {
		r.Peers = len(d.nodes.Applied())
	}
}

// policyStatus counts the policies (rejected ones are a warning: their
// endpoints get default deny) and the endpoints they enforce.
func (d *Daemon) policyStatus(st *api.Status) {
	p := &st.Policies
	p.Enforcement, p.Audit, p.Rejected = d.cfg.PolicyEnforcement, d.cfg.PolicyAudit, []api.RejectedPolicy{}
	if p.Enforcement == "" {
		p.Enforcement = "default"
	}
	for _, s := range d.pols.Status() {
		if s.Accepted {
			p.Accepted++
			continue
		}
		name := s.Kind + " " + s.Name
		if s.Namespace != "" {
			name = s.Kind + " " + s.Namespace + "/" + s.Name
		}
		reason := s.Message
		if reason == "" {
			reason = s.Reason
		}
		p.Rejected = append(p.Rejected, api.RejectedPolicy{Name: name, Reason: reason})
		st.Warnings = append(st.Warnings, fmt.Sprintf("policy %s rejected: %s", name, reason))
	}
	eps, err := d.eps.List()
	if err != nil {
		return
	}
	for _, ep := range eps {
		ep, ok := d.pols.EndpointPolicy(ep.ID)
		if !ok {
			continue
		}
		if ep.IngressEnforced || ep.EgressEnforced {
			p.Enforced++
		}
		if ep.Audit {
			p.AuditEndpoints++
		}
	}
}

// serviceStatus compares desired and programmed service frontends (the
// readiness check makes missing ones a problem).
func (d *Daemon) serviceStatus(st *api.Status) {
	s := &st.Services
	desired, _ := d.svcs.Desired()
	s.Desired, s.Failed = len(desired), []string{}
	for _, svc := range d.svcs.Services() {
		if svc.Error == "" {
			s.Programmed++
			continue
		}
		s.Failed = append(s.Failed, fmt.Sprintf("%s %s/%s: %s", svc.Name, svc.Frontend, svc.Protocol, svc.Error))
	}
}

// mapStatus fills every counted BPF map's fill level (the datapath's and
// the process sensor's) and warns above api.MapWarnPercent.
func (d *Daemon) mapStatus(st *api.Status) {
	usage, err := d.mapUsage()
	if err != nil {
		st.Warnings = append(st.Warnings, "BPF map usage incomplete: "+err.Error())
	}
	full := datapath.MapFullCounts()
	st.Maps = make([]api.MapStatus, 0, len(usage))
	for _, u := range usage {
		m := api.MapStatus{Name: u.Name, Type: u.Type, Entries: u.Entries, Capacity: u.Capacity, FullWrites: full[u.Name]}
		if u.Capacity > 0 {
			m.Percent = 100 * float64(u.Entries) / float64(u.Capacity)
		}
		if m.Percent > api.MapWarnPercent {
			m.Warning = true
			st.Warnings = append(st.Warnings, fmt.Sprintf("BPF map %s is %.0f%% full (%d of %d)", m.Name, m.Percent, m.Entries, m.Capacity))
		}
		st.Maps = append(st.Maps, m)
	}
}

// mapUsage counts the entries of every counted BPF map: the datapath's
// and the process sensor's.
func (d *Daemon) mapUsage() ([]datapath.MapUsage, error) {
	usage, err := d.dp.MapUsage()
	if d.proc != nil {
		more, perr := datapath.CountMaps(d.proc.sensor.Maps())
		usage, err = mergeUsage(usage, more), errors.Join(err, perr)
	}
	return usage, err
}

// mergeUsage adds the maps of more that a are missing (shared maps are
// pinned once, under one name), sorted by name.
func mergeUsage(a, more []datapath.MapUsage) []datapath.MapUsage {
	seen := map[string]bool{}
	for _, u := range a {
		seen[u.Name] = true
	}
	for _, u := range more {
		if !seen[u.Name] {
			a = append(a, u)
		}
	}
	sort.Slice(a, func(i, j int) bool { return a[i].Name < a[j].Name })
	return a
}

// loopStatus fills every owner loop; one whose last sync failed is a
// problem.
func (d *Daemon) loopStatus(st *api.Status) {
	type loop struct {
		name string
		s    reconcile.LoopStatus
	}
	loops := []loop{
		{"endpoints-resync", d.resync.Get()},
		{"services", d.svcs.LoopStatus()},
		{"identities-ipcache", d.ids.LoopStatus()},
		{"policy", d.pols.LoopStatus()},
	}
	if d.nodes != nil {
		loops = append(loops, loop{"node-routes", d.nodes.LoopStatus()})
	}
	if d.proc != nil {
		loops = append(loops, loop{"tracing-policies", d.proc.policies.LoopStatus()})
	}
	for _, l := range loops {
		st.Loops = append(st.Loops, api.LoopStatus{
			Name: l.name, Syncs: l.s.Syncs, Failures: l.s.Failures, Retries: l.s.Retries,
			LastSuccess: l.s.LastSuccess, LastFailure: l.s.LastFailure, LastError: l.s.LastError,
		})
		if l.s.Retries > 0 {
			st.Problems = append(st.Problems, fmt.Sprintf("loop %s failing (%d retries): %s", l.name, l.s.Retries, l.s.LastError))
		}
	}
}

// eventStatus fills the flow and process event totals, rates and losses
// (a loss is a warning).
func (d *Daemon) eventStatus(st *api.Status, now time.Time) {
	st.Flows.Total = d.flows.Total()
	st.Flows.Rate = d.rates.flows.rate(now, st.Flows.Total)
	if lost, err := d.dp.Flows().Lost(); err == nil {
		st.Flows.Lost = lost
	}
	if st.Flows.Lost > 0 {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%d flow events lost (ring buffer full)", st.Flows.Lost))
	}
	if d.proc == nil {
		return
	}
	published, limited := d.proc.pipe.Counts()
	ps := &api.ProcessStatus{Hooks: d.proc.sensor.Hooks(), Events: api.EventStats{
		Total: published, Rate: d.rates.process.rate(now, published), Lost: d.proc.lost(), RateLimited: limited,
	}}
	if ps.Events.Lost > 0 {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%d process events lost (ring buffer full)", ps.Events.Lost))
	}
	st.Process = ps
}
