package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

func serviceCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"services", "svc"},
		Short:   "Inspect the services this node load-balances",
	}
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List service frontends with their backends and flags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svcs, err := o.client().ListServices(cmd.Context())
			if err != nil {
				return err
			}
			if svcs == nil {
				svcs = []api.Service{}
			}
			return render(cmd.OutOrStdout(), output, svcs, func(w io.Writer) error { return WriteServiceTable(w, svcs) })
		},
	}
	addOutputFlag(list, &output)
	cmd.AddCommand(list)
	return cmd
}

func bpfCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "bpf", Short: "Dump BPF maps as the kernel holds them"}
	lbCmd := &cobra.Command{Use: "lb", Short: "Load-balancing maps"}
	var lbOutput string
	lbList := &cobra.Command{
		Use:   "list",
		Short: "List the services, backends and reverse-NAT maps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := o.client().LBMaps(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), lbOutput, m, func(w io.Writer) error { return WriteLBMaps(w, m) })
		},
	}
	addOutputFlag(lbList, &lbOutput)
	lbCmd.AddCommand(lbList, maglevCommand(o))

	ctCmd := &cobra.Command{Use: "ct", Short: "Conntrack table"}
	var ctOutput string
	ctList := &cobra.Command{
		Use:   "list",
		Short: "List conntrack entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ct, err := o.client().CT(cmd.Context())
			if err != nil {
				return err
			}
			if ct == nil {
				ct = []api.CTEntry{}
			}
			return render(cmd.OutOrStdout(), ctOutput, ct, func(w io.Writer) error { return WriteCT(w, ct) })
		},
	}
	addOutputFlag(ctList, &ctOutput)
	ctCmd.AddCommand(ctList)
	cmd.AddCommand(lbCmd, ctCmd)
	return cmd
}

