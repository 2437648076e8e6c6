package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/harness"
)

// iptablesVersion is benchrun.IPTablesVersion.
func iptablesVersion() string { return benchrun.IPTablesVersion() }

// ipOptions are the kube-proxy flags the iptables configuration emulates.
//
// The cluster CIDR rule (`! -s 10.244.0.0/16 … -j KUBE-MARK-MASQ`) is always
// there, as with kube-proxy --cluster-cidr. MasqueradeAll (kube-proxy
// --masquerade-all) is on by default because of Sluice's pod program: it
// delivers a packet addressed to a local pod straight into that pod with
// bpf_redirect_peer, so a backend's reply to the client pod would skip the
// node's conntrack, never be reverse-DNATed, and the client would reset it.
// With SNAT to the node's gateway address the reply is addressed to the node,
// goes through its stack and is un-NATed there.
func ipOptions(o Options) services.IPTablesOptions {
	return services.IPTablesOptions{ClusterCIDR: mustPrefix(harness.PodCIDR), MasqueradeAll: o.MasqueradeAll}
}

// restore is benchrun.IPTablesRestore.
func restore(ns *harness.NetNS, rules string, noflush bool) (time.Duration, error) {
	return benchrun.IPTablesRestore(ns, rules, noflush)
}

// countNATRules counts the rules of the nat table in ns (iptables -S).
func countNATRules(ns *harness.NetNS) (int, error) {
	out, err := ns.Command("iptables", "-t", "nat", "-S").Output()
	if err != nil {
		return 0, fmt.Errorf("iptables -t nat -S in %s: %w", ns.Name, err)
	}
	return strings.Count(string(out), "\n-A "), nil
}
