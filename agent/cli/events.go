package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
)

// OutputCompact is the one-line-per-event output of `sluice events`.
const OutputCompact = "compact"

func eventsCommand(o *options) *cobra.Command {
	var (
		f          api.EventFilter
		since      string
		output     string
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show process events: execs, exits, connections, tracing policy events and throttling (like tetra getevents)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := setSince(since, &f.Since); err != nil {
				return err
			}
			if output != OutputCompact && output != OutputJSON {
				return fmt.Errorf("unknown output format %q (want compact or json)", output)
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			return o.client().Events(cmd.Context(), f, func(ev *api.ProcessEvent) error {
				if output == OutputJSON {
					return enc.Encode(ev)
				}
				line := EventLine(ev)
				if timestamps {
					line = ev.Time.Local().Format("Jan _2 15:04:05.000") + " " + line
				}
				_, err := io.WriteString(w, line+"\n")
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.Types, "type", nil,
		"only events of these types: process_exec, process_exit, process_connect, process_throttle, process_tracepoint (the process_ prefix is optional; repeatable)")
	fl.StringVar(&f.Namespace, "namespace", "", "only events of pods in this namespace")
	fl.StringVar(&f.Pod, "pod", "", "only events of this pod ([namespace/]name)")
	fl.StringVar(&f.Binary, "binary", "", "only events of processes whose binary matches this regular expression")
	fl.StringVar(&f.ExecID, "exec-id", "", "only events of this process or its children")
	fl.StringVar(&f.Policy, "policy", "", "only events of this tracing policy ([namespace/]name as the events name it)")
	fl.StringVar(&since, "since", "", "only events since this time (RFC 3339) or duration ago (5m)")
	fl.IntVar(&f.Last, "last", 0, "only the last N events of the history")
	fl.BoolVarP(&f.Follow, "follow", "f", false, "keep streaming new events")
	fl.BoolVar(&timestamps, "timestamps", false, "start compact lines with the event's time")
	cmd.Flags().StringVarP(&output, "output", "o", OutputCompact, "output format: compact or json")
	return cmd
}

// EventLine formats an event on one line, as tetra getevents -o compact:
//
//	🚀 process default/a /usr/bin/curl http://b
//	💥 exit default/a /usr/bin/curl http://b 0
//	🔌 connect default/a /usr/bin/curl 10.244.1.2:40312 -> 10.96.0.10:80 (default/b 10.244.1.3:8080)
//	🚦 throttle default/a start
//	🔒 sigkill default/a /usr/bin/nc (policy no-nc)
//
// Policy events are drawn by tracepointLine.
// A connection through a service shows the service address, then the pod
// and backend it reached; a host process is "host".
func EventLine(ev *api.ProcessEvent) string {
	switch {
	case ev.ProcessExec != nil:
		p := ev.ProcessExec.Process
		return "🚀 process " + ProcessPod(p) + " " + commandLine(p)
	case ev.ProcessExit != nil:
		x := ev.ProcessExit
		status := x.Signal
		if status == "" {
			status = strconv.FormatUint(uint64(x.Status), 10)
		}
		return "💥 exit " + ProcessPod(x.Process) + " " + commandLine(x.Process) + " " + status
	case ev.ProcessConnect != nil:
		c := ev.ProcessConnect
		return "🔌 connect " + ProcessPod(c.Process) + " " + binary(c.Process) + " " + c.Source + " -> " + connectTarget(c)
	case ev.ProcessTracepoint != nil:
		return tracepointLine(ev.ProcessTracepoint)
	case ev.ProcessThrottle != nil:
		th := ev.ProcessThrottle
		pod := "host"
		if th.Pod != "" {
			pod = th.Namespace + "/" + th.Pod
		}
		if th.Type == api.ThrottleStop {
			return fmt.Sprintf("🚦 throttle %s stop dropped=%d", pod, th.Dropped)
		}
		return "🚦 throttle " + pod + " start"
	}
	return "❓ unknown event"
}

// connectTarget is what a connection reached: "svc (ns/pod backend)",
// "svc (backend)", "dst (ns/pod)" or "dst".
func connectTarget(c *api.ProcessConnect) string {
	if c.Service != nil {
		backend := c.Destination
		if c.DestinationPod != "" {
			backend = c.DestinationPod + " " + backend
		}
		return c.Service.Address + " (" + backend + ")"
	}
	if c.DestinationPod != "" {
		return c.Destination + " (" + c.DestinationPod + ")"
	}
	return c.Destination
}

// ProcessPod names where a process runs: "namespace/pod", or "host".
func ProcessPod(p *api.Process) string {
	if p == nil || p.Pod == nil {
		return "host"
	}
	return p.Pod.Namespace + "/" + p.Pod.Name
}

func binary(p *api.Process) string {
	if p == nil || p.Binary == "" {
		return "?"
	}
	return p.Binary
}

// commandLine is the binary and its arguments.
func commandLine(p *api.Process) string {
	if p != nil && p.Arguments != "" {
		return binary(p) + " " + p.Arguments
	}
	return binary(p)
}
