package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

func observeCommand(o *options) *cobra.Command {
	var (
		f      api.FlowFilter
		since  string
		output string
	)
	cmd := &cobra.Command{
		Use:   "observe",
		Short: "Show flows with their policy verdicts and the rule that decided (like hubble observe)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := setSince(since, &f.Since); err != nil {
				return err
			}
			if output != OutputTable && output != OutputJSON {
				return fmt.Errorf("unknown output format %q (want table or json)", output)
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			return o.client().Flows(cmd.Context(), f, func(fl api.Flow) error {
				if output == OutputJSON {
					return enc.Encode(fl)
				}
				_, err := io.WriteString(w, FlowLine(fl)+"\n")
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Verdict, "verdict", "", "only flows with this verdict: FORWARDED, DROPPED, AUDIT")
	fl.StringVar(&f.FromPod, "from-pod", "", "only flows from this pod ([namespace/]name)")
	fl.StringVar(&f.ToPod, "to-pod", "", "only flows to this pod ([namespace/]name)")
	fl.StringVar(&f.Namespace, "namespace", "", "only flows from or to pods of this namespace")
	fl.StringArrayVar(&f.Labels, "label", nil, "only flows whose source or destination has this label (key=value; repeatable)")
	fl.Uint32Var(&f.Identity, "identity", 0, "only flows from or to this identity")
	fl.Uint16Var(&f.Port, "port", 0, "only flows from or to this port")
	fl.StringVar(&f.Protocol, "protocol", "", "only flows of this protocol: TCP, UDP, ICMP")
	fl.StringVar(&since, "since", "", "only flows since this time (RFC 3339) or duration ago (5m)")
	fl.IntVar(&f.Last, "last", 0, "only the last N flows of the history")
	fl.BoolVarP(&f.Follow, "follow", "f", false, "keep streaming new flows")
	addOutputFlag(cmd, &output)
	return cmd
}

// setSince parses a --since value (RFC 3339 or a duration ago) into t,
// leaving it alone when s is empty.
func setSince(s string, t *time.Time) error {
	if s == "" {
		return nil
	}
	v, err := api.ParseSince(s, time.Now())
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	*t = v
	return nil
}

// FlowLine formats a flow on one line: time, source, destination, verdict,
// direction and the rule that decided (or the default verdict's reason).
func FlowLine(f api.Flow) string {
	from := f.Source
	if f.SrcPod != "" {
		from = f.SrcPod + " (" + f.Source + ")"
	}
	if p := f.Process; p != nil {
		from += fmt.Sprintf(" [%s pid %d]", p.Binary, p.PID)
	}
	to := f.Destination
	if f.DstPod != "" {
		to = f.DstPod + " (" + f.Destination + ")"
	}
	if f.OrigDest != "" {
		to += " via " + f.OrigDest
	}
	rule := api.Decision(f.Verdict, f.Rule)
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s -> %s  %s  %s %s  %s", f.Time.Local().Format("Jan _2 15:04:05.000"), from, to,
		f.Protocol, f.Verdict, f.Direction, rule)
	if f.Reason != "" && (f.Verdict == "DROPPED" || f.Verdict == "AUDIT") {
		fmt.Fprintf(&b, " (%s)", f.Reason)
	}
	return b.String()
}
