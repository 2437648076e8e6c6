package policy

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/identity"
)

// cluster is the Kubernetes network-policy e2e topology: namespaces x, y, z
// with pods a, b, c each, every pod serving TCP and UDP 80 and 81 under the
// e2e port names. Identities come from the real standalone allocator, whose
// events feed the resolver the way the agent wires them. Pod n (x/a is 1)
// has the address 172.20.0.n, in the IP cache with its identity.
type cluster struct {
	t       testing.TB
	r       *Resolver
	alloc   *identity.StoreAllocator
	ipc     *identity.IPCache
	pods    []string // "x/a", sorted
	ep      map[string]EndpointID
	id      map[string]identity.NumericIdentity
	ip      map[string]netip.Addr
	changed []EndpointID // endpoints changed by the last apply/delete
}

var e2eNamedPorts = map[string]NamedPort{
	"serve-80-tcp": {80, ProtoTCP}, "serve-81-tcp": {81, ProtoTCP},
	"serve-80-udp": {80, ProtoUDP}, "serve-81-udp": {81, ProtoUDP},
}

func newCluster(t testing.TB, opts Options) *cluster {
	c := &cluster{t: t, r: NewResolver(opts), ipc: identity.NewIPCache(),
		ep: map[string]EndpointID{}, id: map[string]identity.NumericIdentity{}, ip: map[string]netip.Addr{}}
	c.alloc = identity.NewStandaloneAllocator(identity.Options{OnChange: func(ev identity.Event) {
		if ev.Kind == identity.Added {
			c.r.UpsertIdentity(ev.ID, ev.Labels)
		} else {
			c.r.DeleteIdentity(ev.ID)
		}
	}})
	n := EndpointID(1)
	for _, ns := range []string{"x", "y", "z"} {
		for _, pod := range []string{"a", "b", "c"} {
			ls := identity.PodLabels(ns, map[string]string{"pod": pod}, map[string]string{"ns": ns})
			id, err := c.alloc.Allocate(context.Background(), ls)
			require.NoError(t, err)
			name := ns + "/" + pod
			c.pods = append(c.pods, name)
			ip := netip.AddrFrom4([4]byte{172, 20, 0, byte(n)})
			c.ep[name], c.id[name], c.ip[name] = n, id, ip
			_, err = c.ipc.Upsert(netip.PrefixFrom(ip, 32), id, identity.SourceKubernetes)
			require.NoError(t, err)
			c.r.UpsertEndpoint(Endpoint{ID: n, Identity: id, Labels: ls, NamedPorts: e2eNamedPorts, IPv4: ip})
			n++
		}
	}
	return c
}

// apply parses YAML manifests (NetworkPolicy, SluiceNetworkPolicy,
// SluiceClusterwideNetworkPolicy), upserts them, and allocates CIDR
// identities for the prefixes they name.
func (c *cluster) apply(manifests ...string) {
	c.t.Helper()
	c.changed = nil
	for _, m := range manifests {
		p, err := parseManifest(m)
		require.NoError(c.t, err)
		c.changed = append(c.changed, c.r.UpsertPolicy(p)...)
	}
	for _, pfx := range c.r.Prefixes() {
		id, err := c.alloc.Allocate(context.Background(), identity.CIDRLabels(pfx))
		require.NoError(c.t, err)
		_, err = c.ipc.Upsert(pfx, id, identity.SourceGenerated)
		require.NoError(c.t, err)
	}
}

func parseManifest(m string) (*Policy, error) {
	var tm struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(m), &tm); err != nil {
		return nil, err
	}
	switch tm.Kind {
	case "NetworkPolicy":
		var np networkingv1.NetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(m), &np); err != nil {
			return nil, err
		}
		return FromNetworkPolicy(&np)
	case KindNetworkPolicy:
		var p SluiceNetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(m), &p); err != nil {
			return nil, err
		}
		return FromSluicePolicy(&p)
	case KindClusterwidePolicy:
		var p SluiceClusterwideNetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(m), &p); err != nil {
			return nil, err
		}
		return FromClusterwidePolicy(&p)
	}
	return nil, fmt.Errorf("unknown kind %q", tm.Kind)
}

// reach is a reachability matrix over the e2e pods (diagonal ignored).
type reach map[[2]string]bool

func (c *cluster) all(v bool) reach {
	m := reach{}
	for _, s := range c.pods {
		for _, d := range c.pods {
			if s != d {
				m[[2]string{s, d}] = v
			}
		}
	}
	return m
}

