package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// soakOpts size the churn campaign; zero values (a negative kills) take
// the mode's default.
type soakOpts struct {
	pods, wave, services, policies, apps, kills, parallel int
	settle                                                time.Duration
}

func soakFlags(fs *flag.FlagSet) *soakOpts {
	o := &soakOpts{}
	fs.IntVar(&o.pods, "pods", 0, "pods created and deleted (default 1000, quick 100)")
	fs.IntVar(&o.wave, "wave", 0, "pods per wave (default 50, quick 20)")
	fs.IntVar(&o.services, "services", 0, "Services changing underneath (default 200, quick 20)")
	fs.IntVar(&o.policies, "policies", 0, "policies changing underneath (default 50, quick 5)")
	fs.IntVar(&o.kills, "kills", -1, "waves that start by killing the agent and deleting pods while it is down (default 5, quick 2)")
	fs.IntVar(&o.parallel, "parallel", 4, "concurrent CNI ADDs, and as many concurrent DELs")
	fs.DurationVar(&o.settle, "settle", 45*time.Second, "how long leaks may take to go after the last DEL (conntrack entries of closed connections live 10s)")
	return o
}

func (o *soakOpts) finish(quick bool) {
	def := func(v *int, full, q int) {
		if *v == 0 {
			*v = full
			if quick {
				*v = q
			}
		}
	}
	def(&o.pods, 1000, 100)
	def(&o.wave, 50, 20)
	def(&o.services, 200, 20)
	def(&o.policies, 50, 5)
	if o.kills < 0 {
		o.kills = 5
		if quick {
			o.kills = 2
		}
	}
	o.apps = 10
}

// soakRun is the state of one churn campaign.
type soakRun struct {
	r       *harness.Runner
	o       *soakOpts
	node    *harness.Node
	agent   *harness.Agent
	servers []*harness.Pod
	server  string // the servers' ClusterIP frontend

	mu                              sync.Mutex
	added, refused, downDels, asked int
}

// soak creates and deletes o.pods pods through sluice-cni in waves while
// Services and policies change, kills the agent at the start of o.kills
// waves (deleting pods and trying to add pods while it is down), then
// checks that nothing of the deleted pods is left and that the agent's
// goroutines and descriptors did not grow from a baseline taken after the
// last kill. It returns false on any leak or failure.
func soak(r *harness.Runner, o *soakOpts) bool {
	s := &soakRun{r: r, o: o, server: "10.96.0.10:80"}
	s.node = harness.NewNode(r, harness.NodeOptions{})
	s.startAgent()
	logf("node %s, agent pid %d; %d pods in waves of %d, %d services, %d policies", s.node.NS.Name, s.agent.PID(), o.pods, o.wave, o.services, o.policies)
	s.check(writeManifest(s.node, "00-namespace.yaml", namespaceYAML("soak")))
	s.startServers()
	ch := &churner{node: s.node, services: o.services, policies: o.policies, apps: o.apps}
	s.check(ch.start(200 * time.Millisecond))

	var (
		prev     []*harness.Pod
		baseline procStats
	)
	waves := (o.pods + o.wave - 1) / o.wave
	for w := range waves {
		n := min(o.wave, o.pods-w*o.wave)
		if w >= 1 && w <= o.kills {
			prev = s.killWave(w, prev)
		}
		prev = s.wave(w, n, prev)
		if w == o.kills+1 || (waves <= o.kills+1 && w == waves-1) {
			var err error
			baseline, err = agentStats(s.node, s.agent.PID())
			s.check(err)
			logf("baseline after wave %d: %+v", w, baseline)
		}
	}
	s.requireDetected(prev)
	s.delAll(prev, "last")
	s.check(removeManifest(s.node, fmt.Sprintf("40-pods-%d.yaml", waves-1)))
	changes, err := ch.stopChurn()
	s.check(err)
	logf("all %d pods deleted; %d service/policy changes; waiting up to %s for the node to settle", s.added, changes, o.settle)

	var l leaks
	t0 := time.Now()
	for {
		l, err = findLeaks(s.node, s.servers)
		s.check(err)
		if l.empty() || time.Since(t0) > o.settle {
			break
		}
		time.Sleep(time.Second)
	}
	logf("settled after %.0fs", time.Since(t0).Seconds())
	after, err := agentStats(s.node, s.agent.PID())
	s.check(err)
	l.report()
	fmt.Printf("soak agent: goroutines %d -> %d, fds %d -> %d, rss %.1f -> %.1f MiB; ADDs refused while down %d, DELs while down %d, service/policy changes %d, pods that reached the servers %d\n",
		baseline.Goroutines, after.Goroutines, baseline.FDs, after.FDs, mib(baseline.RSSKiB), mib(after.RSSKiB), s.refused, s.downDels, changes, s.asked)
	// A per-pod leak grows with the hundreds of pods; allow the noise of
	// timers and idle API connections.
	grew := after.Goroutines > baseline.Goroutines+10 || after.FDs > baseline.FDs+5
	if grew {
		r.Errorf("agent goroutines or descriptors grew: %+v -> %+v", baseline, after)
	}
	fmt.Printf("RESULT soak pods=%d leaked_ips=%d leaked_links=%d leaked_pins=%d leaked_entries=%d leaked_identities=%d rss_growth_mib=%.1f\n",
		s.added, len(l.IPs), len(l.Links), len(l.Pins), len(l.Entries), len(l.Identities), mib(after.RSSKiB)-mib(baseline.RSSKiB))
	return l.empty() && !grew && s.added == o.pods
}

