package policymgr_test

import (
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
)

func snp(name, spec string) source.Raw {
	return source.Raw{APIVersion: "sluice.io/v1alpha1", Kind: "SluiceNetworkPolicy", Namespace: "x", Name: name,
		JSON: []byte(`{"apiVersion":"sluice.io/v1alpha1","kind":"SluiceNetworkPolicy","metadata":{"name":"` + name + `","namespace":"x"},` +
			`"spec":` + spec + `}`)}
}

// A policy rejected for an unsupported field puts the endpoints it selects
// into default deny in the directions it covers, with no entry (fail
// closed), and says so in its status and in the endpoint's policy; the
// endpoints it does not select are untouched. With RejectedIgnore nothing of
// it applies. A fixed version replaces the fallback; deleting the policy
// removes it.
func TestRejectedPolicyFailsClosed(t *testing.T) {
	const l7 = `{"endpointSelector":{"matchLabels":{"app":"web"}},"ingress":[{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],` +
		`"rules":{"http":[{"method":"GET"}]}}]}]}`
	const fqdn = `{"endpointSelector":{"matchLabels":{"app":"web"}},"egress":[{"toFQDNs":[{"matchName":"example.com"}]}]}`
	const misspelt = `{"endpointSelector":{"matchLabels":{"app":"web"}},"ingres":[{}]}`
	tests := []struct {
		name, spec  string
		raw         *source.Raw // instead of spec
		mode        policymgr.RejectedMode
		in, eg      bool
		defaultDeny []string
		msg         string
		selectedBy  []string
	}{
		{name: "L7 rule: ingress", spec: l7, in: true, defaultDeny: []string{"ingress"},
			msg:        "rejected: SluiceNetworkPolicy/x/p: spec.ingress[0].toPorts[0].rules: L7 policy (toPorts[].rules: http/dns/kafka/l7) is not supported (rejected, not ignored); enforcing default deny for ingress",
			selectedBy: []string{"x/p[rejected-ingress:0]"}},
		{name: "FQDN: egress", spec: fqdn, eg: true, defaultDeny: []string{"egress"},
			msg: "enforcing default deny for egress", selectedBy: []string{"x/p[rejected-egress:0]"}},
		{name: "misspelt direction: both", spec: misspelt, in: true, eg: true, defaultDeny: []string{"ingress", "egress"},
			msg: "unknown field \"ingres\"; enforcing default deny for ingress and egress"},
		{name: "kubernetes v1beta1: its policyTypes", raw: &source.Raw{APIVersion: "networking.k8s.io/v1beta1", Kind: "NetworkPolicy", Namespace: "x", Name: "p",
			JSON: []byte(`{"metadata":{"name":"p","namespace":"x"},"spec":{"podSelector":{"matchLabels":{"app":"web"}},"policyTypes":["Egress"]}}`)},
			eg: true, defaultDeny: []string{"egress"}, msg: "apiVersion: networking.k8s.io/v1beta1 is not supported", selectedBy: []string{"x/p[rejected-egress:0]"}},
		{name: "ignore", spec: l7, mode: policymgr.RejectedIgnore,
			msg: "; not enforced (rejected-policy=ignore)", selectedBy: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dp := newMemDatapath()
			ids := &idents{eps: map[uint16]identitymgr.EndpointIdentity{
				1: {Endpoint: api.Endpoint{ID: 1, IPv4: "10.244.0.1"}, Identity: 300, Labels: identity.PodLabels("x", map[string]string{"app": "web"}, nil)},
				2: {Endpoint: api.Endpoint{ID: 2, IPv4: "10.244.0.2"}, Identity: 301, Labels: identity.PodLabels("x", map[string]string{"app": "db"}, nil)},
			}}
			m := policymgr.New(policymgr.Config{Rejected: tc.mode}, dp, ids, logrus.New())
			rejected := snp("p", tc.spec)
			if tc.raw != nil {
				rejected = *tc.raw
			}
			m.SetObjects([]source.Raw{rejected})
			_, err := m.Sync(false)
			require.NoError(t, err)

			assert.Equal(t, policymap.Config{IngressEnforced: tc.in, EgressEnforced: tc.eg}, dp.cfg[1], "selected endpoint")
			assert.Empty(t, dp.entries[1], "nothing allowed")
			assert.Equal(t, policymap.Config{}, dp.cfg[2], "endpoint the policy does not select")
			st := m.Status()
			require.Len(t, st, 1)
			assert.False(t, st[0].Accepted)
			assert.Equal(t, tc.defaultDeny, st[0].DefaultDeny)
			assert.Contains(t, st[0].Message, tc.msg)
			assert.NotContains(t, st[0].Reason, "default deny", "the reason stays the bare reason")
			wantCount := 1
			if tc.mode == policymgr.RejectedIgnore {
				wantCount = 0
			}
			assert.Equal(t, wantCount, st[0].Endpoints)
			if tc.selectedBy != nil {
				view, ok := m.EndpointPolicy(1)
				require.True(t, ok)
				assert.Equal(t, tc.selectedBy, view.SelectedBy)
			}

			// Fixed: the accepted version replaces the fallback.
			m.SetObjects([]source.Raw{snp("p", `{"endpointSelector":{"matchLabels":{"app":"web"}},"ingress":[{"fromEntities":["all"]}]}`)})
			_, err = m.Sync(false)
			require.NoError(t, err)
			assert.Equal(t, policymap.Config{IngressEnforced: true}, dp.cfg[1])
			assert.Len(t, dp.entries[1], 1)
			st = m.Status()
			assert.True(t, st[0].Accepted)
			assert.Empty(t, st[0].DefaultDeny)
			assert.Equal(t, "accepted", st[0].Message)

			// Rejected again, then deleted: nothing stays.
			m.SetObjects([]source.Raw{rejected})
			_, err = m.Sync(false)
			require.NoError(t, err)
			assert.Equal(t, policymap.Config{IngressEnforced: tc.in, EgressEnforced: tc.eg}, dp.cfg[1])
			m.SetObjects(nil)
			_, err = m.Sync(false)
			require.NoError(t, err)
			assert.Equal(t, policymap.Config{}, dp.cfg[1])
			assert.Empty(t, m.Status())
		})
	}
}

func TestParseRejectedMode(t *testing.T) {
	for in, want := range map[string]policymgr.RejectedMode{"": policymgr.RejectedDeny, "deny": policymgr.RejectedDeny, "ignore": policymgr.RejectedIgnore} {
		got, err := policymgr.ParseRejectedMode(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := policymgr.ParseRejectedMode("allow")
	assert.ErrorContains(t, err, `rejected policy mode "allow": want deny or ignore`)
}
