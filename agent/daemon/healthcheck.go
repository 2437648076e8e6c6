package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/healthcheck"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/agent/source"
)

// toBeDeletedTaint marks a node the cluster autoscaler is removing:
// kube-proxy's node health check fails for it, so load balancers drain it.
const toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// proxyHealthTimeout is how long a Service change may wait to be
// programmed before the proxy counts as unhealthy: two resync periods, as
// kube-proxy's health timeout is two sync periods.
func (d *Daemon) proxyHealthTimeout() time.Duration { return 2 * d.cfg.ResyncInterval }

// setupHealthChecks constructs the health-check node port manager and
// hands it the service manager's health checks.
func (d *Daemon) setupHealthChecks() {
	d.nodeEligible.Store(true)
	d.hc = healthcheck.New(healthcheck.Config{
		Resync: d.cfg.ResyncInterval,
		ProxyHealthy: func() bool {
			_, ok := d.svcs.ProxyHealth(d.proxyHealthTimeout())
			return ok
		},
		// Set up before the Kubernetes source; runs only after it.
		ListenFailed: func(n types.NamespacedName, port uint16, err error) {
			if d.k8sEvents != nil {
				d.k8sEvents.healthCheckFailed(n, port, err)
			}
		},
	}, d.log.WithField("subsys", "healthcheck"))
	d.svcs.OnHealthChecks(d.hc.Set)
}

// runHealthChecks starts, on wg until ctx ends, the health-check node port
// loop and the node's proxy health server (ProxyHealthAddr).
func (d *Daemon) runHealthChecks(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() { d.hc.Run(ctx) })
	if d.cfg.ProxyHealthAddr != "" {
		h := healthcheck.NodeHandler(d.proxyState, nil)
		wg.Go(func() { healthcheck.ServeNode(ctx, d.cfg.ProxyHealthAddr, h, d.log.WithField("subsys", "healthcheck")) })
	}
}

// proxyState is what the node's proxy health check reports.
func (d *Daemon) proxyState() healthcheck.ProxyState {
	updated, healthy := d.svcs.ProxyHealth(d.proxyHealthTimeout())
	return healthcheck.ProxyState{LastUpdated: updated, Healthy: healthy, NodeEligible: d.nodeEligible.Load()}
}

// recordNodeEligible notes from a snapshot's Node objects whether this
// node is being deleted or drained by the cluster autoscaler (no Node
// object, as in standalone mode: eligible).
func (d *Daemon) recordNodeEligible(s source.Snapshot) {
	d.nodeEligible.Store(nodeEligible(s.Nodes, d.cfg.NodeName))
}

func nodeEligible(nodes []*corev1.Node, name string) bool {
	for _, n := range nodes {
		if n.Name != name {
			continue
		}
		if n.DeletionTimestamp != nil {
			return false
		}
		for _, t := range n.Spec.Taints {
			if t.Key == toBeDeletedTaint {
				return false
			}
		}
	}
	return true
}

// servicesWithHealthChecks is the service manager for the API, its
// services annotated with their health-check node ports.
type servicesWithHealthChecks struct {
	svcs server.Services
	hc   *healthcheck.Manager
}

func (s servicesWithHealthChecks) LBMaps() (api.LBMaps, error)       { return s.svcs.LBMaps() }
func (s servicesWithHealthChecks) Conntrack() ([]api.CTEntry, error) { return s.svcs.Conntrack() }
func (s servicesWithHealthChecks) MaglevTables(service string) ([]api.MaglevTable, error) {
	return s.svcs.MaglevTables(service)
}

func (s servicesWithHealthChecks) Services() []api.Service {
	svcs := s.svcs.Services()
	byName := map[string]*api.ServiceHealthCheck{}
	for _, st := range s.hc.Status() {
		byName[st.Namespace+"/"+st.Name] = &api.ServiceHealthCheck{
			Port: int(st.Port), LocalEndpoints: st.LocalEndpoints, Listening: st.Listening, Error: st.Error,
		}
	}
	for i := range svcs {
		n, _, _ := strings.Cut(svcs[i].Name, ":") // namespace/name[:port]
		if hc, ok := byName[n]; ok {
			c := *hc
			svcs[i].HealthCheck = &c
		}
	}
	return svcs
}

// healthCheckStatus fills the health-check node ports; one that cannot be
// opened is a warning (that Service's load balancer drains this node).
func (d *Daemon) healthCheckStatus(st *api.Status) {
	for _, s := range d.hc.Status() {
		if s.Listening {
			st.Services.HealthCheckPorts++
			continue
		}
		msg := fmt.Sprintf("%s/%s port %d: %s", s.Namespace, s.Name, s.Port, s.Error)
		st.Services.HealthCheckFailed = append(st.Services.HealthCheckFailed, msg)
		st.Warnings = append(st.Warnings, "health-check node port not open: "+msg)
	}
}
