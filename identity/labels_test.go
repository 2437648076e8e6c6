package identity

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLabel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Label
	}{
		{"k8s:app=web", Label{"k8s", "app", "web"}},
		{"app=web", Label{SourceAny, "app", "web"}},
		{"reserved:host", Label{"reserved", "host", ""}},
		{"cidr:10.0.0.0/8", Label{"cidr", "10.0.0.0/8", ""}},
		{"cidr:2001:db8::/32", Label{"cidr", "2001:db8::/32", ""}},
		{"k8s:io.kubernetes.pod.namespace=x", Label{"k8s", PodNamespaceLabel, "x"}},
		{"a=b:c", Label{SourceAny, "a", "b:c"}},
	} {
		got := ParseLabel(tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		if tc.want.Source != SourceAny {
			assert.Equal(t, tc.in, got.String())
		}
	}
}

func TestLabelsCanonical(t *testing.T) {
	a := NewLabels(ParseLabel("k8s:b=2"), ParseLabel("k8s:a=1"), ParseLabel("k8s:b=2"), ParseLabel("cidr:10.0.0.0/8"))
	b := ParseLabels("k8s:a=1;cidr:10.0.0.0/8", "k8s:b=2")
	assert.Equal(t, "cidr:10.0.0.0/8;k8s:a=1;k8s:b=2", a.String())
	assert.True(t, a.Equal(b))
	assert.True(t, ParseLabels(a.String()).Equal(a))
	assert.True(t, a.Has(ParseLabel("a=1")))
	assert.False(t, a.Has(ParseLabel("reserved:a=1")))
	assert.False(t, a.Equal(ParseLabels("k8s:a=1")))
}

func TestPodLabels(t *testing.T) {
	ls := PodLabels("x", map[string]string{"pod": "a"}, map[string]string{"ns": "x"})
	assert.Equal(t, "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=x;"+
		"k8s:io.cilium.k8s.namespace.labels.ns=x;k8s:io.kubernetes.pod.namespace=x;k8s:pod=a", ls.String())
	ns, ok := ls.Namespace()
	require.True(t, ok)
	assert.Equal(t, "x", ns)
	// An explicit metadata.name label is kept, not duplicated.
	ls = PodLabels("y", nil, map[string]string{NamespaceNameLabel: "y"})
	assert.Len(t, ls, 2)
}

func TestCIDRLabels(t *testing.T) {
	ls := CIDRLabels(netip.MustParsePrefix("10.1.2.3/8"))
	assert.Equal(t, "cidr:10.0.0.0/8;reserved:world", ls.String())
	p, ok := ls.CIDRPrefix()
	require.True(t, ok)
	assert.Equal(t, netip.MustParsePrefix("10.0.0.0/8"), p)
	p6, ok := CIDRLabels(netip.MustParsePrefix("2001:db8::1/32")).CIDRPrefix()
	require.True(t, ok)
	assert.Equal(t, "2001:db8::/32", p6.String())
}

func TestReserved(t *testing.T) {
	want := map[string]NumericIdentity{"host": 1, "world": 2, "unmanaged": 3, "health": 4, "init": 5,
		"remote-node": 6, "kube-apiserver": 7, "world-ipv4": 9, "world-ipv6": 10}
	for name, id := range want {
		got, ok := ReservedByName(name)
		require.True(t, ok, name)
		assert.Equal(t, id, got, name)
		assert.Equal(t, "reserved:"+name, ReservedLabels(id).String())
		assert.Equal(t, name, id.String())
		assert.True(t, id.IsReserved())
	}
	assert.Len(t, ReservedIdentities(), len(want))
	assert.False(t, NumericIdentity(8).IsReserved())
	assert.Equal(t, "256", NumericIdentity(256).String())
	assert.True(t, (LocalScope | 5).IsLocal())
}
