package datapath_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// classes writes the binary classes of processes the way the process
// sensor does (bpf/lib/process_class.h), since filling them at exec is the
// sensor's job: a sluice_proc_class_v1 entry per tgid, of the generation of
// sluice_class_config_v1.
type classes struct {
	procs *ebpf.Map
	tgids []uint32
}

const classGen = 1

func newClasses(t *testing.T, d *datapath.Datapath) *classes {
	t.Helper()
	open := func(name string) *ebpf.Map {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(d.Root()), name), nil)
		require.NoError(t, err, name)
		t.Cleanup(func() { m.Close() })
		return m
	}
	cfg := make([]byte, 24) // gen, flags, active, follow
	binary.LittleEndian.PutUint32(cfg, classGen)
	binary.LittleEndian.PutUint64(cfg[8:], 0xff)
	require.NoError(t, open(bpfgen.SockMapSluiceClassConfigV1).Put(uint32(0), cfg))
	c := &classes{procs: open(bpfgen.SockMapSluiceProcClassV1)}
	t.Cleanup(func() {
		for _, tgid := range c.tgids {
			c.procs.Delete(tgid)
		}
	})
	return c
}

// set gives process pid the classes self and parent.
func (c *classes) set(t *testing.T, pid int, self, parent uint64) {
	t.Helper()
	v := bpfgen.SockProcClass{Gen: classGen, Self: self, Own: self, Parent: parent}
	for i, b := range []byte("/test/client") {
		v.Path[i] = int8(b)
	}
	require.NoError(t, c.procs.Put(uint32(pid), &v))
	c.tgids = append(c.tgids, uint32(pid))
}

// as runs one client attempt as a process of the given classes (none: no
// entry) and returns its result and pid.
func (e *connEnv) as(t *testing.T, c *classes, self, parent uint64, network, addr string) (sockResult, int) {
	t.Helper()
	var pid int
	res, err := runSockClientGated(t, e.ns, e.cg, network, addr, 1, func(p int) {
		pid = p
		if self|parent != 0 {
			c.set(t, p, self, parent)
		}
	})
	require.NoError(t, err)
	if c != nil {
		c.procs.Delete(uint32(pid))
	}
	return res[0], pid
}

// Binary and parent class filters (In: All, NotIn: None) and groups: the
// lowest matching slot of a group decides for it, each group decides.
func TestPrivilegedConnectRuleClasses(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})
	c := newClasses(t, e.d)
	const nc, sh = 1 << 3, 1 << 2
	run := func(self, parent uint64) sockResult {
		r, _ := e.as(t, c, self, parent, "tcp", back1TCP)
		return r
	}

	in := deny(0, protoTCP, []string{"10.244.250.1/32"})
	in.Binary.All = nc
	e.set(t, in)
	denied(t, run(nc, 0), "connect", "In: a process of the class")
	replied(t, run(1<<4, nc), "backend-1", "In: a process of another class (its parent's is the rule's)")
	replied(t, run(0, 0), "backend-1", "In: a process without classes")

	notIn := deny(0, protoTCP, []string{"10.244.250.1/32"})
	notIn.Binary.None = nc
	e.set(t, notIn)
	replied(t, run(nc, 0), "backend-1", "NotIn: a process of the class")
	denied(t, run(1<<4, 0), "connect", "NotIn: a process of another class")
	denied(t, run(0, 0), "connect", "NotIn: a process without classes")

	parent := deny(0, protoTCP, []string{"10.244.250.1/32"})
	parent.Parent.All = sh
	e.set(t, parent)
	denied(t, run(0, sh), "connect", "parent In: the parent of the class")
	replied(t, run(sh, 0), "backend-1", "parent In: the process itself of the class")

	// One group: slot 0 (NoPost for nc) decides before slot 1 (deny).
	allow := datapath.ConnectRule{Slot: 0, PolicyID: 1, Group: 0b11, Global: true, Binary: procsensor.ClassFilter{All: nc},
		Action: procsensor.ExecNoPost}
	group := deny(1, protoTCP, []string{"10.244.250.1/32"})
	group.Group = 0b11
	e.set(t, allow, group)
	replied(t, run(nc, 0), "backend-1", "group: the lower slot matched and decided")
	denied(t, run(0, 0), "connect", "group: the lower slot did not match")
	// Another group decides on its own.
	e.set(t, allow, group, deny(2, protoTCP, []string{"10.244.250.0/24"}))
	denied(t, run(nc, 0), "connect", "a second group denies")
}

// ruleEvents reads the sensor's events (procsensor's reader over the ring
// the socket hooks share by pin).
type ruleEvents struct{ rd *procsensor.Reader }

func newRuleEvents(t *testing.T, d *datapath.Datapath) *ruleEvents {
	t.Helper()
	s, err := procsensor.Load(d.Root(), procsensor.Options{NoConnect: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		require.NoError(t, procsensor.Unpin(d.Root()))
	})
	rd, err := s.Reader()
	require.NoError(t, err)
	t.Cleanup(func() { rd.Close() })
	return &ruleEvents{rd: rd}
}

