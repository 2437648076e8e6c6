package services

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
)

// IPTablesOptions shape the kube-proxy ruleset.
type IPTablesOptions struct {
	// ClusterCIDR is kube-proxy's --cluster-cidr: traffic to a service from
	// outside it is marked for masquerade.
	ClusterCIDR netip.Prefix
	// MasqueradeAll is kube-proxy's --masquerade-all: every connection to a
	// service is marked for masquerade (SNAT to the node's address).
	MasqueradeAll bool
}

// Chain names as kube-proxy derives them: a prefix and the first 16
// characters of base32(sha256(id)).
func chainName(prefix, id string) string {
	h := sha256.Sum256([]byte(id))
	return prefix + base32.StdEncoding.EncodeToString(h[:])[:16]
}

// SVCChain is the KUBE-SVC-* chain of s.
func SVCChain(s Service) string { return chainName("KUBE-SVC-", s.ID()+s.Proto()) }

// EXTChain is the KUBE-EXT-* chain of s (NodePort services).
func EXTChain(s Service) string { return chainName("KUBE-EXT-", s.ID()+s.Proto()) }

// SEPChain is the KUBE-SEP-* chain of backend b of s.
func SEPChain(s Service, b netip.AddrPort) string {
	return chainName("KUBE-SEP-", s.ID()+s.Proto()+b.String())
}

// IPTablesRestore renders svcs as kube-proxy's iptables mode lays them out in
// the nat table, as one iptables-restore input (flushing mode):
// PREROUTING/OUTPUT → KUBE-SERVICES, one rule per service in order (so the
// last service is matched last), then the nodeports rule; KUBE-SVC-* picks a
// KUBE-SEP-* with statistic-random probabilities 1/n, 1/(n-1), …; KUBE-SEP-*
// DNATs; KUBE-MARK-MASQ marks and KUBE-POSTROUTING masquerades only marked
// packets. A NodePort service gets kube-proxy's KUBE-NODEPORTS rule to its
// KUBE-EXT-* chain, which marks for masquerade (externalTrafficPolicy
// Cluster) and jumps to KUBE-SVC-*.
func IPTablesRestore(svcs []Service, o IPTablesOptions) string {
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, c := range []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"} {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, s := range svcs {
		writeChainDecls(&b, s)
	}
	b.WriteString(`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES` + "\n")
	b.WriteString(`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES` + "\n")
	b.WriteString(`-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING` + "\n")
	b.WriteString("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n")
	b.WriteString("-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n")
	b.WriteString(`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully` + "\n")
	b.WriteString("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	writeServicesChain(&b, svcs)
	for _, s := range svcs {
		writeServiceChains(&b, s, o)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// IPTablesUpdate renders the partial sync kube-proxy does when one service
// (extra) is added to svcs: an iptables-restore --noflush input that rewrites
// KUBE-SERVICES whole (declaring a chain flushes it) and adds the new
// service's chains.
func IPTablesUpdate(svcs []Service, extra Service, o IPTablesOptions) string {
	all := append(append([]Service(nil), svcs...), extra)
	var b strings.Builder
	b.WriteString("*nat\n")
	b.WriteString(":KUBE-SERVICES - [0:0]\n")
	writeChainDecls(&b, extra)
	writeServicesChain(&b, all)
	writeServiceChains(&b, extra, o)
	b.WriteString("COMMIT\n")
	return b.String()
}

func writeChainDecls(b *strings.Builder, s Service) {
	fmt.Fprintf(b, ":%s - [0:0]\n", SVCChain(s))
	if s.NodePort != 0 {
		fmt.Fprintf(b, ":%s - [0:0]\n", EXTChain(s))
	}
	for _, be := range s.Backends {
		fmt.Fprintf(b, ":%s - [0:0]\n", SEPChain(s, be))
	}
}

func writeServicesChain(b *strings.Builder, svcs []Service) {
	for _, s := range svcs {
		fmt.Fprintf(b, "-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment \"%s cluster IP\" -m %s --dport %d -j %s\n",
			s.VIP, s.Proto(), s.ID(), s.Proto(), s.Port, SVCChain(s))
	}
	for _, s := range svcs {
		if s.NodePort != 0 {
			fmt.Fprintf(b, "-A KUBE-NODEPORTS -p %s -m comment --comment \"%s\" -m %s --dport %d -j %s\n",
				s.Proto(), s.ID(), s.Proto(), s.NodePort, EXTChain(s))
		}
	}
	b.WriteString(`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS` + "\n")
}

func writeServiceChains(b *strings.Builder, s Service, o IPTablesOptions) {
	svc := SVCChain(s)
	if s.NodePort != 0 {
		ext := EXTChain(s)
		fmt.Fprintf(b, "-A %s -m comment --comment \"masquerade traffic for %s external destinations\" -j KUBE-MARK-MASQ\n", ext, s.ID())
		fmt.Fprintf(b, "-A %s -j %s\n", ext, svc)
	}
	p := s.Proto()
	switch {
	case o.MasqueradeAll:
		fmt.Fprintf(b, "-A %s -d %s/32 -p %s -m comment --comment \"%s cluster IP\" -m %s --dport %d -j KUBE-MARK-MASQ\n",
			svc, s.VIP, p, s.ID(), p, s.Port)
	case o.ClusterCIDR.IsValid():
		fmt.Fprintf(b, "-A %s ! -s %s -d %s/32 -p %s -m comment --comment \"%s cluster IP\" -m %s --dport %d -j KUBE-MARK-MASQ\n",
			svc, o.ClusterCIDR, s.VIP, p, s.ID(), p, s.Port)
	}
	n := len(s.Backends)
	for i, be := range s.Backends {
		sep := SEPChain(s, be)
		if left := n - i; left > 1 {
			fmt.Fprintf(b, "-A %s -m comment --comment \"%s -> %s\" -m statistic --mode random --probability %.11f -j %s\n",
				svc, s.ID(), be, 1/float64(left), sep)
		} else {
			fmt.Fprintf(b, "-A %s -m comment --comment \"%s -> %s\" -j %s\n", svc, s.ID(), be, sep)
		}
	}
	for _, be := range s.Backends {
		sep := SEPChain(s, be)
		fmt.Fprintf(b, "-A %s -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ\n", sep, be.Addr(), s.ID())
		fmt.Fprintf(b, "-A %s -p %s -m comment --comment \"%s\" -m %s -j DNAT --to-destination %s\n", sep, p, s.ID(), p, be)
	}
}
