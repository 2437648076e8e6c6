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
	o.Configs = []string{cfgIPTables, cfgDirect, cfgSluiceXDP, cfgSluiceXDPDSR}
	c := func(config, backend string, p tcpcrr.Proto) cell { return cell{config, backend, p} }
	ok := func(cl cell, round int, tps float64) sample {
		return sample{Cell: cl, Round: round, Result: tcpcrr.Result{TPS: tps, Transactions: int64(tps)}}
	}
	samples := []sample{
		ok(c(cfgIPTables, backendRemote, tcpcrr.UDPRR), 1, 1000),
		ok(c(cfgIPTables, backendRemote, tcpcrr.UDPRR), 2, 2000),
		ok(c(cfgDirect, backendRemote, tcpcrr.UDPRR), 1, 3000),
		ok(c(cfgDirect, backendRemote, tcpcrr.UDPRR), 2, 2600),
		ok(c(cfgSluiceXDP, backendRemote, tcpcrr.UDPRR), 1, 1500),
		ok(c(cfgSluiceXDP, backendRemote, tcpcrr.UDPRR), 2, 2600),
		{Cell: c(cfgSluiceXDP, backendLocal, tcpcrr.TCPCRR), Round: 1, Err: errors.New("boom")},
		{Cell: c(cfgSluiceXDPDSR, backendRemote, tcpcrr.UDPRR), Round: 1, Err: errors.New("DSR replies passed through node 1")},
	}
	sums := summarize(o.cells(), samples)
	require.NoError(t, sluiceMeasured(sums))
	var b bytes.Buffer
	writeReport(&b, "header", sums)
	out := b.String()
	// Ratios are paired by round: median of 1.5 and 1.3.
	require.Contains(t, out, "RESULT config=sluice-xdp backend=remote proto=udp_rr rate=2050 ratio_iptables=1.40\n")
	require.Contains(t, out, "RESULT config=iptables backend=remote proto=udp_rr rate=1500 ratio_iptables=1.00\n")
	// The bound has its ratio to iptables like any other: 3 and 1.3.
	require.Contains(t, out, "RESULT config=direct backend=remote proto=udp_rr rate=2800 ratio_iptables=2.15\n")
	require.Contains(t, out, `RESULT config=sluice-xdp backend=local proto=tcp_crr rate=NA ratio_iptables=NA reason="round 1: boom"`)
	require.Contains(t, out, `RESULT config=sluice-xdp-dsr backend=remote proto=udp_rr rate=NA ratio_iptables=NA reason="round 1: DSR replies passed through node 1"`)
	require.Contains(t, out, `RESULT config=direct backend=local proto=tcp_crr rate=NA ratio_iptables=NA reason="not measured"`)
	require.Equal(t, 16, strings.Count(out, "RESULT "), "a line per cell")

	// The table: each row's ratio to iptables and to direct, paired by
	// round (xdp: 0.5 and 1.0 of direct, median 0.75), and what carries
	// it; the bound says it is one.
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[2] == "udp_rr" && f[1] == backendRemote {
			rows[f[0]] = l
		}
	}
	require.Regexp(t, `^iptables +remote +udp_rr +2/2 +1500 +1000–2000 .* 1\.00 +0\.55 \[0\.33–0\.77\] +netfilter DNAT\+SNAT, conntrack$`, rows[cfgIPTables])
	require.Regexp(t, `^direct +remote +udp_rr +2/2 +2800 +2600–3000 .* 2\.15 \[1\.30–3\.00\] +1\.00 +no translation: the pod's own address \(upper bound\)$`, rows[cfgDirect])
	require.Regexp(t, `^sluice-xdp +remote +udp_rr +2/2 .* 1\.40 \[1\.30–1\.50\] +0\.75 \[0\.50–1\.00\] +XDP DNAT\+SNAT$`, rows[cfgSluiceXDP])
	require.Regexp(t, `^sluice-xdp-dsr +remote +udp_rr +0/1 +- .* FAILED: round 1: DSR replies passed through node 1$`, rows[cfgSluiceXDPDSR])
	require.Contains(t, out, "direct: the client addresses the backend pod itself through node 1 (no NAT, no conntrack rules, no NodePort program): the no-translation bound")

	// Only the baseline and the bound measured: no Sluice number, a
	// failure.
	sums = summarize(o.cells(), samples[:4])
	require.ErrorContains(t, sluiceMeasured(sums), "no Sluice configuration produced a number")
}

