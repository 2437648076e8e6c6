package services

import (
	"bytes"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

var (
	be1    = netip.MustParseAddrPort("10.244.1.3:8080")
	be2    = netip.MustParseAddrPort("10.244.1.4:8080")
	filler = []netip.AddrPort{netip.MustParseAddrPort("10.244.1.250:8080"), netip.MustParseAddrPort("10.244.1.251:8080")}
)

func TestSet(t *testing.T) {
	set, err := Set(3, []netip.AddrPort{be1, be2}, filler)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 3 {
		t.Fatalf("got %d services", len(set))
	}
	for i, want := range []string{"10.96.0.16", "10.96.0.17", "10.96.0.18"} {
		if set[i].VIP.String() != want {
			t.Errorf("service %d VIP %s, want %s", i, set[i].VIP, want)
		}
	}
	if set[2].Name != Measured || set[2].Backends[0] != be1 || set[0].Name != "svc-00000" || set[0].Backends[0] != filler[0] {
		t.Errorf("wrong order or backends: %+v", set)
	}
	if _, err := Set(0, nil, nil); err == nil {
		t.Error("Set(0) succeeded")
	}
	if _, err := Set(2_000_000, nil, nil); err == nil {
		t.Error("Set beyond the service CIDR succeeded")
	}
	x := Extra(set, "extra", filler)
	if x.VIP.String() != "10.96.0.19" {
		t.Errorf("extra VIP %s", x.VIP)
	}
}

func TestIPTablesRestoreOneService(t *testing.T) {
	set, err := Set(1, []netip.AddrPort{be1, be2}, filler)
	if err != nil {
		t.Fatal(err)
	}
	s := set[0]
	svc, sepA, sepB := SVCChain(s), SEPChain(s, be1), SEPChain(s, be2)
	want := `*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:` + svc + ` - [0:0]
:` + sepA + ` - [0:0]
:` + sepB + ` - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -d 10.96.0.16/32 -p tcp -m comment --comment "default/crr:tcp cluster IP" -m tcp --dport 80 -j ` + svc + `
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A ` + svc + ` ! -s 10.244.0.0/16 -d 10.96.0.16/32 -p tcp -m comment --comment "default/crr:tcp cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A ` + svc + ` -m comment --comment "default/crr:tcp -> 10.244.1.3:8080" -m statistic --mode random --probability 0.50000000000 -j ` + sepA + `
-A ` + svc + ` -m comment --comment "default/crr:tcp -> 10.244.1.4:8080" -j ` + sepB + `
-A ` + sepA + ` -s 10.244.1.3/32 -m comment --comment "default/crr:tcp" -j KUBE-MARK-MASQ
-A ` + sepA + ` -p tcp -m comment --comment "default/crr:tcp" -m tcp -j DNAT --to-destination 10.244.1.3:8080
-A ` + sepB + ` -s 10.244.1.4/32 -m comment --comment "default/crr:tcp" -j KUBE-MARK-MASQ
-A ` + sepB + ` -p tcp -m comment --comment "default/crr:tcp" -m tcp -j DNAT --to-destination 10.244.1.4:8080
COMMIT
`
	got := IPTablesRestore(set, IPTablesOptions{ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")})
	if got != want {
		t.Errorf("ruleset:\n%s\nwant:\n%s", got, want)
	}
	all := IPTablesRestore(set, IPTablesOptions{MasqueradeAll: true, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")})
	wantMasq := "-A " + svc + " -d 10.96.0.16/32 -p tcp -m comment --comment \"default/crr:tcp cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n"
	if !strings.Contains(all, wantMasq) || strings.Contains(all, "! -s") {
		t.Errorf("masquerade-all ruleset lacks %q or keeps the cluster-CIDR rule:\n%s", wantMasq, all)
	}
}

func TestIPTablesRestoreOrderAndChains(t *testing.T) {
	set, err := Set(1000, []netip.AddrPort{be1, be2}, filler)
	if err != nil {
		t.Fatal(err)
	}
	rs := IPTablesRestore(set, IPTablesOptions{})
	var svcRules []string
	chains := map[string]bool{}
	for _, l := range strings.Split(rs, "\n") {
		if strings.HasPrefix(l, "-A KUBE-SERVICES ") {
			svcRules = append(svcRules, l)
		}
		if strings.HasPrefix(l, ":") {
			name := strings.Fields(l[1:])[0]
			if chains[name] {
				t.Errorf("chain %s declared twice", name)
			}
			chains[name] = true
		}
	}
	// 1000 services + the nodeports rule, the measured service last.
	if len(svcRules) != 1001 {
		t.Fatalf("%d KUBE-SERVICES rules, want 1001", len(svcRules))
	}
	if !strings.Contains(svcRules[999], "-d 10.96.3.247/32") || !strings.Contains(svcRules[999], "default/crr:tcp") {
		t.Errorf("measured service is not matched last: %s", svcRules[999])
	}
	if !strings.Contains(svcRules[1000], "KUBE-NODEPORTS") {
		t.Errorf("last rule is not the nodeports rule: %s", svcRules[1000])
	}
	// 4 fixed chains, one SVC and two SEP chains per service.
	if len(chains) != 4+3*1000 {
		t.Errorf("%d chains, want %d", len(chains), 4+3*1000)
	}
	// Every jump goes to a declared or built-in chain.
	jump := regexp.MustCompile(`-j (\S+)`)
	builtin := map[string]bool{"DNAT": true, "MASQUERADE": true, "MARK": true, "RETURN": true}
	for _, m := range jump.FindAllStringSubmatch(rs, -1) {
		if !chains[m[1]] && !builtin[m[1]] {
			t.Errorf("jump to undeclared chain %s", m[1])
		}
	}
	// No masquerade rule on the service chain without a cluster CIDR.
	if strings.Contains(rs, "cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ") {
		t.Error("service chain marks for masquerade without ClusterCIDR or MasqueradeAll")
	}
}

func TestIPTablesProbabilities(t *testing.T) {
	s := Service{Namespace: "default", Name: "x", PortName: "tcp", VIP: FirstVIP, Port: 80, Backends: []netip.AddrPort{
		netip.MustParseAddrPort("10.244.1.2:80"), netip.MustParseAddrPort("10.244.1.3:80"),
		netip.MustParseAddrPort("10.244.1.4:80"), netip.MustParseAddrPort("10.244.1.5:80"),
	}}
	rs := IPTablesRestore([]Service{s}, IPTablesOptions{})
	var probs []string
	for _, m := range regexp.MustCompile(`--probability (\S+)`).FindAllStringSubmatch(rs, -1) {
		probs = append(probs, m[1])
	}
	want := []string{"0.25000000000", "0.33333333333", "0.50000000000"}
	if strings.Join(probs, " ") != strings.Join(want, " ") {
		t.Errorf("probabilities %v, want %v", probs, want)
	}
}

func TestIPTablesUpdate(t *testing.T) {
	set, err := Set(3, []netip.AddrPort{be1, be2}, filler)
	if err != nil {
		t.Fatal(err)
	}
	x := Extra(set, "extra", filler)
	up := IPTablesUpdate(set, x, IPTablesOptions{})
	if !strings.HasPrefix(up, "*nat\n:KUBE-SERVICES - [0:0]\n") || !strings.HasSuffix(up, "COMMIT\n") {
		t.Errorf("update does not redeclare KUBE-SERVICES:\n%s", up)
	}
	if n := strings.Count(up, "-A KUBE-SERVICES "); n != 5 {
		t.Errorf("update has %d KUBE-SERVICES rules, want 5 (4 services + nodeports)", n)
	}
	if strings.Contains(up, ":"+SVCChain(set[0])) || !strings.Contains(up, ":"+SVCChain(x)) {
		t.Errorf("update must declare only the new service's chains:\n%s", up)
	}
	if strings.Contains(up, "-A PREROUTING") {
		t.Error("update re-adds the PREROUTING jump")
	}
}

func TestWriteManifests(t *testing.T) {
	set, err := Set(2, []netip.AddrPort{be1, be2}, filler)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteManifests(&b, set); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "---\n"); n != 4 {
		t.Errorf("%d documents, want 4", n)
	}
	want := `---
apiVersion: v1
kind: Service
metadata:
  name: crr
  namespace: default
spec:
  type: ClusterIP
  clusterIP: 10.96.0.17
  clusterIPs:
  - 10.96.0.17
  ports:
  - name: tcp
    protocol: TCP
    port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: crr-1
  namespace: default
  labels:
    kubernetes.io/service-name: crr
addressType: IPv4
ports:
- name: tcp
  protocol: TCP
  port: 8080
endpoints:
- addresses:
  - 10.244.1.3
  conditions:
    ready: true
- addresses:
  - 10.244.1.4
  conditions:
    ready: true
`
	if !strings.HasSuffix(out, want) {
		t.Errorf("manifests:\n%s\nwant suffix:\n%s", out, want)
	}
	b.Reset()
	if err := WriteManifests(&b, []Service{{Namespace: "default", Name: "empty", PortName: "tcp", VIP: FirstVIP, Port: 80}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "endpoints: []\n") || strings.Count(b.String(), "endpoints:") != 1 {
		t.Errorf("service without backends:\n%s", b.String())
	}
}

// A UDP NodePort service: kube-proxy's KUBE-NODEPORTS rule to KUBE-EXT-*,
// which marks for masquerade and jumps to KUBE-SVC-*, all for UDP; the
// manifest is type NodePort with the node port and protocol UDP.
func TestNodePortUDP(t *testing.T) {
	s := Service{Namespace: "default", Name: "np", PortName: "udp", VIP: FirstVIP, Port: 80, Protocol: "udp", NodePort: 30080,
		Backends: []netip.AddrPort{be1}}
	got := IPTablesRestore([]Service{s}, IPTablesOptions{})
	ext, svc := EXTChain(s), SVCChain(s)
	for _, want := range []string{
		":" + ext + " - [0:0]\n",
		`-A KUBE-NODEPORTS -p udp -m comment --comment "default/np:udp" -m udp --dport 30080 -j ` + ext + "\n",
		"-A " + ext + ` -m comment --comment "masquerade traffic for default/np:udp external destinations" -j KUBE-MARK-MASQ` + "\n",
		"-A " + ext + " -j " + svc + "\n",
		"-A KUBE-SERVICES -d 10.96.0.16/32 -p udp ",
		"-m udp -j DNAT --to-destination 10.244.1.3:8080\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
	tcp := s
	tcp.Protocol = ""
	if SVCChain(tcp) == svc || EXTChain(tcp) == ext {
		t.Error("TCP and UDP services of one port share chains")
	}
	var b bytes.Buffer
	if err := WriteManifests(&b, []Service{s}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"type: NodePort\n", "    protocol: UDP\n    port: 80\n    nodePort: 30080\n", "  protocol: UDP\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("manifest lacks %q:\n%s", want, b.String())
		}
	}
}