func mib(kib int) float64 { return float64(kib) / 1024 }

// check reports a failure of the campaign's own machinery and stops it.
func (s *soakRun) check(err error) {
	if err != nil {
		s.r.Fatalf("%v", err)
	}
}

func (s *soakRun) startAgent() {
	s.agent = s.node.StartAgentWith(s.r, harness.AgentOptions{Args: []string{"--ct-gc-interval=1s"}})
}

// startServers adds two pods that live through the campaign, answering
// TCP_CRR name queries behind the ClusterIP s.server; every churned pod
// asks them once.
func (s *soakRun) startServers() {
	var yaml strings.Builder
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("server-%d", i)
		yaml.WriteString(podYAML("soak", name, map[string]string{"app": "server"}))
	}
	s.check(writeManifest(s.node, "01-servers.yaml", yaml.String()+serviceYAML("soak", "server", "10.96.0.10", "server", 0)))
	for i := 1; i <= 2; i++ {
		p, err := addPod(s.r, s.node, "soak", fmt.Sprintf("server-%d", i))
		s.check(err)
		serveCRR(s.r, p)
		s.servers = append(s.servers, p)
	}
	waitBackends(s.r, s.node, s.server, 2)
}

// serveCRR runs tcpcrr.Serve (answers '?' with the pod's name) on the
// pod's crr port until cleanup.
func serveCRR(r *harness.Runner, p *harness.Pod) {
	var (
		ln  net.Listener
		err error
	)
	p.NS.Do(r, func() { ln, err = net.Listen("tcp4", p.Addr(crrPort)) })
	if err != nil {
		r.Fatalf("listen in %s: %v", p.Name, err)
	}
	r.Cleanup(func() { ln.Close() })
	go tcpcrr.Serve(ln, p.Name, false)
}

