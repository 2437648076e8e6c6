package tracingmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// fakeSensor holds the syscall rules, binary classes and connect rules the
// way the sensor and the socket LB would, recording every call (with the
// exec rule calls of rules) in one ordered log.
type fakeSensor struct {
	mu         sync.Mutex
	log        *[]string
	classes    []procsensor.BinaryClass
	sys        []procsensor.SyscallRule
	sysScopes  map[uint32]uint64
	sysCg      map[uint64]uint64
	conn       []datapath.ConnectRule
	connScopes map[uint32]uint64
	connCg     map[uint64]uint64
}

func (f *fakeSensor) SetSyscallCgroupScope(cg, slots uint64) error {
	f.record(fmt.Sprintf("sys cgscope %d %#x", cg, slots))
	f.sysCg[cg] = slots
	return nil
}

func (f *fakeSensor) DeleteSyscallCgroupScope(cg uint64) error {
	f.record(fmt.Sprintf("sys cgdelete %d", cg))
	delete(f.sysCg, cg)
	return nil
}

func (f *fakeSensor) SetConnectCgroupScope(cg, slots uint64) error {
	f.record(fmt.Sprintf("conn cgscope %d %#x", cg, slots))
	f.connCg[cg] = slots
	return nil
}

func (f *fakeSensor) DeleteConnectCgroupScope(cg uint64) error {
	f.record(fmt.Sprintf("conn cgdelete %d", cg))
	delete(f.connCg, cg)
	return nil
}

func (f *fakeSensor) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.log = append(*f.log, s)
}

func (f *fakeSensor) SetBinaryClasses(cs []procsensor.BinaryClass) error {
	var ids []uint8
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	f.record(fmt.Sprintf("classes %v", ids))
	f.classes = cs
	return nil
}

func (f *fakeSensor) SetSyscallRules(rs []procsensor.SyscallRule) error {
	f.record(fmt.Sprintf("sys rules %d", len(rs)))
	f.sys = rs
	return nil
}

func (f *fakeSensor) SetSyscallScope(ns uint32, slots uint64) error {
	f.record(fmt.Sprintf("sys scope %d %#x", ns, slots))
	f.sysScopes[ns] = slots
	return nil
}

func (f *fakeSensor) DeleteSyscallScope(ns uint32) error {
	f.record(fmt.Sprintf("sys delete %d", ns))
	delete(f.sysScopes, ns)
	return nil
}

func (f *fakeSensor) SetConnectRules(rs []datapath.ConnectRule) error {
	f.record(fmt.Sprintf("conn rules %d", len(rs)))
	f.conn = rs
	return nil
}

func (f *fakeSensor) SetConnectScope(ns uint32, slots uint64) error {
	f.record(fmt.Sprintf("conn scope %d %#x", ns, slots))
	f.connScopes[ns] = slots
	return nil
}

func (f *fakeSensor) DeleteConnectScope(ns uint32) error {
	f.record(fmt.Sprintf("conn delete %d", ns))
	delete(f.connScopes, ns)
	return nil
}

// fullHarness is a harness whose manager also has syscall and connect
// rules (withConnects false: no socket LB).
type fullHarness struct {
	*harness
	s *fakeSensor
	// proc is the ProcRoot: proc/1/ns/{pid,net} exist, mnt does not.
	proc           string
	hostPID, hostN uint32
}

func newFullHarness(t testing.TB, c compiler, withConnects bool) *fullHarness {
	t.Helper()
	h := &harness{dp: newFakeRules(), eps: &fakeEndpoints{}, reg: prometheus.NewRegistry(), cgRoot: t.TempDir()}
	f := &fullHarness{harness: h, s: &fakeSensor{log: &h.dp.calls, sysScopes: map[uint32]uint64{}, connScopes: map[uint32]uint64{},
		sysCg: map[uint64]uint64{}, connCg: map[uint64]uint64{}}}
	f.proc = t.TempDir()
	nsDir := filepath.Join(f.proc, "1", "ns")
	require.NoError(t, os.MkdirAll(nsDir, 0o755))
	for _, n := range []struct {
		name string
		ino  *uint32
	}{{"pid", &f.hostPID}, {"net", &f.hostN}} {
		p := filepath.Join(nsDir, n.name)
		require.NoError(t, os.WriteFile(p, nil, 0o600))
		ino, err := process.NSInode(p)
		require.NoError(t, err)
		*n.ino = ino
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	cfg := Config{Rules: h.dp, Syscalls: f.s, Compile: c.compile, Endpoints: h.eps, ProcRoot: f.proc,
		Cgroups: process.NewCgroupFinder(h.cgRoot), Log: log}
	if withConnects {
		cfg.Connects = f.s
	}
	h.m = New(cfg, h.reg)
	return f
}
