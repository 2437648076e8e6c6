package nodemgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/agent/reconcile"
)

// RouteProtocol marks the routes the manager owns (rtm_protocol; iproute2
// prints it as a number).
const RouteProtocol netlink.RouteProtocol = 211

// maxBackoff bounds the retry delay after a failed sync (the owner loop's
// default minimum, a shorter maximum: routes matter for every pod).
const maxBackoff = 10 * time.Second

// Config configures a Manager.
type Config struct {
	Mode Mode
	// NodeName is this node; its own Node object is never routed to.
	NodeName string
	// NodeIP is this node's underlay address (VXLAN source and MAC); unset:
	// the InternalIP of this node's Node object.
	NodeIP netip.Addr
	// VXLANMTU is the MTU of sluice_vxlan, the underlay's less
	// VXLANOverhead (see ComputeMTUs); 0: DefaultUnderlayMTU less it.
	VXLANMTU int
	// ResyncInterval is the period of the full resync (default 30s).
	ResyncInterval time.Duration
	// Handle is the netlink handle to work through; nil: the network
	// namespace of the process.
	Handle *netlink.Handle
	// SetTunnel, if set, is told the ifindex of sluice_vxlan after every
	// sync that ensured it, 0 after one that removed it (the datapath's
	// SetTunnelDevice: NodePort flows to other nodes' pods leave through it).
	SetTunnel func(ifindex int) error
}

// Manager owns the routes to other nodes' PodCIDRs (and in VXLAN mode the
// sluice_vxlan device and its neighbor entries).
type Manager struct {
	cfg     Config
	loop    reconcile.Status // the owner loop's outcomes (LoopStatus)
	h       *netlink.Handle
	ownsH   bool
	log     logrus.FieldLogger
	trigger chan struct{}

	mu       sync.Mutex
	nodes    []Node
	hasNodes bool
	applied  []Peer
	problems []string
}

// New returns a manager; nothing is changed before Run or Sync.
func New(cfg Config, log logrus.FieldLogger) (*Manager, error) {
	mode, err := ParseMode(string(cfg.Mode))
	if err != nil {
		return nil, err
	}
	cfg.Mode = mode
	if cfg.NodeIP.IsValid() && !cfg.NodeIP.Is4() {
		return nil, fmt.Errorf("node IP %s is not IPv4", cfg.NodeIP)
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.VXLANMTU == 0 {
		cfg.VXLANMTU = DefaultUnderlayMTU - VXLANOverhead
	}
	if cfg.VXLANMTU < MinMTU || cfg.VXLANMTU > MaxMTU {
		return nil, fmt.Errorf("VXLAN MTU %d is out of range (%d-%d)", cfg.VXLANMTU, MinMTU, MaxMTU)
	}
	m := &Manager{cfg: cfg, h: cfg.Handle, log: log, trigger: make(chan struct{}, 1)}
	if m.h == nil {
		if m.h, err = netlink.NewHandle(); err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		m.ownsH = true
	}
	return m, nil
}

// Close releases the netlink handle New opened; routes and the device stay
// (an agent restart adopts them).
func (m *Manager) Close() {
	if m.ownsH {
		m.h.Close()
	}
}

// SetNodes replaces the set of known Node objects (this node included) and
// wakes the owner loop. Until the first call the loop changes nothing, so a
// restarted agent keeps its routes until it knows the nodes again.
func (m *Manager) SetNodes(nodes []Node) {
	m.mu.Lock()
	m.nodes, m.hasNodes = slices.Clone(nodes), true
	m.mu.Unlock()
	m.poke()
}

// Applied returns the routes of the last successful sync.
func (m *Manager) Applied() []Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.applied)
}

// setTunnel hands idx to cfg.SetTunnel, if set.
func (m *Manager) setTunnel(idx int) error {
	if m.cfg.SetTunnel == nil {
		return nil
	}
	if err := m.cfg.SetTunnel(idx); err != nil {
		return fmt.Errorf("record tunnel device %d: %w", idx, err)
	}
	return nil
}

