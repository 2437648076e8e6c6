package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// restartOpts size the restart campaign; negative counts and a zero
// duration take the mode's default.
type restartOpts struct {
	kills, roundTrips, workers, streams int
	sockWorkers                         int
	between                             time.Duration
	prevDir, releaseDir                 string
}

func restartFlags(fs *flag.FlagSet) *restartOpts {
	o := &restartOpts{}
	fs.IntVar(&o.kills, "kills", -1, "SIGKILL and restart cycles of the agent (default 10, quick 3)")
	fs.IntVar(&o.roundTrips, "round-trips", -1, "switches to the previous release's agent and back to this build's (default 2, quick 1)")
	fs.IntVar(&o.workers, "workers", 2, "TCP_CRR workers in this process (outside the node's cgroup: services translated per packet at the pod's veth)")
	fs.IntVar(&o.sockWorkers, "sock-workers", 2, "TCP_CRR workers in a client process inside the node's cgroup (services translated at connect by the socket-LB hooks)")
	fs.IntVar(&o.streams, "streams", 20, "long-lived streams")
	fs.DurationVar(&o.between, "between", 0, "load time before the first and after every agent event (default 3s, quick 2s)")
	fs.StringVar(&o.releaseDir, "release-bin-dir", "bin/prev", "the previous release's sluice-agent and sluice-cni (hack/build-prev.sh DIR): they wire the node, then the agent is upgraded to this build under load (empty: start on this build)")
	fs.StringVar(&o.prevDir, "prev-bin-dir", "bin/prev-commit", "the previous commit's sluice-agent (hack/build-prev.sh DIR HEAD^1), switched to and back from in each round trip")
	return o
}

func (o *restartOpts) finish(quick bool) {
	if o.kills < 0 {
		o.kills = 10
		if quick {
			o.kills = 3
		}
	}
	if o.roundTrips < 0 {
		o.roundTrips = 2
		if quick {
			o.roundTrips = 1
		}
	}
	if o.between == 0 {
		o.between = 3 * time.Second
		if quick {
			o.between = 2 * time.Second
		}
	}
}

const (
	vip        = "10.96.0.10"
	crrFront   = vip + ":80"
	streamFont = vip + ":81"
)

// event is something done to the agent, for placing failures in time.
type event struct {
	at   time.Time
	what string
}