// WriteServiceTable prints one row per backend of each frontend: its
// algorithm, its mode (- for ClusterIP, which has none), and after the
// table what is not programmed or not as asked.
func WriteServiceTable(w io.Writer, svcs []api.Service) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "SERVICE\tKIND\tFRONTEND\tALGORITHM\tMODE\tBACKEND\tSTATE\tFLAGS")
	for _, s := range svcs {
		var flags []string
		if s.Affinity > 0 {
			flags = append(flags, fmt.Sprintf("affinity=%ds", s.Affinity))
		}
		if s.LocalOnly {
			flags = append(flags, "local-only")
		}
		if s.Error != "" {
			flags = append(flags, "NOT-PROGRAMMED")
		}
		if len(s.Warnings) > 0 {
			flags = append(flags, "WARNING")
		}
		if hc := s.HealthCheck; hc != nil {
			// The health-check node port and what it answers (or that
			// it is not open).
			switch {
			case !hc.Listening:
				flags = append(flags, fmt.Sprintf("healthcheck=%d:NOT-OPEN", hc.Port))
			default:
				flags = append(flags, fmt.Sprintf("healthcheck=%d:%d-local", hc.Port, hc.LocalEndpoints))
			}
		}
		fl := strings.Join(flags, ",")
		if fl == "" {
			fl = "-"
		}
		fe := s.Frontend + "/" + s.Protocol
		alg := s.Algorithm
		if alg == "" {
			alg = "random"
		}
		mode := s.Mode
		if mode == "" {
			mode = "-"
		}
		if len(s.Backends) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t(none)\t-\t%s\n", s.Name, s.Kind, fe, alg, mode, fl)
			continue
		}
		for i, b := range s.Backends {
			name, kind, f, a, m := s.Name, s.Kind, fe, alg, mode
			if i > 0 {
				name, kind, f, a, m = "", "", "", "", ""
			}
			state := b.State
			if b.Local {
				state += ",local"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, kind, f, a, m, b.Address, state, fl)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	seen, warned := map[string]bool{}, map[string]bool{}
	for _, s := range svcs {
		n, _, _ := strings.Cut(s.Name, ":")
		for _, wn := range s.Warnings {
			// Once per Service: its frontends share its annotations.
			if !warned[n+"\x00"+wn] {
				warned[n+"\x00"+wn] = true
				if _, err := fmt.Fprintf(w, "WARNING %s: %s\n", n, wn); err != nil {
					return err
				}
			}
		}
		if s.Error != "" {
			if _, err := fmt.Fprintf(w, "NOT-PROGRAMMED %s %s/%s: %s\n", s.Name, s.Frontend, s.Protocol, s.Error); err != nil {
				return err
			}
		}
		if hc := s.HealthCheck; hc != nil && !hc.Listening {
			if !seen[n] {
				seen[n] = true
				if _, err := fmt.Fprintf(w, "HEALTHCHECK-NOT-OPEN %s port %d: %s\n", n, hc.Port, hc.Error); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func maglevCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "maglev", Short: "Maglev lookup tables (--lb-algorithm=maglev)"}
	var output string
	get := &cobra.Command{
		Use:   "get SERVICE",
		Short: "Dump the Maglev tables of a service as the kernel holds them: size and each backend's share",
		Long: "SERVICE is namespace/name (every port and frontend), namespace/name:port, or a frontend address:port/protocol.\n" +
			"The tables are read back from the kernel's maps; -o json adds every entry's backend ID.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tables, err := o.client().Maglev(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), output, tables, func(w io.Writer) error { return WriteMaglev(w, tables) })
		},
	}
	addOutputFlag(get, &output)
	cmd.AddCommand(get)
	return cmd
}

// WriteMaglev prints each table's size and every backend's share of it.
func WriteMaglev(w io.Writer, tables []api.MaglevTable) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "SERVICE\tFRONTEND\tREVNAT\tSIZE\tBACKEND ID\tBACKEND\tENTRIES\tSHARE")
	for _, t := range tables {
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t(%s)\t-\t-\n", t.Service, t.Frontend, t.RevNATID, t.Error)
			continue
		}
		for i, b := range t.Backends {
			svc, fe, rev, size := t.Service, t.Frontend, fmt.Sprint(t.RevNATID), fmt.Sprint(t.Size)
			if i > 0 {
				svc, fe, rev, size = "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%.2f%%\n", svc, fe, rev, size, b.ID, b.Address, b.Entries, 100*b.Share)
		}
	}
	return tw.Flush()
}

// WriteLBMaps prints the three load-balancing maps.
func WriteLBMaps(w io.Writer, m api.LBMaps) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "FRONTEND\tREVNAT\tFLAGS\tBACKEND IDS")
	for _, s := range m.Services {
		ids := make([]string, len(s.BackendIDs))
		for i, id := range s.BackendIDs {
			ids[i] = fmt.Sprint(id)
		}
		fl := strings.Join(s.Flags, ",")
		if fl == "" {
			fl = "-"
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\n", s.Frontend, s.Protocol, s.RevNATID, fl, strings.Join(ids, " "))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "BACKEND ID\tADDRESS\tSTATE")
	for _, b := range m.Backends {
		state := "active"
		if b.Terminating {
			state = "terminating"
		}
		fmt.Fprintf(tw, "%d\t%s/%s\t%s\n", b.ID, b.Address, b.Protocol, state)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "REVNAT ID\tFRONTEND")
	for _, r := range m.RevNAT {
		fmt.Fprintf(tw, "%d\t%s\n", r.ID, r.Frontend)
	}
	return tw.Flush()
}

// WriteCT prints the conntrack table.
func WriteCT(w io.Writer, ct []api.CTEntry) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "PROTO\tSOURCE\tDESTINATION\tTYPE\tBACKEND\tREVNAT\tEXPIRES\tPACKETS")
	for _, e := range ct {
		typ := "flow"
		if e.Service {
			typ = "service"
		}
		if e.Closing {
			typ += ",closing"
		}
		if e.PolicyAllowed {
			typ += ",policy"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%ds\t%d\n", e.Protocol, e.Source, e.Destination, typ, e.BackendID, e.RevNATID, e.ExpiresIn, e.Packets)
	}
	return tw.Flush()
}
