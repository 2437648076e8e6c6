package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath"
)

// datapathCollector exports sluice_metrics_v1, the BPF maps' pressure and
// the flow events lost at scrape time.
type datapathCollector struct {
	d        *Daemon
	drops    *prometheus.Desc
	forwards *prometheus.Desc
	pressure *prometheus.Desc
	capacity *prometheus.Desc
	// addrPressure, addrCapacity: the address policy trie
	// (sluice_policy_addr_v1).
	addrPressure *prometheus.Desc
	addrCapacity *prometheus.Desc
	// mapEntries, mapCapacity: every counted BPF map (as `sluice status`).
	mapEntries  *prometheus.Desc
	mapCapacity *prometheus.Desc
	// flowsLost: flow events the datapath could not send.
	flowsLost *prometheus.Desc
	// usage counts the maps' entries at most every mapUsageEvery.
	usage *usageCache
}

func newDatapathCollector(d *Daemon) *datapathCollector {
	return &datapathCollector{
		d: d, usage: &usageCache{every: mapUsageEvery, count: d.mapUsage},
		drops: prometheus.NewDesc("sluice_drops_total", "Packets dropped by the datapath, by reason and direction.",
			[]string{"reason", "direction"}, nil),
		forwards: prometheus.NewDesc("sluice_forwarded_total", "Packets forwarded by the datapath, by reason and direction.",
			[]string{"reason", "direction"}, nil),
		pressure: prometheus.NewDesc("sluice_policy_map_entries", "Entries in the policy map (all endpoints).", nil, nil),
		capacity: prometheus.NewDesc("sluice_policy_map_capacity", "Capacity of the policy map.", nil, nil),
		addrPressure: prometheus.NewDesc("sluice_policy_addr_map_entries",
			"Entries in the address policy trie (all endpoints; address rules such as ipBlock).", nil, nil),
		addrCapacity: prometheus.NewDesc("sluice_policy_addr_map_capacity", "Capacity of the address policy trie.", nil, nil),
		mapEntries: prometheus.NewDesc("sluice_bpf_map_entries",
			"Entries in a BPF map whose entries come and go (hash maps and tries), by map.", []string{"map"}, nil),
		mapCapacity: prometheus.NewDesc("sluice_bpf_map_capacity", "Capacity (max_entries) of a BPF map, by map.", []string{"map"}, nil),
		flowsLost: prometheus.NewDesc("sluice_flow_events_lost_total",
			"Flow events the datapath could not send (ring buffer full).", nil, nil),
	}
}

func (c *datapathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.drops
	ch <- c.forwards
	ch <- c.pressure
	ch <- c.capacity
	ch <- c.addrPressure
	ch <- c.addrCapacity
	ch <- c.mapEntries
	ch <- c.mapCapacity
	ch <- c.flowsLost
}

func (c *datapathCollector) Collect(ch chan<- prometheus.Metric) {
	if cs, err := c.d.dp.Metrics().Counters(); err == nil {
		type k struct{ reason, dir string }
		sum := map[k]uint64{}
		drop := map[k]bool{}
		for _, x := range cs {
			key := k{x.Reason.String(), x.Direction.String()}
			sum[key] += x.Packets
			drop[key] = x.Reason.IsDrop()
		}
		for key, v := range sum {
			desc := c.forwards
			if drop[key] {
				desc = c.drops
			}
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), key.reason, key.dir)
		}
	}
	if used, maxEntries, err := c.d.dp.Policy().Pressure(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.pressure, prometheus.GaugeValue, float64(used))
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(maxEntries))
	}
	if used, maxEntries, err := c.d.dp.Policy().AddrPressure(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.addrPressure, prometheus.GaugeValue, float64(used))
		ch <- prometheus.MustNewConstMetric(c.addrCapacity, prometheus.GaugeValue, float64(maxEntries))
	}
	// A map that could not be counted is left out; the others are exported.
	for _, u := range c.usage.get(time.Now()) {
		ch <- prometheus.MustNewConstMetric(c.mapEntries, prometheus.GaugeValue, float64(u.Entries), u.Name)
		ch <- prometheus.MustNewConstMetric(c.mapCapacity, prometheus.GaugeValue, float64(u.Capacity), u.Name)
	}
	if lost, err := c.d.dp.Flows().Lost(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.flowsLost, prometheus.CounterValue, float64(lost))
	}
}

// newRegistry returns the agent's metrics registry.
func (d *Daemon) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), newDatapathCollector(d))
	reg.MustRegister(d.svcs.Collectors()...)
	reg.MustRegister(d.hc.Collectors()...)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_services_programmed", Help: "Service frontends whose entries are all in the load-balancing maps.",
	}, func() float64 { return float64(programmed(d.svcs.Services())) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_identities", Help: "Security identities known to the agent (reserved included).",
	}, func() float64 { return float64(len(d.ids.Identities())) }))
	errs := prometheus.NewDesc("sluice_reconcile_errors_total", "Failed reconciliation passes, by subsystem.", []string{"subsys"}, nil)
	reg.MustRegister(&funcCollector{desc: errs, collect: func(ch chan<- prometheus.Metric) {
		n, _ := d.pols.Errors()
		ch <- prometheus.MustNewConstMetric(errs, prometheus.CounterValue, float64(n), "policy")
		n, _ = d.ids.Errors()
		ch <- prometheus.MustNewConstMetric(errs, prometheus.CounterValue, float64(n), "identity")
		n, _, _ = d.svcs.Errors()
		ch <- prometheus.MustNewConstMetric(errs, prometheus.CounterValue, float64(n), "services")
	}})
	full := prometheus.NewDesc("sluice_map_full_total", "Writes of the agent that found a BPF map full, by map.", []string{"map"}, nil)
	reg.MustRegister(&funcCollector{desc: full, collect: func(ch chan<- prometheus.Metric) {
		for name, n := range datapath.MapFullCounts() {
			ch <- prometheus.MustNewConstMetric(full, prometheus.CounterValue, float64(n), name)
		}
	}})
	return reg
}

// programmed counts the services with every entry in the maps.
func programmed(svcs []api.Service) int {
	n := 0
	for _, s := range svcs {
		if s.Error == "" {
			n++
		}
	}
	return n
}

type funcCollector struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// serveMetrics serves /metrics on addr until ctx ends.
func (d *Daemon) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
