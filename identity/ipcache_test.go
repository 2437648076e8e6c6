package identity

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func TestIPCacheLongestPrefix(t *testing.T) {
	c := NewIPCache()
	for _, e := range []struct {
		p  string
		id NumericIdentity
	}{
		{"10.0.0.0/8", LocalScope | 1},
		{"10.1.0.0/16", LocalScope | 2},
		{"10.1.2.3/32", 300},
		{"0.0.0.0/0", ReservedWorldV4},
		{"2001:db8::/32", LocalScope | 3},
		{"2001:db8::1/128", 301},
	} {
		changed, err := c.Upsert(pfx(e.p), e.id, SourceLocal)
		require.NoError(t, err)
		assert.True(t, changed)
	}
	for _, tc := range []struct {
		a    string
		want NumericIdentity
	}{
		{"10.1.2.3", 300},
		{"10.1.2.4", LocalScope | 2},
		{"10.2.0.0", LocalScope | 1},
		{"10.255.255.255", LocalScope | 1},
		{"11.0.0.0", ReservedWorldV4},
		{"::ffff:10.1.2.3", 300},
		{"2001:db8::1", 301},
		{"2001:db8::2", LocalScope | 3},
		{"2001:db9::", ReservedWorld}, // no ::/0 entry: world default
	} {
		assert.Equal(t, tc.want, c.Lookup(addr(tc.a)), tc.a)
	}
	// Unmasked and 4in6 prefixes are canonicalised.
	changed, err := c.Upsert(pfx("10.1.2.99/16"), 7, SourceLocal)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, NumericIdentity(7), c.Lookup(addr("10.1.9.9")))
	p, _, ok := c.LookupPrefix(addr("10.1.9.9"))
	require.True(t, ok)
	assert.Equal(t, pfx("10.1.0.0/16"), p)
	_, err = c.Upsert(pfx("::ffff:10.9.0.0/112"), 8, SourceLocal)
	require.NoError(t, err)
	assert.Equal(t, NumericIdentity(8), c.Lookup(addr("10.9.1.1")))

	changed, err = c.Delete(pfx("10.1.2.3/32"), SourceLocal)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, NumericIdentity(7), c.Lookup(addr("10.1.2.3")))
	changed, err = c.Delete(pfx("10.1.2.3/32"), SourceLocal)
	require.NoError(t, err)
	assert.False(t, changed)
	_, err = c.Upsert(netip.Prefix{}, 1, SourceLocal)
	assert.Error(t, err)
}

func TestIPCacheSourcePrecedence(t *testing.T) {
	c := NewIPCache()
	p := pfx("10.0.0.5/32")
	var got []Change
	unsub := c.Subscribe(func(ch Change) { got = append(got, ch) })

	_, err := c.Upsert(p, 300, SourceKubernetes)
	require.NoError(t, err)
	changed, err := c.Upsert(p, 400, SourceLocal)
	require.NoError(t, err)
	assert.True(t, changed)
	// A lower source does not override.
	changed, err = c.Upsert(p, 500, SourceGenerated)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, NumericIdentity(400), c.Lookup(p.Addr()))
	// Deleting the effective source uncovers the next one.
	changed, err = c.Delete(p, SourceLocal)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, NumericIdentity(300), c.Lookup(p.Addr()))
	_, err = c.Delete(p, SourceKubernetes)
	require.NoError(t, err)
	_, err = c.Delete(p, SourceGenerated)
	require.NoError(t, err)
	assert.Equal(t, ReservedWorld, c.Lookup(p.Addr()))

	assert.Equal(t, []Change{
		{Prefix: p, New: Entry{300, SourceKubernetes}},
		{Prefix: p, Old: Entry{300, SourceKubernetes}, New: Entry{400, SourceLocal}},
		{Prefix: p, Old: Entry{400, SourceLocal}, New: Entry{300, SourceKubernetes}},
		{Prefix: p, Old: Entry{300, SourceKubernetes}, New: Entry{500, SourceGenerated}},
		{Prefix: p, Old: Entry{500, SourceGenerated}, Deleted: true},
	}, got)
	unsub()
	_, err = c.Upsert(p, 1, SourceAgent)
	require.NoError(t, err)
	assert.Len(t, got, 5)
}

func TestIPCacheSubscribeReplaysAndDiff(t *testing.T) {
	c := NewIPCache()
	_, _ = c.Upsert(pfx("10.0.0.1/32"), 300, SourceLocal)
	_, _ = c.Upsert(pfx("10.0.0.2/32"), 301, SourceLocal)
	old := c.Snapshot()

	// A subscriber's mirror equals the snapshot at every point.
	mirror := map[netip.Prefix]Entry{}
	c.Subscribe(func(ch Change) {
		if ch.Deleted {
			delete(mirror, ch.Prefix)
		} else {
			mirror[ch.Prefix] = ch.New
		}
	})
	assert.Equal(t, old, mirror)
	_, _ = c.Upsert(pfx("10.0.0.2/32"), 302, SourceLocal)
	_, _ = c.Upsert(pfx("10.0.1.0/24"), LocalScope|1, SourceGenerated)
	_, _ = c.Delete(pfx("10.0.0.1/32"), SourceLocal)
	cur := c.Snapshot()
	assert.Equal(t, cur, mirror)

	assert.Equal(t, []Change{
		{Prefix: pfx("10.0.0.1/32"), Old: Entry{300, SourceLocal}, Deleted: true},
		{Prefix: pfx("10.0.0.2/32"), Old: Entry{301, SourceLocal}, New: Entry{302, SourceLocal}},
		{Prefix: pfx("10.0.1.0/24"), New: Entry{LocalScope | 1, SourceGenerated}},
	}, DiffSnapshots(old, cur))
	assert.Empty(t, DiffSnapshots(cur, cur))
}