// set sets from→to in place and returns m; either may be "*", a
// namespace "x/*" or a pod "x/a".
func (m reach) set(from, to string, v bool) reach {
	match := func(pat, pod string) bool {
		return pat == "*" || pat == pod || (strings.HasSuffix(pat, "/*") && strings.HasPrefix(pod, strings.TrimSuffix(pat, "*")))
	}
	for k := range m {
		if match(from, k[0]) && match(to, k[1]) {
			m[k] = v
		}
	}
	return m
}

// actual evaluates every pair with the truth-table helper, and checks the
// datapath's most-specific lookups (both stages) agree on both sides.
func (c *cluster) actual(proto uint8, port uint16) reach {
	c.t.Helper()
	m := reach{}
	for _, s := range c.pods {
		for _, d := range c.pods {
			if s == d {
				continue
			}
			tr, err := c.r.Allowed(c.ep[s], c.ep[d], proto, port)
			require.NoError(c.t, err)
			m[[2]string{s, d}] = tr.Allowed
			sp, _ := c.r.MapState(c.ep[s])
			dp, _ := c.r.MapState(c.ep[d])
			eg, _, _ := sp.LookupMostSpecificAddr(Egress, c.id[d], c.ip[d], proto, port)
			in, _, _ := dp.LookupMostSpecificAddr(Ingress, c.id[s], c.ip[s], proto, port)
			require.Equal(c.t, tr.Egress, eg, "%s→%s egress most-specific lookup", s, d)
			require.Equal(c.t, tr.Ingress, in, "%s→%s ingress most-specific lookup", s, d)
		}
	}
	return m
}

func (c *cluster) expect(want reach, proto uint8, port uint16) {
	c.t.Helper()
	got := c.actual(proto, port)
	var diffs []string
	for k, w := range want {
		if got[k] != w {
			diffs = append(diffs, fmt.Sprintf("%s→%s want %v got %v", k[0], k[1], w, got[k]))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		c.t.Fatalf("%s/%d reachability:\n%s\n%s", ProtoName(proto), port, strings.Join(diffs, "\n"), c.table(got))
	}
}

func (c *cluster) table(m reach) string {
	var b strings.Builder
	b.WriteString("     ")
	for _, d := range c.pods {
		b.WriteString(d + " ")
	}
	for _, s := range c.pods {
		b.WriteString("\n" + s + " ")
		for _, d := range c.pods {
			switch {
			case s == d:
				b.WriteString("  -  ")
			case m[[2]string{s, d}]:
				b.WriteString("  .  ")
			default:
				b.WriteString("  X  ")
			}
		}
	}
	return b.String()
}

// verdictTo decides egress from a pod to an address (its identity through
// the IP cache), in both stages.
func (c *cluster) verdictTo(from, addr string, proto uint8, port uint16) bool {
	c.t.Helper()
	v, _ := c.verdictAddr(from, Egress, addr, proto, port)
	return v
}

// verdictFromAddr decides ingress into a pod from an address, in both stages.
func (c *cluster) verdictFromAddr(to, addr string, proto uint8, port uint16) bool {
	c.t.Helper()
	v, _ := c.verdictAddr(to, Ingress, addr, proto, port)
	return v
}

func (c *cluster) verdictAddr(pod string, d Direction, addr string, proto uint8, port uint16) (bool, RuleRef) {
	c.t.Helper()
	p, ok := c.r.MapState(c.ep[pod])
	require.True(c.t, ok)
	a := netip.MustParseAddr(addr)
	peer := c.ipc.Lookup(a)
	v, rule, _ := p.VerdictAddr(d, peer, a, proto, port)
	ms, _, _ := p.LookupMostSpecificAddr(d, peer, a, proto, port)
	require.Equal(c.t, v, ms, "most-specific lookup %s %s", d, addr)
	return v, rule
}

// verdictFrom decides ingress into a pod from a peer identity.
func (c *cluster) verdictFrom(to string, peer identity.NumericIdentity, proto uint8, port uint16) bool {
	c.t.Helper()
	p, ok := c.r.MapState(c.ep[to])
	require.True(c.t, ok)
	v, _, _ := p.Verdict(Ingress, peer, proto, port)
	ms, _, _ := p.LookupMostSpecific(Ingress, peer, proto, port)
	require.Equal(c.t, v, ms, "most-specific lookup from %s", peer)
	return v
}

func (c *cluster) eps(pods ...string) []EndpointID {
	var out []EndpointID
	for _, p := range pods {
		out = append(out, c.ep[p])
	}
	sortIDs(out)
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func yamlUnmarshal(s string, v any) error { return yaml.UnmarshalStrict([]byte(s), v) }
