package datapath_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

// The connect4 program's run time per connect() (kernel BPF statistics),
// direct and through a service: with the sensor's knob off (the socket LB
// alone), on without rules, and on with 64 rules that apply to the client
// (Global or scoped to its netns; some with class filters) and match none
// of its destinations. Logged, not asserted.
func TestPrivilegedConnectRuleCost(t *testing.T) {
	harness.RequirePrivileged(t)
	st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	off := newConnEnv(t, datapath.Options{})
	on := newConnEnv(t, datapath.Options{ProcessEvents: true})
	var miss []datapath.ConnectRule
	for i := 0; i < datapath.MaxConnectRules; i++ {
		r := datapath.ConnectRule{Slot: uint8(i), PolicyID: uint32(i), Global: i%2 == 0, Protocol: []uint8{0, protoTCP}[i%2],
			Dests: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.1.%d.0/24", i))}, Ports: []uint16{uint16(1000 + i), 443},
			Action: procsensor.ConnectDeny, Enforce: true}
		switch i % 4 {
		case 1:
			r.Binary.All = 1 << 5
		case 3: // the test's backends, another port
			r.Dests = append(r.Dests, netip.MustParsePrefix("10.244.250.0/24"))
		}
		miss = append(miss, r)
	}
	require.NoError(t, on.d.SetConnectScope(on.netns, ^uint64(0)))
	for _, e := range []*connEnv{off, on} {
		programService(t, e.d, lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}, 8080, 0, 1)
	}
	prog := func(name string, e *connEnv) *ebpf.Program {
		p, err := ebpf.LoadPinnedProgram(pin.ProgPath(e.d.Root(), pin.ProgSockConnect4), nil)
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })
		info, err := p.Info()
		require.NoError(t, err)
		insns, err := info.Instructions()
		require.NoError(t, err)
		t.Logf("connect4 %s: %d instructions after the verifier", name, len(insns))
		return p
	}
	progs := map[*connEnv]*ebpf.Program{off: prog("knob off", off), on: prog("knob on", on)}
	const n = 1000
	measure := func(name string, e *connEnv, addr string) {
		before, err := progs[e].Stats()
		require.NoError(t, err)
		for _, r := range runSockClient(t, e.ns, e.cg, "tcp", addr, n) {
			require.Empty(t, r.Call, "%s: %+v", name, r)
		}
		after, err := progs[e].Stats()
		require.NoError(t, err)
		runs := after.RunCount - before.RunCount
		t.Logf("%-32s %-16s runs %5d  %v/run", name, addr, runs, (after.Runtime-before.Runtime)/max(1, time.Duration(runs)))
	}
	for round := 0; round < 3; round++ {
		for _, addr := range []string{back1TCP, "10.96.0.10:80"} {
			measure("knob off (socket LB alone)", off, addr)
			require.NoError(t, on.d.SetConnectRules(nil))
			measure("knob on, no rules", on, addr)
			require.NoError(t, on.d.SetConnectRules(miss))
			measure("knob on, 64 rules, no match", on, addr)
		}
	}
}
