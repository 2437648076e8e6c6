package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

// ErrUnhealthy is returned by `sluice status` (after printing the status)
// when the agent reports problems, so the command exits non-zero.
var ErrUnhealthy = errors.New("agent unhealthy")

func statusCommand(o *options) *cobra.Command {
	var (
		output  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's state; exit non-zero when it is unhealthy",
		Long: `Status shows the agent's version, state source, kube-proxy replacement, routing,
IPAM, endpoints, identities, policies, services, BPF maps (entries/capacity,
a warning above 90 %), owner loops (last success, last error, retries),
flow and process event rates and losses, and the tracing hooks in use.

The agent is unhealthy, and the command exits 1 after printing, when: it is
not ready (datapath not loaded or a pod program not pinned; Kubernetes
caches not synced or the API server not answering; no state snapshot applied
yet or identities not synced since), an owner loop's last sync failed (it is
retrying), or a desired service frontend is not programmed. Warnings (a map
above 90 %, events lost, a rejected policy) do not make it unhealthy. An
agent that cannot be reached is an error (exit 1 too).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := o.client()
			st, err := c.Status(cmd.Context())
			if errors.Is(err, api.ErrNotFound) {
				// An agent that predates GET /v1/status.
				h, herr := c.Healthz(cmd.Context())
				if herr != nil {
					return herr
				}
				return render(cmd.OutOrStdout(), output, h, func(w io.Writer) error { return WriteHealth(w, h) })
			}
			if err != nil {
				return err
			}
			if err := render(cmd.OutOrStdout(), output, st, func(w io.Writer) error { return WriteStatus(w, st, verbose, time.Now()) }); err != nil {
				return err
			}
			if !st.Healthy {
				return fmt.Errorf("%w: %s", ErrUnhealthy, strings.Join(st.Problems, "; "))
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list every BPF map, owner loop, rejected policy and failed service")
	return cmd
}

// WriteStatus prints the status: one line per area, then with verbose the
// tables of maps and loops and the lists behind the counts.
func WriteStatus(w io.Writer, st api.Status, verbose bool, now time.Time) error {
	tw := newTabWriter(w)
	health := "OK"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	line := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	line("Health", "%s", health)
	for _, p := range st.Problems {
		line("  Problem", "%s", p)
	}
	for _, p := range st.Warnings {
		line("  Warning", "%s", p)
	}
	line("Version", "%s", st.Version)
	line("Node", "%s, up %s", st.Node, ago(st.Started, now))
	line("Mode", "%s", sourceLine(st.Source, now))
	line("KubeProxyReplacement", "%s", kubeProxyLine(st.KubeProxy))
	line("Routing", "%s", routingLine(st.Routing))
	line("IPAM", "%s", ipamLine(st.IPAM))
	line("Endpoints", "%d", st.Endpoints)
	line("Identities", "%d", st.Identities)
	p := st.Policies
	line("Policies", "%d accepted, %d rejected; %d endpoints enforced, %d in audit (enforcement %s%s)",
		p.Accepted, len(p.Rejected), p.Enforced, p.AuditEndpoints, p.Enforcement, map[bool]string{true: ", audit mode"}[p.Audit])
	svcLine := fmt.Sprintf("%d/%d frontends programmed", st.Services.Programmed, st.Services.Desired)
	if n, bad := st.Services.HealthCheckPorts, len(st.Services.HealthCheckFailed); n+bad > 0 {
		svcLine += fmt.Sprintf("; %d/%d health-check node ports open", n, n+bad)
	}
	line("Services", "%s", svcLine)
	line("BPF maps", "%s", mapsLine(st.Maps))
	line("Owner loops", "%s", loopsLine(st.Loops))
	line("Flows", "%s", eventsLine(st.Flows))
	if pr := st.Process; pr != nil {
		line("Process events", "%s", eventsLine(pr.Events))
		line("Tracing hooks", "%s", strings.Join(pr.Hooks, ", "))
	} else {
		line("Process events", "off (no process sensor)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if verbose {
		return writeStatusDetails(w, st, now)
	}
	return nil
}

func writeStatusDetails(w io.Writer, st api.Status, now time.Time) error {
	if len(st.Policies.Rejected) > 0 {
		fmt.Fprintln(w, "\nRejected policies:")
		for _, r := range st.Policies.Rejected {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Reason)
		}
	}
	if len(st.Services.Failed) > 0 {
		fmt.Fprintln(w, "\nServices not programmed:")
		for _, f := range st.Services.Failed {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	if len(st.Services.HealthCheckFailed) > 0 {
		fmt.Fprintln(w, "\nHealth-check node ports not open:")
		for _, f := range st.Services.HealthCheckFailed {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintln(w, "\nBPF maps:")
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "  NAME\tTYPE\tENTRIES\tCAPACITY\tUSE\tWARNING\tFULL WRITES")
	for _, m := range st.Maps {
		warn := "-"
		if m.Warning {
			warn = fmt.Sprintf("above %d%%", api.MapWarnPercent)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%.1f%%\t%s\t%d\n", m.Name, m.Type, m.Entries, m.Capacity, m.Percent, warn, m.FullWrites)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nOwner loops:")
	tw = newTabWriter(w)
	fmt.Fprintln(tw, "  NAME\tSYNCS\tFAILURES\tRETRIES\tLAST SUCCESS\tLAST ERROR")
	for _, l := range st.Loops {
		lastErr := "-"
		if l.LastError != "" {
			lastErr = fmt.Sprintf("%s ago: %s", ago(l.LastFailure, now), l.LastError)
		}
		success := "never"
		if !l.LastSuccess.IsZero() {
			success = ago(l.LastSuccess, now) + " ago"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\n", l.Name, l.Syncs, l.Failures, l.Retries, success, lastErr)
	}
	return tw.Flush()
}

// ago is the time from t to now, rounded for reading.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func sourceLine(s api.SourceStatus, now time.Time) string {
	var parts []string
	switch s.Mode {
	case "kubernetes":
		parts = append(parts, "API server "+s.APIServer, map[bool]string{true: "caches synced", false: "caches not synced"}[s.CachesSynced])
	case "standalone":
		parts = append(parts, "manifests "+s.ManifestsDir)
	}
	if !s.LastSnapshot.IsZero() {
		parts = append(parts, "last snapshot "+ago(s.LastSnapshot, now)+" ago")
	} else if s.Mode != "none" {
		parts = append(parts, "no snapshot yet")
	}
	if len(parts) == 0 {
		return s.Mode
	}
	return s.Mode + " (" + strings.Join(parts, ", ") + ")"
}

func kubeProxyLine(k api.KubeProxyStatus) string {
	var parts []string
	if k.SocketLB {
		parts = append(parts, "socket LB (cgroup "+k.SocketLBCgroup+")")
	} else {
		parts = append(parts, "socket LB off")
	}
	if k.PerPacketLB {
		parts = append(parts, "per-packet LB (pod tc)")
	}
	if len(k.NodePortDevices) > 0 {
		np := "NodePort on " + strings.Join(k.NodePortDevices, ", ") + " (" + k.NodePortAttach + ")"
		if k.LBAcceleration != "" && k.LBAcceleration != "disabled" {
			var xs []string
			for _, dev := range k.NodePortDevices {
				xs = append(xs, dev+" "+k.NodePortXDP[dev])
			}
			np += ", acceleration " + k.LBAcceleration + ": " + strings.Join(xs, ", ")
		}
		if k.LBMode != "" && k.LBMode != "snat" {
			np += ", mode " + k.LBMode
		}
		if k.NodeIP != "" {
			np += ", SNAT to " + k.NodeIP
		}
		parts = append(parts, np)
	} else {
		parts = append(parts, "NodePort off (no device)")
	}
	parts = append(parts, "algorithm "+k.Algorithm)
	if k.ServiceProxyName != "" {
		parts = append(parts, "service-proxy-name "+k.ServiceProxyName)
	}
	return strings.Join(parts, ", ")
}

func routingLine(r api.RoutingStatus) string {
	s := r.Mode
	if r.Tunnel != "" {
		s += " (tunnel " + r.Tunnel + ")"
	}
	s += fmt.Sprintf(", pod MTU %d", r.PodMTU)
	if r.UnderlayMTU > 0 {
		s += fmt.Sprintf(" (underlay %d)", r.UnderlayMTU)
	}
	return s + fmt.Sprintf(", %d peer nodes", r.Peers)
}

func ipamLine(i api.IPAMStatus) string {
	if i.PodCIDR == "" {
		return fmt.Sprintf("%d addresses used (PodCIDR not known to the agent)", i.Used)
	}
	return fmt.Sprintf("%s: %d used, %d free", i.PodCIDR, i.Used, i.Free)
}

func mapsLine(ms []api.MapStatus) string {
	if len(ms) == 0 {
		return "-"
	}
	fullest, warn := ms[0], 0
	for _, m := range ms {
		if m.Percent > fullest.Percent {
			fullest = m
		}
		if m.Warning {
			warn++
		}
	}
	return fmt.Sprintf("%d maps, %d above %d%%; fullest %s %.1f%% (%d/%d)", len(ms), warn, api.MapWarnPercent,
		fullest.Name, fullest.Percent, fullest.Entries, fullest.Capacity)
}

func loopsLine(ls []api.LoopStatus) string {
	var failing []string
	for _, l := range ls {
		if l.Retries > 0 {
			failing = append(failing, l.Name)
		}
	}
	if len(failing) == 0 {
		return fmt.Sprintf("%d, all synced", len(ls))
	}
	return fmt.Sprintf("%d, %d failing (%s)", len(ls), len(failing), strings.Join(failing, ", "))
}

func eventsLine(e api.EventStats) string {
	s := fmt.Sprintf("%.1f/s (last minute), %d total, %d lost", e.Rate, e.Total, e.Lost)
	if e.RateLimited > 0 {
		s += fmt.Sprintf(", %d rate-limited", e.RateLimited)
	}
	return s
}
