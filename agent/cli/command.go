package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

// Output formats of -o.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

type options struct {
	socket string
}

func (o *options) client() *api.Client { return api.NewClient(o.socket) }

// NewCommand returns the `sluice` root command.
func NewCommand() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Inspect the Sluice node agent",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&o.socket, "socket", api.DefaultSocket, "agent API socket")
	root.AddCommand(statusCommand(o), endpointCommand(o), serviceCommand(o), bpfCommand(o),
		observeCommand(o), policyCommand(o), identityCommand(o), eventsCommand(o), processCommand(o), tracingPolicyCommand(o), uiCommand(o))
	return root
}

func endpointCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "endpoint",
		Aliases: []string{"endpoints", "ep"},
		Short:   "Inspect the pod endpoints of this node",
	}
	var listOutput string
	list := &cobra.Command{
		Use:   "list",
		Short: "List endpoints with packet totals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			eps, err := o.client().ListEndpoints(cmd.Context())
			if err != nil {
				return err
			}
			if eps == nil {
				eps = []api.Endpoint{}
			}
			return render(cmd.OutOrStdout(), listOutput, eps, func(w io.Writer) error { return WriteEndpointTable(w, eps) })
		},
	}
	addOutputFlag(list, &listOutput)

	var getOutput, ifName string
	get := &cobra.Command{
		Use:   "get <containerID>",
		Short: "Show one endpoint and its counters per direction and reason",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ep, err := getEndpoint(cmd.Context(), o.client(), args[0], ifName)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), getOutput, ep, func(w io.Writer) error { return WriteEndpoint(w, ep) })
		},
	}
	get.Flags().StringVar(&ifName, "if", "eth0", "pod interface name")
	addOutputFlag(get, &getOutput)

	cmd.AddCommand(list, get)
	return cmd
}

func getEndpoint(ctx context.Context, c *api.Client, containerID, ifName string) (api.Endpoint, error) {
	ep, err := c.GetEndpoint(ctx, containerID, ifName)
	if errors.Is(err, api.ErrNotFound) {
		return ep, fmt.Errorf("endpoint %s/%s: %w", containerID, ifName, err)
	}
	return ep, err
}

func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", OutputTable, "output format: table or json")
}

func render(w io.Writer, output string, v any, table func(io.Writer) error) error {
	switch output {
	case OutputTable:
		return table(w)
	case OutputJSON:
		return WriteJSON(w, v)
	}
	return fmt.Errorf("unknown output format %q (want table or json)", output)
}