func TestCheckPaths(t *testing.T) {
	const tx = 10000
	remoteDSR := cell{cfgSluiceXDPDSR, backendRemote, tcpcrr.TCPCRR}
	// A DSR sample as measured: requests encapsulated by node 1 (1.5 per
	// transaction), replies reverse-translated by node 2 and received on
	// the client's link to it; node 1 sent the client one ARP reply.
	dsr := paths{Encap: 15000, Decap: 15000, RevNAT: 10000, linkPackets: linkPackets{N1ExtTx: 1, ClientRx: 1, ClientDSRRx: 10001}}
	require.NoError(t, checkPaths(remoteDSR, tx, dsr))
	require.NoError(t, checkPaths(cell{cfgSluiceTCDSR, backendRemote, tcpcrr.UDPRR}, tx, dsr))
	for name, p := range map[string]paths{
		"replies through node 1":  {Encap: 15000, Decap: 15000, RevNAT: 10000, linkPackets: linkPackets{N1ExtTx: 10000, N1ULRx: 10000, ClientRx: 10000, ClientDSRRx: 10001}},
		"node 1 received them":    {Encap: 15000, Decap: 15000, RevNAT: 10000, linkPackets: linkPackets{N1ULRx: 200, ClientDSRRx: 10001}},
		"client got them on eth0": {Encap: 15000, Decap: 15000, RevNAT: 10000, linkPackets: linkPackets{ClientRx: 500, ClientDSRRx: 10001}},
		"not encapsulated":        {Decap: 15000, RevNAT: 10000, linkPackets: linkPackets{ClientDSRRx: 10001}},
		"not decapsulated":        {Encap: 15000, RevNAT: 10000, linkPackets: linkPackets{ClientDSRRx: 10001}},
		"not reverse-translated":  {Encap: 15000, Decap: 15000, linkPackets: linkPackets{ClientDSRRx: 10001}},
		"no replies from node 2":  {Encap: 15000, Decap: 15000, RevNAT: 10000, linkPackets: linkPackets{ClientDSRRx: 20}},
	} {
		require.Error(t, checkPaths(remoteDSR, tx, p), name)
	}

	// Every other cell comes back through node 1, the link to node 2
	// unused.
	via1 := paths{linkPackets: linkPackets{N1ExtTx: 20000, ClientRx: 20000, ClientDSRRx: 3}}
	for _, c := range []cell{
		{cfgDirect, backendRemote, tcpcrr.TCPCRR},
		{cfgIPTables, backendRemote, tcpcrr.UDPRR},
		{cfgSluiceTC, backendLocal, tcpcrr.TCPCRR},
		{cfgSluiceXDPDSR, backendLocal, tcpcrr.UDPRR}, // a local backend: no DSR
	} {
		require.NoError(t, checkPaths(c, tx, via1), c.String())
		require.ErrorContains(t, checkPaths(c, tx, paths{linkPackets: linkPackets{ClientRx: 20000, ClientDSRRx: 10000}}), "only DSR replies", c.String())
		require.Error(t, checkPaths(c, tx, paths{}), c.String())
	}
	// sluice-xdp's remote backend: XDP translated both ways.
	xdp := cell{cfgSluiceXDP, backendRemote, tcpcrr.UDPRR}
	require.ErrorContains(t, checkPaths(xdp, tx, via1), "did not go through XDP")
	via1.XDPFwd, via1.XDPRev = 10000, 10000
	require.NoError(t, checkPaths(xdp, tx, via1))
	// A DSR sample of a local backend is not held to DSR's counters.
	require.NoError(t, checkPaths(cell{cfgSluiceXDPDSR, backendLocal, tcpcrr.TCPCRR}, tx, via1))
}
