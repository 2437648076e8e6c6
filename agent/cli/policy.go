package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

func policyCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Inspect network policies"}
	var listOutput string
	list := &cobra.Command{
		Use:   "list",
		Short: "List policies, accepted or rejected with the reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := o.client().PolicyStatus(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), listOutput, st, func(w io.Writer) error { return WritePolicyStatus(w, st) })
		},
	}
	addOutputFlag(list, &listOutput)
	var getOutput, ifName string
	get := &cobra.Command{
		Use:   "get <pod or containerID>",
		Short: "Show an endpoint's resolved policy (pod as [namespace/]name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cid, err := resolveEndpoint(cmd.Context(), o.client(), args[0])
			if err != nil {
				return err
			}
			ep, err := o.client().EndpointPolicy(cmd.Context(), cid, ifName)
			if err != nil {
				return fmt.Errorf("policy of %s: %w", args[0], err)
			}
			return render(cmd.OutOrStdout(), getOutput, ep, func(w io.Writer) error { return WriteEndpointPolicy(w, ep) })
		},
	}
	get.Flags().StringVar(&ifName, "if", "eth0", "pod interface name")
	addOutputFlag(get, &getOutput)
	cmd.AddCommand(list, get, policyTraceCommand(o))
	return cmd
}

// resolveEndpoint turns a pod name ([namespace/]name) or container ID into a
// container ID.
func resolveEndpoint(ctx context.Context, c *api.Client, arg string) (string, error) {
	eps, err := c.ListEndpoints(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, ep := range eps {
		full := ep.PodNamespace + "/" + ep.PodName
		if ep.ContainerID == arg || full == arg || (!strings.Contains(arg, "/") && ep.PodName == arg) || strings.HasPrefix(ep.ContainerID, arg) {
			match = append(match, ep.ContainerID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no endpoint named %q", arg)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%q names %d endpoints; use namespace/name or the container ID", arg, len(match))
}

// WritePolicyStatus writes the policy list.
func WritePolicyStatus(w io.Writer, st []api.PolicyStatus) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "KIND\tPOLICY\tSTATUS\tENDPOINTS\tREASON")
	for _, s := range st {
		name := s.Name
		if s.Namespace != "" {
			name = s.Namespace + "/" + s.Name
		}
		status, reason := "accepted", strings.Join(s.Warnings, "; ")
		if !s.Accepted {
			// The message says what is enforced instead (default deny).
			status, reason = "rejected", cmp.Or(strings.TrimPrefix(s.Message, "rejected: "), s.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Kind, name, status, s.Endpoints, orDash(reason))
	}
	return tw.Flush()
}

// WriteEndpointPolicy writes an endpoint's resolved policy.
func WriteEndpointPolicy(w io.Writer, ep api.EndpointPolicy) error {
	fmt.Fprintf(w, "Endpoint %d (%s), identity %d\nLabels: %s\n", ep.EndpointID, orDash(ep.Pod), ep.Identity, strings.Join(ep.Labels, " "))
	fmt.Fprintf(w, "Ingress enforced: %t  Egress enforced: %t  Audit: %t  Map entries: %d\n",
		ep.IngressEnforced, ep.EgressEnforced, ep.Audit, ep.MapEntries)
	fmt.Fprintf(w, "Selected by: %s\n\n", orDash(strings.Join(ep.SelectedBy, ", ")))
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "DIRECTION\tPEER\tPROTOCOL\tPORTS\tVERDICT\tRULE")
	for _, r := range ep.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Direction, r.Peer, r.Protocol, orDash(r.Ports), r.Verdict, orDash(r.Rule))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ep.Addrs) == 0 {
		return nil
	}
	// Address rules: the peer address's longest prefix gives the set whose
	// entries (peer addr-set:<n> above) apply.
	fmt.Fprintln(w, "\nAddress entries (longest prefix of the peer address):")
	tw = newTabWriter(w)
	fmt.Fprintln(tw, "DIRECTION\tPREFIX\tSET\tRULES")
	for _, a := range ep.Addrs {
		rules := "no rule: except"
		if a.Set != 0 {
			rules = strings.Join(a.Rules, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Direction, a.Prefix, orDash(a.SetName), rules)
	}
	return tw.Flush()
}

func identityCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "identity", Aliases: []string{"identities"}, Short: "Inspect security identities"}
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List security identities and their labels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ids, err := o.client().Identities(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), output, ids, func(w io.Writer) error {
				tw := newTabWriter(w)
				fmt.Fprintln(tw, "ID\tNAME\tREFS\tLABELS")
				for _, i := range ids {
					fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", i.ID, orDash(i.Name), i.Refs, strings.Join(i.Labels, " "))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(list, &output)
	cmd.AddCommand(list)
	return cmd
}
