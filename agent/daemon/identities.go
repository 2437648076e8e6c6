package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/agent/source/k8s"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/identity/k8sstore"
)

// Cluster identity GC timing: a pass every identityGCInterval; an object
// is collected after identityGCGrace unused (and at least that old).
const (
	identityGCInterval = time.Minute
	identityGCGrace    = 5 * time.Minute
)

// clusterIdentities are the --k8s mode identity store and its collector.
type clusterIdentities struct {
	store *k8sstore.Store
	gc    *k8sstore.GC
	pods  atomic.Pointer[source.Snapshot] // last snapshot (Pods, Namespaces)
}

// identityStore returns where identity numbers live: SluiceIdentity objects
// on the API server in --k8s mode (shared by every node: the allocator's
// local GC only forgets numbers, deleting objects is k8sstore.GC's
// cluster-wide rule), a file in the run dir otherwise.
func (d *Daemon) identityStore() (store identity.Store, cluster bool, err error) {
	if !d.cfg.K8s {
		s, err := identitymgr.OpenFileStore(filepath.Join(d.cfg.RunDir, "identities.json"))
		return s, false, err
	}
	dyn, err := k8s.NewDynamicClient(d.cfg.Kubeconfig)
	if err != nil {
		return nil, false, err
	}
	s := k8sstore.New(dyn)
	d.clusterIDs = &clusterIdentities{store: s, gc: k8sstore.NewGC(s, identityGCGrace)}
	return s, true, nil
}

// recordSnapshot keeps the Pods and Namespaces the identity GC checks.
func (c *clusterIdentities) recordSnapshot(s source.Snapshot) {
	if c != nil {
		c.pods.Store(&source.Snapshot{Pods: s.Pods, Namespaces: s.Namespaces})
	}
}

// run starts the store's informer and, every identityGCInterval, syncs the
// allocator with the store and collects unused SluiceIdentity objects (once
// the Kubernetes source has synced).
func (c *clusterIdentities) run(ctx context.Context, d *Daemon) {
	c.store.Start(ctx)
	if err := c.store.WaitSynced(ctx); err != nil {
		return
	}
	t := time.NewTicker(identityGCInterval)
	defer t.Stop()
	log := d.log.WithField("subsys", "identity-gc")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Learn other nodes' identities and create again the objects of
		// numbers this node still references (collected or deleted by hand).
		if err := d.ids.Allocator().Sync(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Warn("Identity store sync incomplete")
		}
		snap := c.pods.Load()
		if snap == nil || !d.k8s.Synced() {
			continue
		}
		nsLabels := make(map[string]map[string]string, len(snap.Namespaces))
		for _, ns := range snap.Namespaces {
			nsLabels[ns.Name] = ns.Labels
		}
		inUse := make([]identity.Labels, 0, len(snap.Pods))
		for _, p := range snap.Pods {
			inUse = append(inUse, identity.PodLabels(p.Namespace, p.Labels, nsLabels[p.Namespace]))
		}
		deleted, err := c.gc.Collect(ctx, inUse)
		if err != nil && ctx.Err() == nil {
			log.WithError(err).Warn("Identity garbage collection incomplete")
		}
		if len(deleted) > 0 {
			log.WithField("identities", deleted).Info("Unused cluster identities collected")
		}
	}
}

// hostAddrs lists the IPv4 addresses of the agent's network namespace: they
// are reserved:host in the IP cache.
func hostAddrs() ([]netip.Addr, error) {
	addrs, err := netlinksafe.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && !ip.IsLoopback() {
			out = append(out, ip)
		}
	}
	return out, nil
}
