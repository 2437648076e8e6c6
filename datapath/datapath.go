package datapath

import (
	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
	"github.com/sluicenet/sluice/datapath/ipcachemap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/socklb"
)

// ErrMapFull is returned (wrapped) by every map family when a map has no
// room for a new entry.
var ErrMapFull = maputil.ErrMapFull

// MapFullCounts returns, by map name, how many writes of this process found
// a map full (ErrMapFull): every map the agent writes counts here, whatever
// family or sensor owns it.
func MapFullCounts() map[string]uint64 { return maputil.FullCounts() }

// Datapath holds the loaded pod, socket-LB and host device programs, their
// shared maps and the handles of each map family.
type Datapath struct {
	root string // bpffs root
	objs bpfgen.LxcObjects
	sock bpfgen.SockObjects
	host bpfgen.HostObjects
	xdp  bpfgen.XdpObjects

	lb          *lbmap.Map
	policy      *policymap.Map
	ct          *ctmap.Map
	endpoints   *endpointmap.Map
	ipcache     *ipcachemap.Map
	metrics     *metricsmap.Map
	sockMetrics *metricsmap.SockMap
	flows       *monitor.Flows
	devices     *device.Links
	sockLB      *socklb.Links
	connect     connectState // SetConnectRules
	pruned      []string     // stale map pins Load removed
	pruneErr    error        // why some could not be
}

func (d *Datapath) setHandles() {
	m := &d.objs.LxcMaps
	d.lb = lbmap.New(m.SluiceLb4ServicesV1, m.SluiceLb4BackendsV1, m.SluiceLb4ReverseNatV1, d.host.SluiceNodeAddrsV1)
	d.lb.SetMaglevMap(m.SluiceLb4MaglevV1)
	d.policy = policymap.New(m.SluicePolicyV1, m.SluicePolicyAddrV1, m.SluicePolicyConfigV1)
	d.ct = ctmap.New(m.SluiceCt4V1, d.host.SluiceSnat4V1)
	d.endpoints = endpointmap.New(m.SluiceEndpointsV1)
	d.ipcache = ipcachemap.New(m.SluiceIpcache4V1)
	d.metrics = metricsmap.New(m.SluiceMetricsV1, m.SluiceMetricsFastV1)
	d.sockMetrics = metricsmap.NewSock(d.sock.SluiceSockMetricsV1)
	d.flows = monitor.New(m.SluiceFlowsV1, m.SluiceFlowConfigV1, m.SluiceFlowsLostV1)
	progs := d.programs()
	d.devices = device.New(d.root, progs, d.xdp.SluiceXdpDevsV1)
	d.sockLB = socklb.New(d.root, progs)
}

// Root returns the bpffs root the Datapath pinned under.
func (d *Datapath) Root() string { return d.root }

// LB returns the load-balancing maps.
func (d *Datapath) LB() *lbmap.Map { return d.lb }

// Policy returns the policy maps.
func (d *Datapath) Policy() *policymap.Map { return d.policy }

// CT returns the conntrack and NAT tables.
func (d *Datapath) CT() *ctmap.Map { return d.ct }

// Endpoints returns the endpoint map.
func (d *Datapath) Endpoints() *endpointmap.Map { return d.endpoints }

// IPCache returns the IP cache.
func (d *Datapath) IPCache() *ipcachemap.Map { return d.ipcache }

// Metrics returns the packet counters.
func (d *Datapath) Metrics() *metricsmap.Map { return d.metrics }

// SockMetrics returns the socket-LB counters.
func (d *Datapath) SockMetrics() *metricsmap.SockMap { return d.sockMetrics }

// Flows returns the flow event maps.
func (d *Datapath) Flows() *monitor.Flows { return d.flows }

// Devices returns the host device attachment.
func (d *Datapath) Devices() *device.Links { return d.devices }

// SocketLB returns the socket-LB cgroup attachment.
func (d *Datapath) SocketLB() *socklb.Links { return d.sockLB }

// FromContainer returns the program run for packets leaving a pod (for
// BPF_PROG_TEST_RUN tests).
func (d *Datapath) FromContainer() *ebpf.Program { return d.objs.FromContainer }

// ToContainer returns the program run for packets entering a pod.
func (d *Datapath) ToContainer() *ebpf.Program { return d.objs.ToContainer }

// FromNetdev returns the program run for packets arriving at an external
// device (tcx ingress).
func (d *Datapath) FromNetdev() *ebpf.Program { return d.host.FromNetdev }

// XDPNodePort returns the XDP program of the external devices
// (--lb-acceleration).
func (d *Datapath) XDPNodePort() *ebpf.Program { return d.xdp.XdpNodeport }

// ToNetdev returns the program run for packets leaving through an external
// device (tcx egress).
func (d *Datapath) ToNetdev() *ebpf.Program { return d.host.ToNetdev }