func (m *Manager) poke() {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// Run is the owner loop (agent/reconcile): a sync at start, after every
// change, every ResyncInterval and, after a failure, with exponential
// backoff; until ctx ends. Until the first SetNodes a sync changes nothing,
// except in mode none, where it removes what an earlier run installed.
func (m *Manager) Run(ctx context.Context) {
	cfg := reconcile.Config{Trigger: m.trigger, Resync: m.cfg.ResyncInterval, MaxBackoff: maxBackoff, Status: &m.loop}
	reconcile.Loop(ctx, cfg, func(bool) error {
		m.mu.Lock()
		ready := m.hasNodes || m.cfg.Mode == ModeNone
		m.mu.Unlock()
		if !ready {
			return nil
		}
		err := m.Sync()
		if err != nil {
			m.log.WithError(err).Warn("Node routes not fully applied; retrying")
		}
		return err
	})
}

// LoopStatus returns the outcomes of the owner loop's syncs.
func (m *Manager) LoopStatus() reconcile.LoopStatus { return m.loop.Get() }

// Sync applies the desired state once: it is idempotent and safe to call
// concurrently with SetNodes (not with itself; Run is the only caller in
// the agent).
func (m *Manager) Sync() error {
	m.mu.Lock()
	nodes := slices.Clone(m.nodes)
	m.mu.Unlock()

	if m.cfg.Mode == ModeNone {
		return errors.Join(m.pruneRoutes(nil), m.syncNodeTunnel(0, nil, nil), m.removeVXLAN(), m.setTunnel(0))
	}
	peers, problems := Desired(m.cfg.NodeName, nodes)
	m.logProblems(problems)

	var errs []error
	switch m.cfg.Mode {
	case ModeNative:
		errs = append(errs, m.syncNodeTunnel(0, nil, nil), m.removeVXLAN(), m.setTunnel(0))
		for _, p := range peers {
			r := m.route(p, 0)
			if err := m.h.RouteReplace(r); err != nil {
				errs = append(errs, fmt.Errorf("route %s via %s (node %s): %w", p.PodCIDR, p.NodeIP, p.Node, err))
			}
		}
	case ModeVXLAN:
		self := m.cfg.NodeIP
		if !self.IsValid() {
			self = SelfIP(m.cfg.NodeName, nodes)
		}
		if !self.IsValid() {
			return fmt.Errorf("vxlan routing needs this node's IP: set --node-ip or an InternalIP on Node %s", m.cfg.NodeName)
		}
		idx, err := m.ensureVXLAN(self)
		if err != nil {
			return err
		}
		errs = append(errs, m.setTunnel(idx), m.syncNeighbors(idx, peers))
		for _, p := range peers {
			if err := m.h.RouteReplace(m.route(p, idx)); err != nil {
				errs = append(errs, fmt.Errorf("route %s via %s to node %s: %w", p.PodCIDR, VXLANDevice, p.Node, err))
			}
		}
		errs = append(errs, m.syncNodeTunnel(idx, peers, LocalPodCIDRs(m.cfg.NodeName, nodes)))
	}
	errs = append(errs, m.pruneRoutes(peers))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.mu.Lock()
	changed := !slices.Equal(m.applied, peers)
	m.applied = peers
	m.mu.Unlock()
	if changed {
		m.log.WithFields(logrus.Fields{"mode": m.cfg.Mode, "routes": len(peers)}).Info("Node routes applied")
	}
	return nil
}

// route is the kernel route for p: via the node IP (native), or through
// sluice_vxlan (index vxlan) with the tunnel key to the node IP.
func (m *Manager) route(p Peer, vxlan int) *netlink.Route {
	r := &netlink.Route{
		Dst:      ipNet(p.PodCIDR),
		Protocol: RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
		Family:   netlink.FAMILY_V4,
	}
	if vxlan == 0 {
		r.Gw = p.NodeIP.AsSlice()
		return r
	}
	r.LinkIndex = vxlan
	r.Gw = vtepGateway(p.PodCIDR).AsSlice()
	r.Flags = int(netlink.FLAG_ONLINK)
	r.Encap = &ipEncap{ID: VNI, Dst: p.NodeIP}
	return r
}

// pruneRoutes deletes the manager's routes whose destination is not one of
// peers' PodCIDRs.
func (m *Manager) pruneRoutes(peers []Peer) error {
	want := map[netip.Prefix]bool{}
	for _, p := range peers {
		want[p.PodCIDR] = true
	}
	removed, err := m.pruneTable(unix.RT_TABLE_MAIN, want, "node route")
	for _, dst := range removed {
		m.log.WithField("podCIDR", dst).Info("Route to a node that is gone removed")
	}
	return err
}

// pruneTable deletes the manager's routes (RouteProtocol) in table whose
// destination is not in want, and returns the destinations it deleted;
// what names the routes in errors.
func (m *Manager) pruneTable(table int, want map[netip.Prefix]bool, what string) ([]netip.Prefix, error) {
	list, err := m.h.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Protocol: RouteProtocol, Table: table},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", what, err)
	}
	var removed []netip.Prefix
	var errs []error
	for i := range list {
		r := &list[i]
		if r.Dst == nil {
			continue
		}
		dst := prefixOf(r.Dst)
		if want[dst] {
			continue
		}
		if err := m.h.RouteDel(r); err != nil {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", what, dst, err))
			continue
		}
		removed = append(removed, dst)
	}
	return removed, errors.Join(errs...)
}

// logProblems logs each problem once per change of the set.
func (m *Manager) logProblems(problems []string) {
	m.mu.Lock()
	changed := !slices.Equal(m.problems, problems)
	m.problems = problems
	m.mu.Unlock()
	if changed {
		for _, p := range problems {
			m.log.Warn(p)
		}
	}
}
