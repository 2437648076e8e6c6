package datapath

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

func TestCheckConnectRules(t *testing.T) {
	deny := func(r ConnectRule) ConnectRule {
		r.Action = procsensor.ConnectDeny
		return r
	}
	p := netip.MustParsePrefix
	for _, c := range []struct {
		name string
		r    []ConnectRule
		err  string
	}{
		{"slot", []ConnectRule{deny(ConnectRule{Slot: 64})}, "connect rule slot 64: beyond 64 slots"},
		{"twice", []ConnectRule{deny(ConnectRule{Slot: 1}), deny(ConnectRule{Slot: 1})}, "connect rule slot 1: given twice"},
		{"ipv6", []ConnectRule{deny(ConnectRule{Dests: []netip.Prefix{p("fd00::/64")}})}, "destination fd00::/64: not an IPv4 prefix"},
		{"invalid prefix", []ConnectRule{deny(ConnectRule{Dests: []netip.Prefix{{}}})}, "not an IPv4 prefix"},
		{"not dests", []ConnectRule{deny(ConnectRule{NotDests: true})}, "NotDests without destinations"},
		{"port 0", []ConnectRule{deny(ConnectRule{Ports: []uint16{80, 0}})}, "port 0"},
		{"not ports", []ConnectRule{deny(ConnectRule{NotPorts: true})}, "NotPorts without ports"},
		{"protocol", []ConnectRule{deny(ConnectRule{Protocol: 1})}, "protocol 1: not TCP (6), UDP (17) or any (0)"},
		{"classes", []ConnectRule{deny(ConnectRule{Binary: procsensor.ClassFilter{All: 3, None: 2}})}, "requires and excludes the same class"},
		{"parent classes", []ConnectRule{deny(ConnectRule{Parent: procsensor.ClassFilter{All: 1, None: 1}})}, "requires and excludes"},
		{"signal", []ConnectRule{{Action: procsensor.ExecSignal}}, "signal 0: not 1..64"},
		{"action", []ConnectRule{{Action: 9}}, "unknown action 9"},
	} {
		_, err := checkConnectRules(c.r)
		assert.ErrorContains(t, err, c.err, c.name)
	}

	got, err := checkConnectRules([]ConnectRule{
		{Slot: 2, Group: 1 << 5, Action: procsensor.ExecSigkill, Dests: []netip.Prefix{p("10.1.2.3/8")}},
		{Slot: 3, Action: procsensor.ConnectDeny, Signal: 4},
	})
	require.NoError(t, err)
	assert.Equal(t, uint8(9), got[2].Signal, "Sigkill's signal")
	assert.Equal(t, uint64(1<<5|1<<2), got[2].Group, "the group holds its slot")
	assert.Equal(t, []netip.Prefix{p("10.0.0.0/8")}, got[2].Dests, "masked")
	assert.Zero(t, got[3].Signal)
}

// A prefix carries the slots of the prefixes containing it; limits count
// distinct entries.
func TestConnectEntries(t *testing.T) {
	p := netip.MustParsePrefix
	dests, ports, err := connectEntries(map[uint8]ConnectRule{
		0: {Dests: []netip.Prefix{p("10.0.0.0/8")}, Ports: []uint16{80}},
		1: {Dests: []netip.Prefix{p("10.1.0.0/16"), p("192.168.0.0/16")}, Ports: []uint16{80, 443}},
		2: {Dests: []netip.Prefix{p("10.1.2.0/24"), p("10.0.0.0/8")}},
	})
	require.NoError(t, err)
	assert.Equal(t, map[netip.Prefix]uint64{p("10.0.0.0/8"): 0b101, p("10.1.0.0/16"): 0b111, p("10.1.2.0/24"): 0b111,
		p("192.168.0.0/16"): 0b010}, dests)
	assert.Equal(t, map[uint16]uint64{80: 0b011, 443: 0b010}, ports)

	many := ConnectRule{}
	for i := 0; i <= MaxConnectPorts; i++ {
		many.Ports = append(many.Ports, uint16(i+1))
	}
	_, _, err = connectEntries(map[uint8]ConnectRule{0: many})
	assert.ErrorContains(t, err, "1025 distinct ports, more than 1024")
}

