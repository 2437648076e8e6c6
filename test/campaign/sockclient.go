package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// crrClientCmd is the internal subcommand that runs TCP_CRR workers in the
// process it is: the campaign starts it inside a pod's netns and the node's
// cgroup, where the socket-LB hooks translate its connects.
const crrClientCmd = "crr-client"

// crrClientMain runs `campaign crr-client TARGET NAME,NAME WORKERS`: the
// workers do tcpcrr.Ask transactions, checking the name, until stdin
// closes; then it prints "attempts N" and one "fail UNIXNANO ERROR" line
// per failure.
func crrClientMain(args []string) {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: campaign crr-client TARGET NAME,NAME WORKERS")
		os.Exit(2)
	}
	names := map[string]bool{}
	for _, n := range strings.Split(args[1], ",") {
		names[n] = true
	}
	workers, err := strconv.Atoi(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l := startCRR(nil, workers, args[0], names)
	io.Copy(io.Discard, os.Stdin)
	attempts, failures := l.stop()
	fmt.Printf("attempts %d\n", attempts)
	for _, f := range failures {
		fmt.Printf("fail %d %s\n", f.at.UnixNano(), strings.ReplaceAll(f.err.Error(), "\n", " "))
	}
}

// sockClient is a crr-client process in a pod's netns and the node's
// cgroup. It has a client pod of its own: when one pod address sends both
// socket-LB'd connects (straight to a backend) and per-packet-LB'd ones
// (to the ClusterIP), a new direct flow that reuses the source port of a
// closing service flow to the same backend had its SYN-ACK lost, and the
// connect timed out (two per two seconds, restarts or not).
type sockClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
	wg    sync.WaitGroup
}

// startSockClient starts the campaign's own binary as a crr-client in p's
// netns, cloned into the node's cgroup (harness.CommandIn).
func startSockClient(r *harness.Runner, p *harness.Pod, target string, names map[string]bool, workers int) *sockClient {
	self, err := os.Executable()
	check(r, err)
	var list []string
	for n := range names {
		list = append(list, n)
	}
	cmd, release, err := harness.CommandIn(p.NS, p.Node.Cgroup, self, crrClientCmd, target, strings.Join(list, ","), strconv.Itoa(workers))
	check(r, err)
	defer release()
	c := &sockClient{cmd: cmd}
	c.stdin, err = cmd.StdinPipe()
	check(r, err)
	stdout, err := cmd.StdoutPipe()
	check(r, err)
	cmd.Stderr = os.Stderr
	check(r, cmd.Start())
	r.Cleanup(func() { c.stdin.Close(); cmd.Wait() })
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		io.Copy(&c.out, stdout)
	}()
	return c
}

// stop ends the client and returns its attempts and failures.
func (c *sockClient) stop() (int64, []failure, error) {
	c.stdin.Close()
	c.wg.Wait()
	if err := c.cmd.Wait(); err != nil {
		return 0, nil, fmt.Errorf("crr-client: %w", err)
	}
	var (
		attempts int64
		fs       []failure
	)
	sc := bufio.NewScanner(strings.NewReader(c.out.String()))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		switch {
		case f[0] == "attempts" && len(f) == 2:
			attempts, _ = strconv.ParseInt(f[1], 10, 64)
		case f[0] == "fail" && len(f) == 3:
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			fs = append(fs, failure{time.Unix(0, ns), fmt.Errorf("socket LB: %s", f[2])})
		}
	}
	return attempts, fs, nil
}

// sockTranslated reads how many connects the socket-LB hooks translated:
// sluice_sock_metrics_v1, pinned as sluice_sock_metrics by the previous
// release (one map: this build renames the pin).
func sockTranslated(node *harness.Node) (uint64, error) {
	var (
		m   map[string]*ebpf.Map
		err error
	)
	for _, name := range []string{"sluice_sock_metrics_v1", "sluice_sock_metrics"} {
		if m, err = openMaps(node.BPFRoot, name); err == nil {
			defer m[name].Close()
			ctrs, err := metricsmap.NewSock(m[name]).Counters()
			return ctrs[metricsmap.SockConnectTranslated], err
		}
	}
	return 0, err
}
