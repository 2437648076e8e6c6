package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/ipcachemap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/test/harness"
)

// leaks is what gone pods left behind on a node, by kind; each slice
// names the leaked things (for the report).
type leaks struct {
	IPs, Links, Pins, Entries, Identities []string
}

// empty reports whether nothing leaked.
func (l leaks) empty() bool {
	return len(l.IPs)+len(l.Links)+len(l.Pins)+len(l.Entries)+len(l.Identities) == 0
}

// report prints every leak, at most 10 of a kind.
func (l leaks) report() {
	for _, k := range []struct {
		what  string
		items []string
	}{{"IP", l.IPs}, {"host veth", l.Links}, {"pinned link", l.Pins}, {"map entry", l.Entries}, {"identity", l.Identities}} {
		for i, it := range k.items {
			if i == 10 {
				fmt.Printf("LEAK %s: ... %d more\n", k.what, len(k.items)-10)
				break
			}
			fmt.Printf("LEAK %s: %s\n", k.what, it)
		}
	}
}

// findLeaks compares the node with the pods that should be there (live):
// host-local's allocations, the host-side veths, the pinned pod links, the
// endpoint, IP-cache, policy, backend, conntrack and NAT map entries of
// pod addresses and endpoints no live pod has (conntrack and NAT entries
// count while they have not expired: an entry that lapses on its lifetime
// is not a leak), and identities with references that no live endpoint
// holds.
func findLeaks(node *harness.Node, live []*harness.Pod) (leaks, error) {
	var l leaks
	liveIP := map[netip.Addr]bool{}
	liveIf := map[string]bool{}
	for _, p := range live {
		liveIP[p.IP] = true
		liveIf[p.HostIfName] = true
	}
	gone := func(a netip.Addr) bool { return node.PodCIDR.Contains(a) && a != node.Gateway && !liveIP[a] }

	// IPAM: host-local keeps one file per reserved address.
	ents, err := os.ReadDir(filepath.Join(node.Dir, "ipam", "sluice"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return l, err
	}
	for _, e := range ents {
		if a, err := netip.ParseAddr(e.Name()); err == nil && !liveIP[a] {
			l.IPs = append(l.IPs, a.String())
		}
	}
	out, err := node.NS.Command("ip", "-o", "link", "show", "type", "veth").CombinedOutput()
	if err != nil {
		return l, fmt.Errorf("list veths: %w: %s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			if name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@"); !liveIf[name] {
				l.Links = append(l.Links, name)
			}
		}
	}
	ents, err = os.ReadDir(pin.LinksDir(node.BPFRoot))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return l, err
	}
	for _, e := range ents {
		if n := e.Name(); n != pin.CgroupLinksName && n != pin.DevicesLinksName && n != pin.TracingLinksName && !liveIf[n] {
			l.Pins = append(l.Pins, n)
		}
	}
	liveEP, err := mapLeaks(node, gone, &l)
	if err != nil {
		return l, err
	}
	ids, err := node.Client().Identities(context.Background())
	if err != nil {
		return l, fmt.Errorf("list identities: %w", err)
	}
	for _, id := range ids {
		if id.Refs == 0 || id.Name != "" || liveEP[id.ID] || strings.HasPrefix(strings.Join(id.Labels, ","), identity.SourceCIDR+":") {
			continue
		}
		l.Identities = append(l.Identities, fmt.Sprintf("%d %v refs=%d", id.ID, id.Labels, id.Refs))
	}
	return l, nil
}

