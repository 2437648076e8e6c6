package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

func processCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "process",
		Aliases: []string{"processes", "ps"},
		Short:   "Inspect the agent's process cache",
	}
	var listOutput string
	var tree bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the processes of the cache (a tree with --tree)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := o.client().Processes(cmd.Context())
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []*api.Process{}
			}
			SortProcesses(ps)
			return render(cmd.OutOrStdout(), listOutput, ps, func(w io.Writer) error {
				if tree {
					return WriteProcessTree(w, ps)
				}
				return WriteProcessTable(w, ps)
			})
		},
	}
	list.Flags().BoolVar(&tree, "tree", false, "print the processes as a tree by parent")
	addOutputFlag(list, &listOutput)

	var getOutput string
	get := &cobra.Command{
		Use:   "get EXEC_ID",
		Short: "Show a process and its ancestors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := o.client().Process(cmd.Context(), args[0])
			if errors.Is(err, api.ErrProcessNotFound) {
				return fmt.Errorf("%w (exited and gone from the cache, or never seen)", err)
			}
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), getOutput, d, func(w io.Writer) error { return WriteProcessDetail(w, d) })
		},
	}
	addOutputFlag(get, &getOutput)

	cmd.AddCommand(list, get)
	return cmd
}

// SortProcesses orders processes by pid, then start time.
func SortProcesses(ps []*api.Process) {
	slices.SortStableFunc(ps, func(a, b *api.Process) int {
		return cmp.Or(cmp.Compare(a.PID, b.PID), a.StartTime.Compare(b.StartTime))
	})
}

// WriteProcessTable prints one row per process, in the order given.
func WriteProcessTable(w io.Writer, ps []*api.Process) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, "EXEC-ID\tPID\tPOD\tBINARY\tARGS")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.ExecID, p.PID, ProcessPod(p), binary(p), p.Arguments)
	}
	return tw.Flush()
}

// WriteProcessTree prints the processes as a tree by parent exec id: a
// process whose parent is not among them is a root; children come in the
// order given. Every process is printed once.
func WriteProcessTree(w io.Writer, ps []*api.Process) error {
	byID := make(map[string]bool, len(ps))
	for _, p := range ps {
		byID[p.ExecID] = true
	}
	children := map[string][]*api.Process{}
	var roots []*api.Process
	for _, p := range ps {
		if p.ParentExecID != "" && p.ParentExecID != p.ExecID && byID[p.ParentExecID] {
			children[p.ParentExecID] = append(children[p.ParentExecID], p)
		} else {
			roots = append(roots, p)
		}
	}
	var b strings.Builder
	seen := map[string]bool{}
	var walk func(p *api.Process, prefix, branch, next string)
	walk = func(p *api.Process, prefix, branch, next string) {
		if seen[p.ExecID] {
			return
		}
		seen[p.ExecID] = true
		b.WriteString(prefix + branch + treeLine(p) + "\n")
		kids := children[p.ExecID]
		for i, c := range kids {
			if i == len(kids)-1 {
				walk(c, prefix+next, "└─ ", "   ")
			} else {
				walk(c, prefix+next, "├─ ", "│  ")
			}
		}
	}
	for _, r := range roots {
		walk(r, "", "", "")
	}
	for _, p := range ps { // in a parent loop (a corrupt cache)
		walk(p, "", "", "")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// treeLine is a process in the tree: pid, command line, pod, exec id.
func treeLine(p *api.Process) string {
	s := strconv.FormatUint(uint64(p.PID), 10) + " " + commandLine(p) + "  " + ProcessPod(p) + "  " + p.ExecID
	if p.Exited {
		s += "  (exited)"
	}
	return s
}

// WriteProcessDetail prints a process's fields, then its ancestors.
func WriteProcessDetail(w io.Writer, d api.ProcessDetail) error {
	p := d.Process
	if p == nil {
		return errors.New("the agent returned no process")
	}
	tw := newTabWriter(w)
	fields := [][2]string{
		{"Exec ID", p.ExecID},
		{"Parent exec ID", orDash(p.ParentExecID)},
		{"PID", strconv.FormatUint(uint64(p.PID), 10)},
		{"Binary", binary(p)},
		{"Arguments", orDash(p.Arguments)},
		{"Cwd", orDash(p.Cwd)},
		{"UID", fmt.Sprintf("%d (euid %d, auid %s)", p.UID, p.EUID, auid(p.AUID))},
		{"Pod", ProcessPod(p)},
	}
	if pod := p.Pod; pod != nil {
		if c := pod.Container; c != nil {
			fields = append(fields, [2]string{"Container", containerText(c)})
		}
		if pod.Workload != "" {
			fields = append(fields, [2]string{"Workload", pod.WorkloadKind + "/" + pod.Workload})
		}
	}
	if p.Cap != nil {
		fields = append(fields, [2]string{"Capabilities", orDash(strings.Join(p.Cap.Effective, " "))})
	}
	if n := p.NS; n != nil {
		fields = append(fields, [2]string{"Namespaces", fmt.Sprintf("pid:%d mnt:%d net:%d", n.PID.Inum, n.Mnt.Inum, n.Net.Inum)})
	}
	started := "-"
	if !p.StartTime.IsZero() {
		started = p.StartTime.Local().Format(time.RFC3339)
	}
	fields = append(fields, [2]string{"Started", started}, [2]string{"Flags", orDash(p.Flags)})
	if p.Exited {
		fields = append(fields, [2]string{"Exited", "yes"})
	}
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Ancestors) == 0 {
		_, err := fmt.Fprintln(w, "\nNo ancestors known.")
		return err
	}
	fmt.Fprintln(w, "\nAncestors (parent first):")
	return WriteProcessTable(w, d.Ancestors)
}

func auid(id uint32) string {
	if id == ^uint32(0) {
		return "unset"
	}
	return strconv.FormatUint(uint64(id), 10)
}

func containerText(c *api.Container) string {
	s := orDash(c.Name) + " " + c.ID
	if c.Image != nil && c.Image.Name != "" {
		s += " (" + c.Image.Name + ")"
	}
	return s
}
