package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// NetNS is a named network namespace (/var/run/netns/<Name>) owned by a test.
type NetNS struct {
	Name    string
	deleted bool
}

// RandName returns prefix followed by 8 random hex characters.
func RandName(prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// NewNetNS creates a network namespace with loopback up; it is deleted in
// tb's cleanup (with every interface in it).
func NewNetNS(tb T, prefix string) *NetNS {
	tb.Helper()
	n := &NetNS{Name: RandName(prefix)}
	run(tb, "ip", "netns", "add", n.Name)
	tb.Cleanup(func() {
		if n.deleted {
			return
		}
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			tb.Errorf("delete netns %s: %v: %s", n.Name, err, out)
		}
	})
	n.Run(tb, "ip", "link", "set", "lo", "up")
	return n
}

// Delete removes the namespace now (as a runtime does before CNI DEL).
func (n *NetNS) Delete(tb T) {
	tb.Helper()
	run(tb, "ip", "netns", "del", n.Name)
	n.deleted = true
}

// Path is the netns bind mount path.
func (n *NetNS) Path() string { return filepath.Join("/var/run/netns", n.Name) }

// Do runs fn on an OS thread that is inside the namespace. Sockets created in
// fn stay in the namespace and may be used from any goroutine afterwards.
func (n *NetNS) Do(tb T, fn func()) {
	tb.Helper()
	if err := n.do(fn); err != nil {
		tb.Fatal(err)
	}
}

func (n *NetNS) do(fn func()) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(n.Path())
	if err != nil {
		return fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// The thread is in the wrong namespace: never reuse it.
			panic(fmt.Sprintf("restore netns: %v", err))
		}
	}()
	fn()
	return nil
}

// LinkMTU returns the MTU of the interface name in the namespace.
func (n *NetNS) LinkMTU(tb T, name string) int {
	tb.Helper()
	var (
		ifi *net.Interface
		err error
	)
	n.Do(tb, func() { ifi, err = net.InterfaceByName(name) })
	if err != nil {
		tb.Fatalf("interface %s in %s: %v", name, n.Name, err)
	}
	return ifi.MTU
}

// Command returns a command that runs inside the namespace (nsenter switches
// only the network namespace, so bpffs and cgroup mounts stay visible).
func (n *NetNS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--", name}, args...)...)
}

// StopProcess ends a process NetNS.Command started (nsenter execs the
// command in place, so the PID is the command's): SIGTERM, SIGKILL after
// 5 s; done is closed when cmd.Wait has returned.
func StopProcess(cmd *exec.Cmd, done <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Run runs a command inside the namespace and fails tb on error.
func (n *NetNS) Run(tb T, name string, args ...string) string {
	tb.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out)
}

func run(tb T, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