// mapLeaks adds the map entries of gone pods to l and returns the
// identities of the endpoints in the endpoint map.
func mapLeaks(node *harness.Node, gone func(netip.Addr) bool, l *leaks) (map[uint32]bool, error) {
	m, err := openMaps(node.BPFRoot, "sluice_endpoints_v1", "sluice_ipcache4_v1", "sluice_policy_v1", "sluice_policy_addr_v1",
		"sluice_policy_config_v1", "sluice_ct4_v1", "sluice_snat4_v1", "sluice_lb4_services_v1", "sluice_lb4_backends_v1",
		"sluice_lb4_reverse_nat_v1", "sluice_node_addrs_v1")
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, x := range m {
			x.Close()
		}
	}()
	eps, err := endpointmap.New(m["sluice_endpoints_v1"]).List()
	if err != nil {
		return nil, err
	}
	liveEP := map[uint32]bool{}
	liveID := map[uint16]bool{}
	for _, ep := range eps {
		if gone(ep.IP) {
			l.Entries = append(l.Entries, "endpoint "+ep.IP.String())
			continue
		}
		liveEP[ep.Identity], liveID[ep.ID] = true, true
	}
	ipc, err := ipcachemap.New(m["sluice_ipcache4_v1"]).List()
	if err != nil {
		return nil, err
	}
	for p := range ipc {
		if p.Bits() == 32 && gone(p.Addr()) {
			l.Entries = append(l.Entries, "ipcache "+p.String())
		}
	}
	pol, err := policymap.New(m["sluice_policy_v1"], m["sluice_policy_addr_v1"], m["sluice_policy_config_v1"]).Endpoints()
	if err != nil {
		return nil, err
	}
	for id := range pol {
		if !liveID[id] {
			l.Entries = append(l.Entries, fmt.Sprintf("policy of endpoint %d", id))
		}
	}
	bes, err := lbmap.New(m["sluice_lb4_services_v1"], m["sluice_lb4_backends_v1"], m["sluice_lb4_reverse_nat_v1"], m["sluice_node_addrs_v1"]).Backends()
	if err != nil {
		return nil, err
	}
	for id, b := range bes {
		if gone(b.Addr) {
			l.Entries = append(l.Entries, fmt.Sprintf("backend %d %s:%d", id, b.Addr, b.Port))
		}
	}
	ct := ctmap.New(m["sluice_ct4_v1"], m["sluice_snat4_v1"])
	cts, err := ct.Entries()
	if err != nil {
		return nil, err
	}
	for _, e := range cts {
		if e.Expires > 0 && (gone(e.Src.Addr()) || gone(e.Dst.Addr())) {
			l.Entries = append(l.Entries, fmt.Sprintf("conntrack %s -> %s (expires in %s)", e.Src, e.Dst, e.Expires))
		}
	}
	nat, err := ct.NATEntries()
	if err != nil {
		return nil, err
	}
	for _, e := range nat {
		if e.Expires > 0 && (gone(e.Src.Addr()) || gone(e.Dst.Addr()) || gone(e.To.Addr())) {
			l.Entries = append(l.Entries, fmt.Sprintf("NAT %s %s -> %s (expires in %s)", e.Kind, e.Src, e.Dst, e.Expires))
		}
	}
	return liveEP, nil
}

// openMaps opens pinned maps of a bpffs root read-only, by name.
func openMaps(root string, names ...string) (map[string]*ebpf.Map, error) {
	out := map[string]*ebpf.Map{}
	for _, n := range names {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(root), n), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			for _, x := range out {
				x.Close()
			}
			return nil, fmt.Errorf("open pinned map %s: %w", n, err)
		}
		out[n] = m
	}
	return out, nil
}

// procStats is what /proc and the agent's metrics say about its process.
type procStats struct {
	Goroutines, FDs int
	RSSKiB          int
}

// agentStats reads the agent's goroutines (go_goroutines of its /metrics),
// open descriptors (/proc/PID/fd) and resident memory (VmRSS).
func agentStats(node *harness.Node, pid int) (procStats, error) {
	var s procStats
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscan(v, &s.RSSKiB)
		}
	}
	metrics, err := scrape(node)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			fmt.Sscan(v, &s.Goroutines)
		}
	}
	if s.Goroutines == 0 {
		return s, errors.New("no go_goroutines in the agent's metrics")
	}
	return s, nil
}

// scrape reads the agent's /metrics from inside the node.
func scrape(node *harness.Node) (string, error) {
	out, err := node.NS.Command("curl", "-sf", "--max-time", "5", "http://127.0.0.1:9962/metrics").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("scrape metrics: %w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("scrape metrics: %w", err)
	}
	return string(out), nil
}
