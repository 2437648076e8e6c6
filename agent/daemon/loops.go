package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/servicemgr"
	"github.com/sluicenet/sluice/agent/source"
)

// startLoops starts on wg, until ctx ends, the owner loops, the flow
// reader, the metrics and health listeners, the state source and the
// Kubernetes-only tasks.
//
// The loops that write what the state source says (services, identities
// and the IP cache, policy) start with its first snapshot when there is a
// source: before it they know no Service, Pod, Namespace or policy, and a
// full sync would prune what the previous agent programmed. On a restart
// that would break established Service connections and, worse, let through
// traffic a policy denies (endpoints' policy configs rewritten to "not
// enforced", pod identities dropped from the IP cache) for as long as the
// source takes (in Kubernetes mode, as long as the API server cannot be
// reached). The policy loop starts after the identity manager's first sync,
// so that its first full sync knows every endpoint.
func (d *Daemon) startLoops(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() { d.resyncLoop(ctx) })
	wg.Go(func() { d.sampleRates(ctx) })
	var polsOnce sync.Once
	d.ids.OnSynced(func() {
		if ctx.Err() == nil {
			polsOnce.Do(func() { wg.Go(func() { d.pols.Run(ctx) }) })
		}
	})
	var once sync.Once
	d.startSourceLoops = func() {
		once.Do(func() {
			wg.Go(func() { d.svcs.Run(ctx) })
			wg.Go(func() { d.ids.Run(ctx, nil) })
			close(d.sourceLoops)
		})
	}
	if d.source == nil {
		d.startSourceLoops()
	}
	wg.Go(func() { d.nodes.Run(ctx) })
	d.runHealthChecks(ctx, wg)
	logErr := func(msg string, run func() error) func() {
		return func() {
			if err := run(); err != nil && ctx.Err() == nil {
				d.log.WithError(err).Error(msg)
			}
		}
	}
	wg.Go(logErr("Flow reader stopped", func() error { return d.flows.Run(ctx, d.flowR) }))
	if d.proc != nil {
		d.proc.run(ctx, wg, d.sourceLoops, logErr)
	}
	if d.metricsLn != nil {
		wg.Go(logErr("Metrics server stopped", func() error { return d.serveMetrics(ctx, d.metricsLn) }))
	}
	if d.healthLn != nil {
		wg.Go(logErr("Health probe server stopped", func() error { return d.serveHealth(ctx, d.healthLn) }))
	}
	if d.source != nil {
		wg.Go(logErr("State source stopped", func() error { return d.source.Run(ctx, d.applySnapshot) }))
	}
	if d.k8s != nil && d.clusterIDs != nil {
		wg.Go(func() { d.clusterIDs.run(ctx, d) })
	}
	if d.k8s != nil {
		wg.Go(logErr("No CNI conflist written", func() error { return d.writeConflist(ctx, d.k8s) }))
	}
}

// applySnapshot hands a state source snapshot to the managers; the first
// one starts the loops that write it (startLoops).
func (d *Daemon) applySnapshot(s source.Snapshot) {
	d.svcs.SetObjects(servicemgr.Objects{Services: s.Services, EndpointSlices: s.EndpointSlices, Pods: s.Pods, Changes: s.Changes})
	d.ids.SetObjects(identitymgr.Objects{Pods: s.Pods, Namespaces: s.Namespaces})
	d.pols.SetObjects(s.Others)
	d.setNodes(s)
	d.recordNodeEligible(s)
	d.clusterIDs.recordSnapshot(s)
	if d.proc != nil {
		d.proc.assoc.SetPods(s.Pods)
		d.proc.policies.SetPods(s.Pods)
		d.proc.policies.SetObjects(s.Others)
	}
	d.ready.snapshot.Store(true)
	d.ready.lastSnapshot.Store(time.Now().UnixNano())
	d.startSourceLoops()
}

// waitSourceLoops waits until the loops that write what the state source
// says have started (at once without a source), or ctx ends.
func (d *Daemon) waitSourceLoops(ctx context.Context) error {
	if d.source == nil {
		return nil
	}
	select {
	case <-d.sourceLoops:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no snapshot from the state source yet: %w", context.Cause(ctx))
	}
}
