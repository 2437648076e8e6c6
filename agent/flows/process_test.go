package flows

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/monitor"
)

// procTable is a connection table filled while the observer runs.
type procTable struct {
	mu    sync.Mutex
	conns map[[2]netip.AddrPort]api.ProcessRef
}

func (p *procTable) add(src, dst netip.AddrPort, ref api.ProcessRef) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[[2]netip.AddrPort{src, dst}] = ref
}

func (p *procTable) ProcessForFlow(proto uint8, src, dst netip.AddrPort) (api.ProcessRef, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ref, ok := p.conns[[2]netip.AddrPort{src, dst}]
	return ref, ok && proto == 6
}

// idleReader yields its flows, then nothing (deadlines) until closed.
type idleReader struct{ reader }

func (r *idleReader) Read() (monitor.Flow, error) {
	if len(r.flows) == 0 {
		time.Sleep(time.Millisecond)
		return monitor.Flow{}, os.ErrDeadlineExceeded
	}
	return r.reader.Read()
}

func TestFlowsNameTheirProcess(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.1:40000")
	late := netip.MustParseAddrPort("10.0.0.1:40001")
	never := netip.MustParseAddrPort("10.0.0.1:40002")
	backend := netip.MustParseAddrPort("10.0.0.2:8080")
	svc := netip.MustParseAddrPort("10.96.0.10:80")
	curl := api.ProcessRef{ExecID: "a", PID: 7, Binary: "/usr/bin/curl"}
	sh := api.ProcessRef{ExecID: "b", PID: 8, Binary: "/bin/sh"}
	procs := &procTable{conns: map[[2]netip.AddrPort]api.ProcessRef{{src, svc}: curl}}
	r := &idleReader{reader{flows: []monitor.Flow{
		// Per-packet translation: the socket asked for the service address.
		{Verdict: monitor.VerdictForwarded, Src: src, Dst: backend, OrigDst: svc, Proto: 6},
		// The connection becomes known after its first packet's flow.
		{Verdict: monitor.VerdictForwarded, Src: late, Dst: backend, Proto: 6},
		{Verdict: monitor.VerdictForwarded, Src: never, Dst: backend, Proto: 6},
		{Verdict: monitor.VerdictDropped, Src: src, Dst: backend, Proto: 1},
	}}}
	o := New(8, nil, nil, quietLog())
	o.SetProcesses(procs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, r) }()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(JoinDelay / 4)
	procs.add(late, backend, sh)
	require.Eventually(t, func() bool { return len(o.History(api.FlowFilter{})) == 4 }, 5*time.Second, 5*time.Millisecond)
	byPort := map[string]*api.ProcessRef{}
	for _, f := range o.History(api.FlowFilter{}) {
		byPort[f.Protocol+" "+f.Source] = f.Process
	}
	assert.Equal(t, &curl, byPort["TCP "+src.String()], "named through the service address")
	assert.Equal(t, &sh, byPort["TCP "+late.String()], "named once the connection is known")
	assert.Nil(t, byPort["TCP "+never.String()], "released without a process after the join delay")
	assert.Nil(t, byPort["ICMP "+src.String()], "only TCP and UDP flows have a process")
}
