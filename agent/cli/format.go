package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// PodName returns "namespace/name", or "-" when the endpoint has no pod.
func PodName(ep api.Endpoint) string {
	switch {
	case ep.PodName == "":
		return "-"
	case ep.PodNamespace == "":
		return ep.PodName
	}
	return ep.PodNamespace + "/" + ep.PodName
}

// Totals sums an endpoint's forwarded and dropped packets.
func Totals(ep api.Endpoint) (forwarded, dropped uint64) {
	for _, c := range ep.Counters {
		if c.Drop {
			dropped += c.Packets
		} else {
			forwarded += c.Packets
		}
	}
	return forwarded, dropped
}

// WriteEndpointTable prints one row per endpoint.
func WriteEndpointTable(w io.Writer, eps []api.Endpoint) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "ID\tPOD\tIPV4\tHOST-IF\tIFINDEX\tFORWARDED\tDROPPED")
	for _, ep := range eps {
		fwd, drop := Totals(ep)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\n",
			ep.ID, PodName(ep), ep.IPv4, ep.HostIfName, ep.HostIfIndex, fwd, drop)
	}
	return tw.Flush()
}

// WriteEndpoint prints one endpoint's fields, then its counters per
// direction and reason.
func WriteEndpoint(w io.Writer, ep api.Endpoint) error {
	tw := newTabWriter(w)
	created := "-"
	if !ep.Created.IsZero() {
		created = ep.Created.Local().Format(time.RFC3339)
	}
	fields := [][2]string{
		{"ID", strconv.Itoa(int(ep.ID))},
		{"Container", ep.ContainerID},
		{"Interface", ep.IfName},
		{"Pod", PodName(ep)},
		{"Netns", orDash(ep.NetNS)},
		{"IPv4", ep.IPv4},
		{"MAC", ep.MAC},
		{"Host interface", fmt.Sprintf("%s (ifindex %d)", ep.HostIfName, ep.HostIfIndex)},
		{"Host MAC", ep.HostMAC},
		{"Created", created},
	}
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return WriteCounters(w, ep.Counters)
}

// WriteCounters prints a counter table.
func WriteCounters(w io.Writer, cs []api.Counter) error {
	if len(cs) == 0 {
		_, err := fmt.Fprintln(w, "No counters yet.")
		return err
	}
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "DIRECTION\tREASON\tVERDICT\tPACKETS\tBYTES")
	for _, c := range cs {
		verdict := "forwarded"
		if c.Drop {
			verdict = "dropped"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", c.Direction, c.Reason, verdict, c.Packets, c.Bytes)
	}
	return tw.Flush()
}

// WriteHealth prints the agent's health.
func WriteHealth(w io.Writer, h api.Health) error {
	tw := newTabWriter(w)
	fmt.Fprintf(tw, "Status:\t%s\n", h.Status)
	fmt.Fprintf(tw, "BPF root:\t%s\n", h.BPFRoot)
	fmt.Fprintf(tw, "Endpoints:\t%d\n", h.Endpoints)
	if t := h.Tracing; t != nil {
		fmt.Fprintf(tw, "Process sensor:\t%s (events lost: %d)\n", strings.Join(t.Hooks, ", "), t.Lost)
	} else {
		fmt.Fprintf(tw, "Process sensor:\toff\n")
	}
	return tw.Flush()
}

// WriteJSON prints v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
