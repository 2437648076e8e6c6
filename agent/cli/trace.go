package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

// traceFlags are the flags of `sluice policy trace`.
type traceFlags struct {
	src, srcCIDR, dst, dstCIDR, dstService, dport string
	srcLabels, dstLabels                          []string
}

// request builds the trace request the flags describe.
func (f traceFlags) request() (api.TraceRequest, error) {
	req := api.TraceRequest{
		Src: api.TracePeer{Pod: f.src, Labels: f.srcLabels, CIDR: f.srcCIDR},
		Dst: api.TracePeer{Pod: f.dst, Labels: f.dstLabels, CIDR: f.dstCIDR, Service: f.dstService},
	}
	var err error
	if req.Port, req.Protocol, err = api.ParsePortProto(f.dport); err != nil {
		return req, fmt.Errorf("--dport: %w", err)
	}
	if k, err := req.Src.Kind(); err != nil || k == "" {
		return req, errors.New("name the source once: --src, --src-labels or --src-cidr")
	}
	if k, err := req.Dst.Kind(); err != nil || k == "" {
		return req, errors.New("name the destination once: --dst, --dst-labels, --dst-cidr or --dst-service")
	}
	return req, nil
}

func policyTraceCommand(o *options) *cobra.Command {
	var (
		f      traceFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Show whether a new flow would be allowed, and by which rule, from the policy maps the kernel holds",
		Long: `Trace computes the verdict of each direction of a new flow (the source's egress
policy and the destination's ingress policy, where they are local endpoints of
this node) by looking the policy maps up the way the datapath does, and names
the deciding rule (namespace/name[section:index]) or "default deny" / "no
policy", as 'sluice observe' names them for real traffic. A flow to a service
is traced to each of its backends on the backend's port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			res, err := o.client().Trace(cmd.Context(), req)
			if errors.Is(err, api.ErrNotFound) {
				return errors.New("the agent does not serve policy traces (an older version?)")
			}
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), output, res, func(w io.Writer) error { return WriteTrace(w, res) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.src, "src", "", "source pod ([namespace/]name)")
	fl.StringSliceVar(&f.srcLabels, "src-labels", nil, "source by labels (k=v,...): the identity holding them all")
	fl.StringVar(&f.srcCIDR, "src-cidr", "", "source address or CIDR")
	fl.StringVar(&f.dst, "dst", "", "destination pod ([namespace/]name)")
	fl.StringSliceVar(&f.dstLabels, "dst-labels", nil, "destination by labels (k=v,...)")
	fl.StringVar(&f.dstCIDR, "dst-cidr", "", "destination address or CIDR")
	fl.StringVar(&f.dstService, "dst-service", "", "destination service ([namespace/]name): each backend of its cluster IP on --dport is traced")
	fl.StringVar(&f.dport, "dport", "", "destination port and protocol: 80/TCP, 53/UDP, 8/ICMP (type); TCP if omitted")
	_ = cmd.MarkFlagRequired("dport")
	addOutputFlag(cmd, &output)
	return cmd
}

// WriteTrace prints a trace: the ends, then per path (a service's backend)
// the verdict of each direction and the overall one.
func WriteTrace(w io.Writer, r api.TraceResult) error {
	dst := "service " + r.ServiceName + " (" + r.Service + ")"
	if r.Service == "" && len(r.Paths) > 0 {
		dst = traceEnd(r.Paths[0].Dst)
	}
	fmt.Fprintf(w, "Tracing %s -> %s on %d/%s\n", traceEnd(r.Src), dst, r.Port, r.Protocol)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	for _, p := range r.Paths {
		fmt.Fprintln(w)
		if p.Backend != "" {
			state := ""
			if p.Terminating {
				state = " (terminating: takes no new flow)"
			}
			fmt.Fprintf(w, "Backend %s: %s%s\n", p.Backend, traceEnd(p.Dst), state)
		}
		tw := newTabWriter(w)
		writeTraceVerdict(tw, "egress", r.Src.Name, p.Egress)
		writeTraceVerdict(tw, "ingress", p.Dst.Name, p.Ingress)
		if err := tw.Flush(); err != nil {
			return err
		}
		verdict := "DROPPED"
		if p.Allowed {
			verdict = "FORWARDED"
		}
		fmt.Fprintf(w, "Verdict: %s\n", verdict)
	}
	return nil
}

// writeTraceVerdict writes a direction's verdict: the endpoint whose policy
// decides, the verdict and what decided; end names a peer that is not a
// local endpoint.
func writeTraceVerdict(w io.Writer, dir, end string, v *api.TraceVerdict) {
	if v == nil {
		fmt.Fprintf(w, "  %s\t%s\tnot enforced here (not a local endpoint)\n", dir, end)
		return
	}
	line := fmt.Sprintf("  %s\t%s\t%s\t%s", dir, v.Endpoint, v.Verdict, v.Decision)
	if v.Reason != "" {
		line += " (" + v.Reason + ")"
	}
	fmt.Fprintln(w, line)
}

// traceEnd describes an end: name, address and identity.
func traceEnd(e api.TraceEnd) string {
	var b strings.Builder
	b.WriteString(e.Name)
	var attrs []string
	if e.Address != "" && e.Address != e.Name && e.Name != e.Address+"/32" {
		attrs = append(attrs, e.Address)
	}
	id := fmt.Sprintf("identity %d", e.Identity)
	if e.IdentityName != "" {
		id += " " + e.IdentityName
	}
	attrs = append(attrs, id)
	fmt.Fprintf(&b, " (%s)", strings.Join(attrs, ", "))
	return b.String()
}