// waitBackends waits until the agent programs frontend with n TCP backends.
func waitBackends(r *harness.Runner, node *harness.Node, frontend string, n int) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		svcs, err := node.Client().ListServices(context.Background())
		if err == nil {
			for _, sv := range svcs {
				if sv.Frontend == frontend && sv.Protocol == "TCP" && len(sv.Backends) == n {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			r.Fatalf("frontend %s never got %d backends (last error %v)", frontend, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wave adds n pods (their Pod objects written first) while deleting prev,
// both with s.o.parallel at a time; every added pod asks the servers
// through their ClusterIP. It returns the pods added.
func (s *soakRun) wave(w, n int, prev []*harness.Pod) []*harness.Pod {
	var yaml strings.Builder
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("p-%d-%d", w, i)
		yaml.WriteString(podYAML("soak", names[i], map[string]string{"app": fmt.Sprintf("app-%d", (w*n+i)%s.o.apps)}))
	}
	s.check(writeManifest(s.node, fmt.Sprintf("40-pods-%d.yaml", w), yaml.String()))
	var (
		mu    sync.Mutex
		added []*harness.Pod
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.delAll(prev, fmt.Sprintf("wave %d's previous", w))
	}()
	for _, err := range parallel(names, s.o.parallel, func(name string) error {
		p, err := addPod(s.r, s.node, "soak", name)
		if err != nil {
			p.NS.Delete(s.r)
			return err
		}
		mu.Lock()
		added = append(added, p)
		mu.Unlock()
		var got string
		p.NS.Do(s.r, func() { got, err = tcpcrr.Ask(s.server, 3*time.Second) })
		if err != nil || !strings.HasPrefix(got, "server-") {
			return fmt.Errorf("%s asked the servers at %s: %q, %v", name, s.server, got, err)
		}
		s.mu.Lock()
		s.asked++
		s.mu.Unlock()
		return nil
	}) {
		s.r.Errorf("wave %d: %v", w, err)
	}
	wg.Wait()
	if w > 0 {
		s.check(removeManifest(s.node, fmt.Sprintf("40-pods-%d.yaml", w-1)))
	}
	s.mu.Lock()
	s.added += len(added)
	s.mu.Unlock()
	logf("wave %d: %d pods added, %d deleted", w, len(added), len(prev))
	return added
}

// requireDetected is the leak hunt's own check: with the pods of the last
// wave still there but not counted as live, it must find each one's
// address, veth, pinned links, endpoint and identity.
func (s *soakRun) requireDetected(pods []*harness.Pod) {
	l, err := findLeaks(s.node, s.servers)
	s.check(err)
	n := len(pods)
	if len(l.IPs) < n || len(l.Links) < n || len(l.Pins) < n || len(l.Entries) < n || len(l.Identities) == 0 {
		s.r.Errorf("the leak hunt misses pods that are there: %d pods, found %d IPs, %d veths, %d pins, %d entries, %d identities",
			n, len(l.IPs), len(l.Links), len(l.Pins), len(l.Entries), len(l.Identities))
	}
}

// delAll deletes pods, s.o.parallel at a time.
func (s *soakRun) delAll(pods []*harness.Pod, what string) {
	for _, err := range parallel(pods, s.o.parallel, func(p *harness.Pod) error { return delPod(s.r, p) }) {
		s.r.Errorf("delete %s pods: %v", what, err)
	}
}

// killWave SIGKILLs the agent, deletes half of prev while it is down (the
// CNI queues those DELs for the agent), requires two ADDs to fail closed,
// and starts the agent again. It returns the pods of prev still there.
func (s *soakRun) killWave(w int, prev []*harness.Pod) []*harness.Pod {
	s.agent.Kill(s.r)
	half := prev[:len(prev)/2]
	s.delAll(half, "agent-down")
	for i := range 2 {
		p, err := addPod(s.r, s.node, "soak", fmt.Sprintf("down-%d-%d", w, i))
		if err == nil {
			s.r.Errorf("CNI ADD of %s succeeded with the agent down (fail-open)", p.Name)
			s.check(delPod(s.r, p))
			continue
		}
		p.NS.Delete(s.r)
		s.refused++
	}
	s.downDels += len(half)
	s.startAgent()
	logf("wave %d: agent killed, %d pods deleted and 2 ADDs refused while down, agent restarted (pid %d)", w, len(half), s.agent.PID())
	return prev[len(prev)/2:]
}