// restart wires a node with the previous release (o.releaseDir), then runs
// TCP_CRR through a ClusterIP (every transaction checks the name of the
// backend that answered) and long-lived streams (every byte echoed and
// compared) while the agent is upgraded to this build, SIGKILLed and
// started again o.kills times, then stopped and replaced by the previous
// commit's agent and back o.roundTrips times. It returns false if a
// transaction failed or a stream broke.
func restart(r *harness.Runner, o *restartOpts) bool {
	prevAgent := agentIn(r, o.prevDir)
	node := harness.NewNode(r, harness.NodeOptions{})
	current := harness.AgentOptions{SocketLB: true}
	first := current
	if o.releaseDir != "" {
		first = harness.AgentOptions{SocketLB: true, Binary: agentIn(r, o.releaseDir)}
		node.UseCNIFrom(filepath.Dir(first.Binary), harness.BinDir(r)) // the release's sluice-cni, host-local of this build
	}
	agent := node.StartAgentWith(r, first)
	check(r, writeManifest(node, "00-namespace.yaml", namespaceYAML("load")))
	names := map[string]bool{}
	var yaml strings.Builder
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("web-%d", i)
		names[name] = true
		yaml.WriteString(podYAML("load", name, map[string]string{"app": "web"}))
	}
	check(r, writeManifest(node, "10-web.yaml", yaml.String()+serviceYAML("load", "web", vip, "web", 0)))
	for i := 1; i <= 3; i++ {
		p, err := addPod(r, node, "load", fmt.Sprintf("web-%d", i))
		check(r, err)
		r.Cleanup(func() { delPod(r, p) })
		serveCRR(r, p)
		harness.ServeTCP(r, p.NS, p.Addr(streamPort), p.Name)
	}
	// client-1 and client-2 carry the per-packet LB's load and the streams;
	// client-3 the socket LB's: one client address never mixes both paths
	// (see sockClient).
	var clients []*harness.Pod
	for i := 1; i <= 3; i++ {
		p, err := addPod(r, node, "load", fmt.Sprintf("client-%d", i))
		check(r, err)
		r.Cleanup(func() { delPod(r, p) })
		clients = append(clients, p)
	}
	ready := func() {
		waitBackends(r, node, crrFront, 3)
		waitBackends(r, node, streamFont, 3)
	}
	ready()

	start := time.Now()
	events := []event{{start, "load starts"}}
	note := func(what string) {
		events = append(events, event{time.Now(), what})
		logf("%s", what)
	}
	sockLoad := startSockClient(r, clients[2], crrFront, names, o.sockWorkers)
	clients = clients[:2]
	load := startCRR(clients, o.workers, crrFront, names)
	translated0, err := sockTranslated(node)
	check(r, err)
	var streams []*stream
	for i := range o.streams {
		s, err := startStream(clients[i%len(clients)].NS, streamFont, names)
		check(r, err)
		streams = append(streams, s)
	}
	logf("node %s: %d+%d TCP_CRR workers (per-packet LB + socket LB) on %s, %d streams on %s", node.NS.Name, o.workers, o.sockWorkers, crrFront, len(streams), streamFont)
	time.Sleep(o.between)
	upgrades := 0
	switchTo := func(what string, opts harness.AgentOptions) {
		agent.Stop(r)
		note(fmt.Sprintf("%s: agent pid %d stopped (SIGTERM)", what, agent.PID()))
		agent = node.StartAgentWith(r, opts)
		ready()
		upgrades++
		note(fmt.Sprintf("%s: agent pid %d up and programmed", what, agent.PID()))
		time.Sleep(o.between)
	}
	if o.releaseDir != "" {
		switchTo("upgrade from the previous release", current)
		node.UseCNIFrom(harness.BinDir(r))
	}
	for i := 1; i <= o.kills; i++ {
		agent.Kill(r)
		note(fmt.Sprintf("kill %d: agent pid %d SIGKILLed", i, agent.PID()))
		agent = node.StartAgentWith(r, current)
		ready()
		note(fmt.Sprintf("kill %d: agent pid %d up and programmed", i, agent.PID()))
		time.Sleep(o.between)
	}
	for i := 1; i <= o.roundTrips; i++ {
		switchTo(fmt.Sprintf("round trip %d: to the previous commit", i), harness.AgentOptions{SocketLB: true, Binary: prevAgent})
		switchTo(fmt.Sprintf("round trip %d: back to this build", i), current)
	}
	attempts, failed := load.stop()
	sockAttempts, sockFailed, err := sockLoad.stop()
	check(r, err)
	translated, err := sockTranslated(node)
	check(r, err)
	fmt.Printf("restart: socket LB translated %d connects of the cgroup client's %d transactions\n", translated-translated0, sockAttempts)
	if translated-translated0 < uint64(sockAttempts)/2 {
		r.Errorf("the socket-LB hooks translated %d connects of %d: the cgroup client's load did not take the socket path", translated-translated0, sockAttempts)
	}
	attempts += sockAttempts
	failed = append(failed, sockFailed...)
	var broken []failure
	var moved int64
	for _, s := range streams {
		moved += s.bytes.Load()
		if f := s.stop(); f != nil {
			broken = append(broken, *f)
		}
	}
	report(start, events, "TCP_CRR failure", failed)
	report(start, events, "stream broken", broken)
	fmt.Printf("restart: %.0fs of load, %d TCP_CRR transactions (%.0f/s), %d streams moved %d KiB\n",
		time.Since(start).Seconds(), attempts, float64(attempts)/time.Since(start).Seconds(), len(streams), moved/1024)
	fmt.Printf("RESULT restart kills=%d upgrades=%d conn_attempts=%d conn_failed=%d streams_broken=%d\n",
		o.kills, upgrades, attempts, len(failed), len(broken))
	if len(failed) > 0 || len(broken) > 0 || attempts == 0 {
		r.Errorf("%d of %d transactions failed, %d of %d streams broke", len(failed), attempts, len(broken), len(streams)) // the harness prints the agent's log
		return false
	}
	return true
}

// agentIn returns the absolute path of the sluice-agent in dir; it stops
// the campaign if there is none.
func agentIn(r *harness.Runner, dir string) string {
	p, err := filepath.Abs(filepath.Join(dir, "sluice-agent"))
	if err == nil {
		_, err = os.Stat(p)
	}
	if err != nil {
		r.Fatalf("sluice-agent of an earlier build (hack/build-prev.sh %s): %v", dir, err)
	}
	return p
}

// check stops the campaign on an error of its own machinery.
func check(r *harness.Runner, err error) {
	if err != nil {
		r.Fatalf("%v", err)
	}
}

// report prints failures (at most 20) with their time and the last agent
// event before each.
func report(start time.Time, events []event, what string, fs []failure) {
	for i, f := range fs {
		if i == 20 {
			fmt.Printf("%s: ... %d more\n", what, len(fs)-20)
			return
		}
		last := events[0]
		for _, e := range events {
			if !e.at.After(f.at) {
				last = e
			}
		}
		fmt.Printf("%s at +%.2fs (%.2fs after %q): %v\n", what, f.at.Sub(start).Seconds(), f.at.Sub(last.at).Seconds(), last.what, f.err)
	}
}