// A slot whose entries, filter masks or class filters change counts as
// changed; one whose action or mode changes does not.
func TestConnectFiltersChanged(t *testing.T) {
	p := netip.MustParsePrefix
	old := map[uint8]ConnectRule{
		0: {Slot: 0, Group: 1, Dests: []netip.Prefix{p("10.0.0.0/8")}, Action: procsensor.ConnectDeny},
		1: {Slot: 1, Group: 2, Ports: []uint16{80}, Action: procsensor.ExecPost},
		2: {Slot: 2, Group: 4, Binary: procsensor.ClassFilter{All: 1}, Action: procsensor.ExecPost},
		3: {Slot: 3, Group: 8, Action: procsensor.ExecPost},
	}
	next := map[uint8]ConnectRule{
		0: {Slot: 0, Group: 1, Dests: []netip.Prefix{p("10.0.0.0/8")}, Action: procsensor.ExecPost, Enforce: true},
		1: {Slot: 1, Group: 2, Ports: []uint16{80}, NotPorts: true, Action: procsensor.ExecPost},
		2: {Slot: 2, Group: 4, Binary: procsensor.ClassFilter{All: 2}, Action: procsensor.ExecPost},
	}
	st, want := stateOf(t, old), stateOf(t, next)
	assert.Equal(t, uint64(0b1110), filtersChanged(st, want.cfg, want.slots, want.dests, want.ports))
	assert.Zero(t, filtersChanged(st, st.cfg, st.slots, st.dests, st.ports), "the same rules")

	// Another slot's prefix inside a kept slot's (a new trie entry that
	// carries the kept slot) changes only that slot; so does a prefix
	// inside another of the same slot, which matches nothing more.
	nested := map[uint8]ConnectRule{}
	for slot, r := range old {
		nested[slot] = r
	}
	nested[3] = ConnectRule{Slot: 3, Group: 8, Dests: []netip.Prefix{p("10.1.0.0/16")}, Action: procsensor.ExecPost}
	nested[0] = ConnectRule{Slot: 0, Group: 1, Dests: []netip.Prefix{p("10.0.0.0/8"), p("10.2.0.0/16")}, Action: procsensor.ConnectDeny}
	want = stateOf(t, nested)
	assert.Equal(t, uint64(0b1000), filtersChanged(st, want.cfg, want.slots, want.dests, want.ports))
	assert.Equal(t, map[netip.Prefix]uint64{p("10.0.0.0/8"): 1, p("10.1.0.0/16"): 0b1000}, ownPrefixes(want.dests))
}

// Each mask is compared on its own: a slot that goes inactive is changed
// even when its other masks are equal (| and ^ share Go's precedence).
func TestFiltersChangedMasks(t *testing.T) {
	old := &connectState{cfg: bpfgen.SockConnectConfig{Active: 0b11, Dests: 0b01, Ports: 0b10}}
	cfg := bpfgen.SockConnectConfig{Active: 0b10, Dests: 0b01, Ports: 0b10}
	assert.Equal(t, uint64(0b01), filtersChanged(old, cfg, nil, nil, nil), "slot 0 went inactive")
	cfg = bpfgen.SockConnectConfig{Active: 0b11, Dests: 0b01, NotDests: 0b10, Ports: 0b10}
	assert.Equal(t, uint64(0b10), filtersChanged(old, cfg, nil, nil, nil), "slot 1's NotDests")
	cfg = bpfgen.SockConnectConfig{Active: 0b11, Dests: 0b01, Ports: 0b10, Classes: 0b01}
	assert.Equal(t, uint64(0b01), filtersChanged(old, cfg, nil, nil, nil), "slot 0's classes")
}

// stateOf is what the maps hold for rules.
func stateOf(t *testing.T, rules map[uint8]ConnectRule) *connectState {
	t.Helper()
	st := &connectState{slots: map[uint8]bpfgen.SockConnectSlot{}}
	for slot, r := range rules {
		st.slots[slot] = connectSlotValue(r)
		addConnectMasks(&st.cfg, r)
	}
	var err error
	st.dests, st.ports, err = connectEntries(rules)
	require.NoError(t, err)
	return st
}
