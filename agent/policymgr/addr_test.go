package policymgr_test

import (
	"fmt"
	"maps"
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// memDatapath holds the policy maps in memory with the kernel maps'
// semantics and records every write, so that the test can check the state a
// packet sees after each one.
type memDatapath struct {
	cfg     map[uint16]policymap.Config
	entries map[uint16]map[policymap.Key]policymap.Entry
	addrs   map[uint16]map[policymap.AddrKey]uint32
	ops     []string
	// after runs after every write (the invariant check).
	after func()
}

func newMemDatapath() *memDatapath {
	return &memDatapath{cfg: map[uint16]policymap.Config{}, entries: map[uint16]map[policymap.Key]policymap.Entry{},
		addrs: map[uint16]map[policymap.AddrKey]uint32{}}
}

func (d *memDatapath) op(s string) {
	d.ops = append(d.ops, s)
	if d.after != nil {
		d.after()
	}
}

func (d *memDatapath) SetConfig(ep uint16, c policymap.Config) error {
	d.cfg[ep] = c
	d.op("config")
	return nil
}

func (d *memDatapath) Upsert(ep uint16, k policymap.Key, e policymap.Entry) error {
	if d.entries[ep] == nil {
		d.entries[ep] = map[policymap.Key]policymap.Entry{}
	}
	d.entries[ep][k] = e
	d.op("upsert")
	return nil
}

func (d *memDatapath) Delete(ep uint16, k policymap.Key) error {
	delete(d.entries[ep], k)
	d.op("delete")
	return nil
}

func (d *memDatapath) Entries(ep uint16) (map[policymap.Key]policymap.Entry, error) {
	return maps.Clone(d.entries[ep]), nil
}

func (d *memDatapath) UpsertAddr(ep uint16, k policymap.AddrKey, set uint32) error {
	if d.addrs[ep] == nil {
		d.addrs[ep] = map[policymap.AddrKey]uint32{}
	}
	d.addrs[ep][k] = set
	d.op("upsert-addr")
	return nil
}

func (d *memDatapath) DeleteAddr(ep uint16, k policymap.AddrKey) error {
	delete(d.addrs[ep], k)
	d.op("delete-addr")
	return nil
}

func (d *memDatapath) Addrs(ep uint16) (map[policymap.AddrKey]uint32, error) {
	return maps.Clone(d.addrs[ep]), nil
}

func (d *memDatapath) DeleteEndpoint(ep uint16) error {
	delete(d.cfg, ep)
	delete(d.entries, ep)
	delete(d.addrs, ep)
	d.op("delete-endpoint")
	return nil
}

func (d *memDatapath) Endpoints() (map[uint16]bool, error) {
	out := map[uint16]bool{}
	for _, m := range []map[uint16]bool{keysOf(d.cfg), keysOf(d.entries), keysOf(d.addrs)} {
		maps.Copy(out, m)
	}
	return out, nil
}

func keysOf[V any](m map[uint16]V) map[uint16]bool {
	out := map[uint16]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// addrView is what the address stage of a packet from/to addr sees: the
// flag, the longest node's set and that set's entries.
func (d *memDatapath) addrView(ep uint16, addr netip.Addr) string {
	if !d.cfg[ep].EgressAddr {
		return "off"
	}
	best, set := -1, uint32(0)
	for k, s := range d.addrs[ep] {
		if !k.Ingress && k.Prefix.Contains(addr) && k.Prefix.Bits() > best {
			best, set = k.Prefix.Bits(), s
		}
	}
	es := map[policymap.Key]policymap.Entry{}
	for k, e := range d.entries[ep] {
		if set != 0 && k.Identity == set && !k.Ingress {
			// Rule IDs are per manager: compare the verdicts.
			k.Identity, e.RuleID = 0, 0
			es[k] = e
		}
	}
	return fmt.Sprintf("node=/%d set-entries=%v", best, es)
}

type idents struct {
	eps map[uint16]identitymgr.EndpointIdentity
}

func (i *idents) Endpoints() map[uint16]identitymgr.EndpointIdentity { return maps.Clone(i.eps) }
func (i *idents) Unresolved() map[uint16]bool                        { return nil }
func (i *idents) SetPolicyPrefixes([]netip.Prefix)                   {}

func knp(egress string) source.Raw {
	return source.Raw{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: "x", Name: "addr",
		JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"addr","namespace":"x"},` +
			`"spec":{"podSelector":{},"policyTypes":["Egress"],"egress":` + egress + `}}`)}
}

// The address trie is written with its sets: set entries, then nodes
// (longest first), then the config, then stale nodes (shortest first), then
// stale entries; after every single write each probe address sees either
// its whole old or its whole new address stage. Removing the endpoint
// removes its nodes.
func TestAddrWriteOrder(t *testing.T) {
	dp := newMemDatapath()
	ids := &idents{eps: map[uint16]identitymgr.EndpointIdentity{7: {
		Endpoint: api.Endpoint{ID: 7, IPv4: "10.244.0.7"}, Identity: 300,
		Labels: identity.PodLabels("x", map[string]string{"app": "a"}, nil),
	}}}
	m := policymgr.New(policymgr.Config{}, dp, ids, logrus.New())
	m.SetObjects([]source.Raw{knp(`[{"to":[{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.0.9/32"]}}],"ports":[{"port":80}]}]`)})
	_, err := m.Sync(false)
	require.NoError(t, err)
	first := append([]string(nil), dp.ops...)
	require.Equal(t, []string{"upsert", "upsert-addr", "upsert-addr", "config"}, first)
	assert.True(t, dp.cfg[7].EgressAddr)
	assert.True(t, dp.cfg[7].EgressEnforced)
	assert.Equal(t, map[policymap.AddrKey]uint32{
		{Prefix: netip.MustParsePrefix("10.244.0.0/16")}: 0xFE000001,
		{Prefix: netip.MustParsePrefix("10.244.0.9/32")}: 0,
	}, dp.addrs[7])
	assert.Equal(t, map[policymap.Key]policymap.Entry{{Identity: 0xFE000001, Proto: 6, Port: 80, PortPrefixLen: 16}: {RuleID: m.Rules().ID(policy.RuleRef{Kind: "NetworkPolicy", Namespace: "x", Name: "addr", Section: "egress"})}},
		dp.entries[7])

	view, ok := m.EndpointPolicy(7)
	require.True(t, ok)
	assert.Equal(t, []api.PolicyAddr{
		{Direction: "egress", Prefix: "10.244.0.0/16", Set: 0xFE000001, SetName: "addr-set:1", Rules: []string{"x/addr[egress:0]"}},
		{Direction: "egress", Prefix: "10.244.0.9/32", Rules: []string{}},
	}, view.Addrs)
	assert.Equal(t, "addr-set:1", view.Rules[0].Peer)

	// A new state: the /16 set changes (port 443 too), a second rule, the
	// except moves.
	transition(t, m, dp, ids, knp(`[{"to":[{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.0.10/32"]}}],"ports":[{"port":80},{"port":443}]},`+
		`{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":53,"protocol":"UDP"}]}]`))
	// Entries: 10/8's set (UDP 53), the /16's new set (TCP 80, 443 and UDP
	// 53: both rules hold there).
	assert.Equal(t, []string{"upsert", "upsert", "upsert", "upsert", "upsert-addr", "upsert-addr", "upsert-addr", "delete-addr", "delete"}, dp.ops)
	// Back to 10/8 only, now rule egress[0] (a new set): the nested /16 and
	// /32 nodes go.
	transition(t, m, dp, ids, knp(`[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":53,"protocol":"UDP"}]}]`))
	assert.Equal(t, []string{"upsert", "upsert-addr", "delete-addr", "delete-addr", "delete", "delete", "delete", "delete"}, dp.ops)

	// The endpoint goes: every node goes with it.
	ids.eps = nil
	_, err = m.Sync(false)
	require.NoError(t, err)
	assert.Empty(t, dp.addrs[7])
	assert.Empty(t, dp.entries[7])
	eps, _ := dp.Endpoints()
	assert.Empty(t, eps)
}

// transition applies next to m and checks that after every write each probe
// address sees its whole old or its whole new address stage, and the new
// one at the end. The new views come from a scratch manager.
func transition(t *testing.T, m *policymgr.Manager, dp *memDatapath, ids *idents, next source.Raw) {
	t.Helper()
	probes := []netip.Addr{netip.MustParseAddr("10.244.0.9"), netip.MustParseAddr("10.244.0.10"),
		netip.MustParseAddr("10.244.1.1"), netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("192.0.2.1")}
	scratch := newMemDatapath()
	ms := policymgr.New(policymgr.Config{}, scratch, ids, logrus.New())
	ms.SetObjects([]source.Raw{next})
	_, err := ms.Sync(false)
	require.NoError(t, err)
	old, want := map[netip.Addr]string{}, map[netip.Addr]string{}
	for _, a := range probes {
		old[a], want[a] = dp.addrView(7, a), scratch.addrView(7, a)
	}
	dp.ops = nil
	var bad []string
	dp.after = func() {
		for _, a := range probes {
			if v := dp.addrView(7, a); v != old[a] && v != want[a] {
				bad = append(bad, fmt.Sprintf("after %d writes %s sees %s", len(dp.ops), a, v))
			}
		}
	}
	defer func() { dp.after = nil }()
	m.SetObjects([]source.Raw{next})
	_, err = m.Sync(false)
	require.NoError(t, err)
	assert.Empty(t, bad, "a packet judged on half a state")
	for _, a := range probes {
		assert.Equal(t, want[a], dp.addrView(7, a), "%s", a)
	}
}
