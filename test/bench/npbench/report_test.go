package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/bench/tcpcrr"
)

func TestReport(t *testing.T) {
	o := DefaultOptions()
	o.Configs = []string{cfgIPTables, cfgSluiceXDP, cfgSluiceXDPDSR}
	c := func(config, backend string, p tcpcrr.Proto) cell { return cell{config, backend, p} }
	ok := func(cl cell, round int, tps float64) sample {
		return sample{Cell: cl, Round: round, Result: tcpcrr.Result{TPS: tps, Transactions: int64(tps)}}
	}
	samples := []sample{
		ok(c(cfgIPTables, backendRemote, tcpcrr.UDPRR), 1, 1000),
		ok(c(cfgIPTables, backendRemote, tcpcrr.UDPRR), 2, 2000),
		ok(c(cfgSluiceXDP, backendRemote, tcpcrr.UDPRR), 1, 1500),
		ok(c(cfgSluiceXDP, backendRemote, tcpcrr.UDPRR), 2, 2600),
		{Cell: c(cfgSluiceXDP, backendLocal, tcpcrr.TCPCRR), Round: 1, Err: errors.New("boom")},
	}
	sums := summarize(o.cells(), samples)
	require.NoError(t, sluiceMeasured(sums))
	var b bytes.Buffer
	writeReport(&b, "header", sums)
	out := b.String()
	// Ratios are paired by round: median of 1.5 and 1.3.
	require.Contains(t, out, "RESULT config=sluice-xdp backend=remote proto=udp_rr rate=2050 ratio_iptables=1.40\n")
	require.Contains(t, out, "RESULT config=iptables backend=remote proto=udp_rr rate=1500 ratio_iptables=1.00\n")
	require.Contains(t, out, `RESULT config=sluice-xdp backend=local proto=tcp_crr rate=NA ratio_iptables=NA reason="round 1: boom"`)
	require.Contains(t, out, `RESULT config=sluice-xdp-dsr backend=remote proto=udp_rr rate=NA ratio_iptables=NA reason="unavailable (DSR needs the backend's node to reach the client; this topology does not)"`)
	require.Equal(t, 12, strings.Count(out, "RESULT "), "a line per cell")

	// Only the baseline measured, the DSR configuration unavailable: no
	// Sluice number, a failure.
	sums = summarize(o.cells(), samples[:2])
	require.ErrorContains(t, sluiceMeasured(sums), "no Sluice configuration produced a number")
}
