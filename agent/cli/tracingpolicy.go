package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

func tracingPolicyCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tracingpolicy",
		Aliases: []string{"tp"},
		Short:   "Inspect tracing policies and switch them between monitor and enforce (like tetra tracingpolicy)",
	}
	var listOutput string
	list := &cobra.Command{
		Use:   "list",
		Short: "List tracing policies with their mode, status and counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := o.client().TracingPolicies(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), listOutput, ps, func(w io.Writer) error { return WriteTracingPolicies(w, ps) })
		},
	}
	addOutputFlag(list, &listOutput)

	var getOutput, getNS string
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one tracing policy (-n NAMESPACE for a SluiceTracingPolicyNamespaced)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.client().TracingPolicy(cmd.Context(), getNS, args[0])
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), getOutput, p, func(w io.Writer) error { return WriteTracingPolicy(w, p) })
		},
	}
	addOutputFlag(get, &getOutput)
	get.Flags().StringVarP(&getNS, "namespace", "n", "", "namespace of a SluiceTracingPolicyNamespaced")

	var setNS string
	setMode := &cobra.Command{
		Use:   "set-mode NAME monitor|enforce",
		Short: "Set a tracing policy's mode (kept until the object's own policy-mode changes)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.client().SetTracingPolicyMode(cmd.Context(), setNS, args[0], args[1])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s: mode %s\n", p.Kind, tracingPolicyName(p), p.Mode)
			return err
		},
	}
	setMode.Flags().StringVarP(&setNS, "namespace", "n", "", "namespace of a SluiceTracingPolicyNamespaced")
	cmd.AddCommand(list, get, setMode)
	return cmd
}

func tracingPolicyName(p api.TracingPolicy) string {
	if p.Namespace != "" {
		return p.Namespace + "/" + p.Name
	}
	return p.Name
}

// tracingMode is the mode, marked "(set)" when set-mode overrides the
// object's.
func tracingMode(p api.TracingPolicy) string {
	if p.ModeOverridden {
		return p.Mode + " (set)"
	}
	return orDash(p.Mode)
}

func tracingStatus(p api.TracingPolicy) string {
	if p.Accepted {
		return "accepted"
	}
	return "rejected"
}

// WriteTracingPolicies writes the tracing policy list.
func WriteTracingPolicies(w io.Writer, ps []api.TracingPolicy) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "KIND\tPOLICY\tMODE\tSTATUS\tPOSTED\tENFORCED\tMONITORED\tREASON")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", p.Kind, tracingPolicyName(p), tracingMode(p), tracingStatus(p),
			p.EventsPosted, p.ActionsEnforced, p.ActionsMonitored, orDash(p.Reason))
	}
	return tw.Flush()
}

// WriteTracingPolicy writes one tracing policy.
func WriteTracingPolicy(w io.Writer, p api.TracingPolicy) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\nMode: %s\nStatus: %s\n", p.Kind, tracingPolicyName(p), tracingMode(p), tracingStatus(p))
	if p.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", p.Reason)
	}
	fmt.Fprintf(&b, "Events posted: %d\nActions enforced: %d\nActions monitored: %d\n",
		p.EventsPosted, p.ActionsEnforced, p.ActionsMonitored)
	_, err := io.WriteString(w, b.String())
	return err
}

// tracepointLine formats a policy event:
//
//	🔒 sigkill default/a /usr/bin/nc (policy no-nc)
//	🔍 would sigkill default/a /usr/bin/nc (policy no-nc)
//	☎ exec default/a /usr/bin/nc (policy no-nc)
func tracepointLine(tp *api.ProcessTracepoint) string {
	what := binary(tp.Process)
	if len(tp.Args) > 0 {
		what = argString(tp.Args[0])
	}
	what = ProcessPod(tp.Process) + " " + what
	if tp.PolicyName != "" {
		what += " (policy " + tp.PolicyName + ")"
	}
	action := strings.ToLower(strings.TrimPrefix(tp.Action, "KPROBE_ACTION_"))
	switch {
	case action == "post" || action == "nopost":
		verb := strings.TrimPrefix(tp.Event, "sched_process_")
		if tp.Subsys != "sched" {
			verb = tp.Subsys + "/" + tp.Event
		}
		return "☎ " + verb + " " + what
	case tp.Enforced:
		return "🔒 " + action + " " + what
	}
	return "🔍 would " + action + " " + what
}

// argString formats one event argument (the CLI's compact form).
func argString(a api.TracepointArg) string {
	switch {
	case a.StringArg != nil:
		return *a.StringArg
	case a.IntArg != nil:
		return fmt.Sprint(*a.IntArg)
	case a.SizeArg != nil:
		return fmt.Sprint(*a.SizeArg)
	case a.SockaddrArg != nil:
		return fmt.Sprintf("%s:%d", a.SockaddrArg.Addr, a.SockaddrArg.Port)
	}
	return ""
}
