package cli

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

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

	var entriesOutput string
	entries := &cobra.Command{
		Use:   "entries",
		Short: "Count the entries of the tracing rule maps in the kernel (all 0 without policies)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			es, err := o.client().TracingRuleEntries(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), entriesOutput, es, func(w io.Writer) error { return WriteTracingRuleEntries(w, es) })
		},
	}
	addOutputFlag(entries, &entriesOutput)
	cmd.AddCommand(list, get, setMode, entries)
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
	if len(p.Hooks) > 0 {
		b.WriteString("Hooks:\n")
		tw := newTabWriter(&b)
		fmt.Fprintln(tw, "  TABLE\tHOOK\tSLOTS\tSYSCALLS")
		for _, h := range p.Hooks {
			syscalls := strings.Join(h.Syscalls, ",")
			if h.Table == "syscall" && syscalls == "" {
				syscalls = "all"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Table, h.Hook, orDash(intList(h.Slots)), orDash(syscalls))
		}
		tw.Flush()
	}
	if len(p.Classes) > 0 {
		fmt.Fprintf(&b, "Binary classes: %s\n", intList(p.Classes))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// intList joins numbers with commas.
func intList(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// tracepointLine formats a policy event:
//
//	🔒 sigkill default/a /usr/bin/nc (policy no-nc)
//	🔍 would sigkill default/a /usr/bin/nc (policy no-nc)
//	☎ exec default/a /usr/bin/nc (policy no-nc)
//	☎ syscall default/a /usr/bin/cat openat /etc/shadow (policy p)
//	🔒 sigkill default/a /usr/bin/cat openat /etc/shadow (policy p)
//	🔒 deny default/a /usr/bin/curl connect 10.0.0.1:80 (policy p)
//	🔍 would deny default/a /usr/bin/curl connect 10.0.0.1:80 (policy p)
//	☎ connect default/a /usr/bin/curl 10.0.0.1:80 (policy p)
//
// Exec rules name the binary exec'd; syscall rules the syscall, its
// captured values and, at sys_exit, "= return value"; connect rules the
// destination (with the backend the socket LB chose in parentheses).
func tracepointLine(tp *api.ProcessTracepoint) string {
	hook, detail := tracepointDetail(tp)
	pod := ProcessPod(tp.Process) + " "
	tail := ""
	if tp.PolicyName != "" {
		tail = " (policy " + tp.PolicyName + ")"
	}
	action := strings.ToLower(strings.TrimPrefix(tp.Action, "KPROBE_ACTION_"))
	if action == "override" {
		action = "deny"
	}
	switch {
	case action == "post" || action == "nopost":
		return "☎ " + hook + " " + pod + detail + tail
	case hook == "connect":
		detail = strings.Replace(detail, " ", " connect ", 1)
	}
	if tp.Enforced {
		return "🔒 " + action + " " + pod + detail + tail
	}
	return "🔍 would " + action + " " + pod + detail + tail
}

// tracepointDetail returns the word naming an event's hook (exec, syscall,
// connect, else subsystem/event) and what the process did: the binary and
// the values.
func tracepointDetail(tp *api.ProcessTracepoint) (hook, detail string) {
	if tp.Subsys == "sched" && tp.Event == "sched_process_exec" {
		if len(tp.Args) > 0 {
			return "exec", argString(tp.Args[0])
		}
		return "exec", binary(tp.Process)
	}
	words := []string{binary(tp.Process)}
	switch {
	case tp.Subsys == "sluice" && tp.Event == "connect":
		hook = "connect"
	case tp.Subsys == "syscalls" || tp.Subsys == "raw_syscalls":
		hook = "syscall"
		words = append(words, cmp.Or(tp.Syscall, tp.Event))
	default:
		hook = tp.Subsys + "/" + tp.Event
	}
	for _, a := range tp.Args {
		words = append(words, argString(a))
	}
	if tp.Return != nil {
		words = append(words, "=", strconv.FormatInt(*tp.Return, 10))
	}
	return hook, strings.Join(words, " ")
}

// argString formats one event argument (the CLI's compact form).
func argString(a api.TracepointArg) string {
	switch {
	case a.StringArg != nil:
		if a.Truncated {
			return *a.StringArg + "..."
		}
		return *a.StringArg
	case a.IntArg != nil:
		return strconv.FormatInt(*a.IntArg, 10)
	case a.SizeArg != nil:
		return strconv.FormatUint(*a.SizeArg, 10)
	case a.SockaddrArg != nil:
		s := net.JoinHostPort(a.SockaddrArg.Addr, strconv.Itoa(int(a.SockaddrArg.Port)))
		if a.SockaddrArg.Backend != "" {
			s += " (" + a.SockaddrArg.Backend + ")"
		}
		return s
	}
	return ""
}

// WriteTracingRuleEntries prints one line per rule map: MAP ENTRIES.
func WriteTracingRuleEntries(w io.Writer, es api.TracingRuleEntries) error {
	names := make([]string, 0, len(es))
	for k := range es {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAP\tENTRIES")
	for _, k := range names {
		fmt.Fprintf(tw, "%s\t%d\n", k, es[k])
	}
	return tw.Flush()
}