// of returns the first connect rule event of process pid.
func (r *ruleEvents) of(t *testing.T, pid int) *procsensor.ConnectEnforcement {
	t.Helper()
	r.rd.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		ev, err := r.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no connect rule event of pid %d", pid)
		}
		require.NoError(t, err)
		if ev.ConnectRule != nil && ev.ConnectRule.Key.TGID == uint32(pid) {
			return ev.ConnectRule
		}
	}
}

// Monitor mode reports and allows, enforce mode reports and refuses, Post
// reports, Sigkill kills and refuses, Signal signals and lets the call go
// on; every field of the event.
func TestPrivilegedConnectRuleEvents(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})
	programService(t, e.d, lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}, 8080, 0, 1)
	ev := newRuleEvents(t, e.d)
	vip, back1 := netip.MustParseAddrPort("10.96.0.10:80"), netip.MustParseAddrPort(back1TCP)
	check := func(pid int, got *procsensor.ConnectEnforcement, want procsensor.ConnectEnforcement) {
		t.Helper()
		assert.WithinDuration(t, time.Now(), got.Time, 10*time.Second)
		assert.NotZero(t, got.Key.StartTime)
		assert.NotZero(t, got.PID)
		want.Time, want.Key, want.PID = got.Time, procsensor.Key{TGID: uint32(pid), StartTime: got.Key.StartTime}, got.PID
		want.NetNS = e.netns
		assert.Equal(t, want, *got)
	}

	monitor := deny(3, protoTCP, []string{"10.96.0.10/32"}, 80)
	monitor.PolicyID, monitor.Enforce = 42, false
	e.set(t, monitor)
	r, pid := e.as(t, nil, 0, 0, "tcp", vip.String())
	replied(t, r, "backend-1", "monitor mode allows")
	check(pid, ev.of(t, pid), procsensor.ConnectEnforcement{PolicyID: 42, Slot: 3, Action: procsensor.ConnectDeny,
		Proto: protoTCP, Dst: vip, Backend: back1})

	monitor.Enforce = true
	e.set(t, monitor)
	r, pid = e.as(t, nil, 0, 0, "tcp", vip.String())
	denied(t, r, "connect", "enforce mode refuses")
	check(pid, ev.of(t, pid), procsensor.ConnectEnforcement{PolicyID: 42, Slot: 3, Action: procsensor.ConnectDeny,
		Enforced: true, Proto: protoTCP, Dst: vip, Backend: back1})

	post := datapath.ConnectRule{Slot: 1, PolicyID: 7, Global: true, Protocol: protoUDP, Action: procsensor.ExecPost,
		Dests: []netip.Prefix{netip.MustParsePrefix("10.244.250.1/32")}, Enforce: true}
	e.set(t, post)
	r, pid = e.as(t, nil, 0, 0, "udp", back1UDP)
	replied(t, r, "backend-1", "Post allows")
	check(pid, ev.of(t, pid), procsensor.ConnectEnforcement{PolicyID: 7, Slot: 1, Action: procsensor.ExecPost,
		Proto: protoUDP, Dst: netip.MustParseAddrPort(back1UDP)})

	// NoPost in slot 0 decides its group silently: the first event of the
	// process is slot 1's (the slots are tried lowest first).
	quiet := post
	quiet.Slot, quiet.PolicyID, quiet.Action = 0, 6, procsensor.ExecNoPost
	e.set(t, quiet, post)
	r, pid = e.as(t, nil, 0, 0, "udp", back1UDP)
	replied(t, r, "backend-1", "NoPost allows")
	assert.Equal(t, uint8(1), ev.of(t, pid).Slot, "NoPost posts nothing")

	// The Go client ignores SIGUSR1 (no handler asked for it).
	signal := post
	signal.Protocol, signal.Action, signal.Signal = protoTCP, procsensor.ExecSignal, uint8(syscall.SIGUSR1)
	e.set(t, signal)
	r, pid = e.as(t, nil, 0, 0, "tcp", back1TCP)
	replied(t, r, "backend-1", "Signal lets the connect go on")
	check(pid, ev.of(t, pid), procsensor.ConnectEnforcement{PolicyID: 7, Slot: 1, Action: procsensor.ExecSignal,
		Signal: uint8(syscall.SIGUSR1), Enforced: true, Proto: protoTCP, Dst: back1})

	kill := signal
	kill.Action = procsensor.ExecSigkill
	e.set(t, kill)
	var killed int
	_, err := runSockClientGated(t, e.ns, e.cg, "tcp", back1TCP, 1, func(p int) { killed = p })
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the client is killed")
	assert.Equal(t, syscall.SIGKILL, ee.ProcessState.Sys().(syscall.WaitStatus).Signal())
	check(killed, ev.of(t, killed), procsensor.ConnectEnforcement{PolicyID: 7, Slot: 1, Action: procsensor.ExecSigkill,
		Signal: 9, Enforced: true, Proto: protoTCP, Dst: back1})
}
