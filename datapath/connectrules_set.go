package datapath

import (
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// Connect rule maps (bpf/lib/connect_rules.h), pinned by name when
// Options.ProcessEvents is on.
const (
	connectConfigMap = bpfgen.SockMapSluiceConnectConfigV2
	connectSlotsMap  = bpfgen.SockMapSluiceConnectSlotsV1
	connectDestsMap  = bpfgen.SockMapSluiceConnectDestsV1
	connectPortsMap  = bpfgen.SockMapSluiceConnectPortsV1
	connectScopeMap  = bpfgen.SockMapSluiceConnectScopeV1
	connectCgMap     = bpfgen.SockMapSluiceConnectCgscopeV1
)

// Limits of the connect rule maps, over all rules: distinct destination
// prefixes and distinct ports.
const (
	MaxConnectDests = 4096
	MaxConnectPorts = 1024
)

// ErrConnectRulesOff is returned by the connect rule methods of a Datapath
// loaded without Options.ProcessEvents (the hooks have no rule code then).
var ErrConnectRulesOff = errors.New("connect rules need the process sensor's socket hooks (datapath.Options.ProcessEvents)")

// connectState is what the connect rule maps hold (read back from the
// pinned maps on first use, so rules an agent left survive its restart),
// so SetConnectRules writes only what changed and removes only what is
// stale.
type connectState struct {
	mu      sync.Mutex
	enabled bool
	adopted bool
	slots   map[uint8]bpfgen.SockConnectSlot
	cfg     bpfgen.SockConnectConfig
	dests   map[netip.Prefix]uint64
	ports   map[uint16]uint64
}

// SetConnectRules replaces the whole connect rule set. Slots whose filters
// change (or go) are made inactive first; then new and changed destination
// and port entries are written, then the slots, then the masks that make
// them active, and stale entries are removed last: a rule kept from the
// previous set (same slot, same filters; its action, mode, group, scope or
// protocol may change) matches at every moment, also across an agent
// restart, and a changed rule is never a mix of old and new filters. On
// error the maps hold a mix of the sets, with the changed slots inactive;
// calling again with either converges.
func (d *Datapath) SetConnectRules(rules []ConnectRule) error {
	byslot, err := checkConnectRules(rules)
	if err != nil {
		return err
	}
	dests, ports, err := connectEntries(byslot)
	if err != nil {
		return err
	}
	st := &d.connect
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := d.adoptConnect(); err != nil {
		return err
	}
	m := &d.sock.SockMaps
	var cfg bpfgen.SockConnectConfig
	values := make(map[uint8]bpfgen.SockConnectSlot, len(byslot))
	for slot, r := range byslot {
		values[slot] = connectSlotValue(r)
		addConnectMasks(&cfg, r)
	}
	if changed := filtersChanged(st, cfg, values, dests, ports); st.cfg.Active&changed != 0 {
		cfg := st.cfg
		cfg.Active &^= changed
		if err := d.putConnectConfig(cfg); err != nil {
			return err
		}
	}
	if err := putBits(m.SluiceConnectDestsV1, connectDestsMap, st.dests, dests, destKey); err != nil {
		return err
	}
	if err := putBits(m.SluiceConnectPortsV1, connectPortsMap, st.ports, ports, portKey); err != nil {
		return err
	}
	for _, slot := range slices.Sorted(maps.Keys(values)) {
		v := values[slot]
		if old, ok := st.slots[slot]; !ok || old != v {
			if err := m.SluiceConnectSlotsV1.Put(uint32(slot), v); err != nil {
				return fmt.Errorf("write connect rule slot %d: %w", slot, err)
			}
			st.slots[slot] = v
		}
	}
	if err := d.putConnectConfig(cfg); err != nil {
		return err
	}
	for slot := range st.slots {
		if _, ok := byslot[slot]; ok {
			continue
		}
		if err := m.SluiceConnectSlotsV1.Put(uint32(slot), bpfgen.SockConnectSlot{}); err != nil {
			return fmt.Errorf("clear connect rule slot %d: %w", slot, err)
		}
		delete(st.slots, slot)
	}
	if err := deleteBits(m.SluiceConnectDestsV1, connectDestsMap, st.dests, dests, destKey); err != nil {
		return err
	}
	return deleteBits(m.SluiceConnectPortsV1, connectPortsMap, st.ports, ports, portKey)
}

func (d *Datapath) putConnectConfig(cfg bpfgen.SockConnectConfig) error {
	if err := d.sock.SluiceConnectConfigV2.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("write connect rule config: %w", err)
	}
	d.connect.cfg = cfg
	return nil
}

// filtersChanged returns the slots whose filters differ between the maps
// (st) and the new configuration: in a destination or port entry, in a
// filter mask, or in the slot's class filters. Removed slots are changed.
func filtersChanged(st *connectState, cfg bpfgen.SockConnectConfig, values map[uint8]bpfgen.SockConnectSlot,
	dests map[netip.Prefix]uint64, ports map[uint16]uint64) uint64 {
	changed := maputil.SlotBitsChanged(ownPrefixes(st.dests), ownPrefixes(dests)) | maputil.SlotBitsChanged(st.ports, ports)
	o := st.cfg
	// Parenthesised: | and ^ share Go's precedence.
	changed |= (o.Active &^ cfg.Active) | (o.Dests ^ cfg.Dests) | (o.NotDests ^ cfg.NotDests) | (o.Ports ^ cfg.Ports) |
		(o.NotPorts ^ cfg.NotPorts) | (o.Classes ^ cfg.Classes)
	for slot, v := range values {
		old := st.slots[slot]
		if old.BinAll != v.BinAll || old.BinNone != v.BinNone || old.ParAll != v.ParAll || old.ParNone != v.ParNone {
			changed |= 1 << slot
		}
	}
	return changed
}

// adoptConnect reads the rule maps (a previous agent may have left them
// pinned) into the state once.
func (d *Datapath) adoptConnect() error {
	st := &d.connect
	if !st.enabled {
		return ErrConnectRulesOff
	}
	if st.adopted {
		return nil
	}
	m := &d.sock.SockMaps
	st.slots = map[uint8]bpfgen.SockConnectSlot{}
	st.dests, st.ports = map[netip.Prefix]uint64{}, map[uint16]uint64{}
	if err := m.SluiceConnectConfigV2.Lookup(uint32(0), &st.cfg); err != nil {
		return fmt.Errorf("read %s: %w", connectConfigMap, err)
	}
	var (
		dk bpfgen.SockConnectDestKey
		pk uint32
		v  uint64
	)
	it := m.SluiceConnectDestsV1.Iterate()
	for it.Next(&dk, &v) {
		st.dests[netip.PrefixFrom(maputil.AddrFromBe32(dk.Addr), int(dk.Prefixlen))] = v
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", connectDestsMap, err)
	}
	it = m.SluiceConnectPortsV1.Iterate()
	for it.Next(&pk, &v) {
		st.ports[uint16(pk)] = v
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", connectPortsMap, err)
	}
	for a := st.cfg.Active; a != 0; a &= a - 1 {
		slot := uint8(bits.TrailingZeros64(a))
		var v bpfgen.SockConnectSlot
		if err := m.SluiceConnectSlotsV1.Lookup(uint32(slot), &v); err != nil {
			return fmt.Errorf("read %s: %w", connectSlotsMap, err)
		}
		st.slots[slot] = v
	}
	st.adopted = true
	return nil
}

// checkConnectRules validates rules and returns them by slot, with
// prefixes masked, Group including the slot and Sigkill's signal set.
func checkConnectRules(rules []ConnectRule) (map[uint8]ConnectRule, error) {
	byslot := make(map[uint8]ConnectRule, len(rules))
	for _, r := range rules {
		if r.Slot >= MaxConnectRules {
			return nil, fmt.Errorf("connect rule slot %d: beyond %d slots", r.Slot, MaxConnectRules)
		}
		if _, dup := byslot[r.Slot]; dup {
			return nil, fmt.Errorf("connect rule slot %d: given twice", r.Slot)
		}
		dests := make([]netip.Prefix, 0, len(r.Dests))
		for _, p := range r.Dests {
			if !p.IsValid() || !p.Addr().Is4() {
				return nil, fmt.Errorf("connect rule slot %d: destination %s: not an IPv4 prefix", r.Slot, p)
			}
			dests = append(dests, p.Masked())
		}
		r.Dests = dests
		if r.NotDests && len(r.Dests) == 0 {
			return nil, fmt.Errorf("connect rule slot %d: NotDests without destinations", r.Slot)
		}
		if slices.Contains(r.Ports, 0) {
			return nil, fmt.Errorf("connect rule slot %d: port 0", r.Slot)
		}
		if r.NotPorts && len(r.Ports) == 0 {
			return nil, fmt.Errorf("connect rule slot %d: NotPorts without ports", r.Slot)
		}
		if r.Protocol != 0 && r.Protocol != protoTCP && r.Protocol != protoUDP {
			return nil, fmt.Errorf("connect rule slot %d: protocol %d: not TCP (6), UDP (17) or any (0)", r.Slot, r.Protocol)
		}
		if r.Binary.All&r.Binary.None != 0 || r.Parent.All&r.Parent.None != 0 {
			return nil, fmt.Errorf("connect rule slot %d: a class filter requires and excludes the same class", r.Slot)
		}
		switch r.Action {
		case procsensor.ExecPost, procsensor.ExecNoPost, procsensor.ConnectDeny:
			r.Signal = 0
		case procsensor.ExecSigkill:
			r.Signal = 9
		case procsensor.ExecSignal:
			if r.Signal == 0 || r.Signal > 64 {
				return nil, fmt.Errorf("connect rule slot %d: signal %d: not 1..64", r.Slot, r.Signal)
			}
		default:
			return nil, fmt.Errorf("connect rule slot %d: unknown action %d", r.Slot, r.Action)
		}
		r.Group |= 1 << r.Slot
		byslot[r.Slot] = r
	}
	return byslot, nil
}

const (
	protoTCP = 6
	protoUDP = 17
)

// connectEntries returns the slot bits of each destination prefix and
// port. The trie answers with the longest matching prefix only, so a
// prefix carries the bits of every prefix containing it too.
func connectEntries(byslot map[uint8]ConnectRule) (dests map[netip.Prefix]uint64, ports map[uint16]uint64, err error) {
	own := map[netip.Prefix]uint64{}
	ports = map[uint16]uint64{}
	for slot, r := range byslot {
		for _, p := range r.Dests {
			own[p] |= 1 << slot
		}
		for _, p := range r.Ports {
			ports[p] |= 1 << slot
		}
	}
	if len(own) > MaxConnectDests {
		return nil, nil, fmt.Errorf("connect rules: %d distinct destination prefixes, more than %d", len(own), MaxConnectDests)
	}
	if len(ports) > MaxConnectPorts {
		return nil, nil, fmt.Errorf("connect rules: %d distinct ports, more than %d", len(ports), MaxConnectPorts)
	}
	dests = make(map[netip.Prefix]uint64, len(own))
	for p, b := range own {
		dests[p] = b | covering(own, p)
	}
	return dests, ports, nil
}

// covering returns the bits of the entries of m that strictly contain p.
func covering(m map[netip.Prefix]uint64, p netip.Prefix) uint64 {
	var b uint64
	for l := 0; l < p.Bits(); l++ {
		b |= m[netip.PrefixFrom(p.Addr(), l).Masked()]
	}
	return b
}

// ownPrefixes turns trie entries back into each slot's own prefixes, the
// fewest that cover what it matches (a prefix inside another of its slot
// adds nothing), so two rule sets that match alike compare alike.
func ownPrefixes(dests map[netip.Prefix]uint64) map[netip.Prefix]uint64 {
	own := make(map[netip.Prefix]uint64, len(dests))
	for p, b := range dests {
		if b &^= covering(dests, p); b != 0 {
			own[p] = b
		}
	}
	return own
}

func connectSlotValue(r ConnectRule) bpfgen.SockConnectSlot {
	v := bpfgen.SockConnectSlot{
		PolicyId: r.PolicyID, Action: uint8(r.Action), Signal: r.Signal, Group: r.Group,
		BinAll: r.Binary.All, BinNone: r.Binary.None, ParAll: r.Parent.All, ParNone: r.Parent.None,
	}
	if r.Enforce {
		v.Flags |= uint8(bpfgen.SockConnectSlotFlagCONNECT_ENFORCE)
	}
	return v
}

func addConnectMasks(cfg *bpfgen.SockConnectConfig, r ConnectRule) {
	bit := uint64(1) << r.Slot
	cfg.Active |= bit
	for _, f := range []struct {
		on   bool
		mask *uint64
	}{
		{r.Global, &cfg.Global},
		{r.Cgroup, &cfg.Cgroup},
		{r.Protocol != protoUDP, &cfg.Tcp},
		{r.Protocol != protoTCP, &cfg.Udp},
		{len(r.Dests) > 0, &cfg.Dests},
		{r.NotDests, &cfg.NotDests},
		{len(r.Ports) > 0, &cfg.Ports},
		{r.NotPorts, &cfg.NotPorts},
		{r.Binary != (procsensor.ClassFilter{}) || r.Parent != (procsensor.ClassFilter{}), &cfg.Classes},
	} {
		if f.on {
			*f.mask |= bit
		}
	}
}

func destKey(p netip.Prefix) any {
	return bpfgen.SockConnectDestKey{Prefixlen: uint32(p.Bits()), Addr: maputil.Be32(p.Addr())}
}

func portKey(p uint16) any { return uint32(p) }

// putBits writes the entries of want that cur lacks or holds otherwise.
func putBits[K comparable](m *ebpf.Map, name string, cur, want map[K]uint64, key func(K) any) error {
	for k, v := range want {
		if old, ok := cur[k]; ok && old == v {
			continue
		}
		if err := m.Put(key(k), v); err != nil {
			return maputil.UpdateError(name, err)
		}
		cur[k] = v
	}
	return nil
}

// deleteBits removes the entries of cur that want lacks.
func deleteBits[K comparable](m *ebpf.Map, name string, cur, want map[K]uint64, key func(K) any) error {
	for k := range cur {
		if _, ok := want[k]; ok {
			continue
		}
		if err := maputil.Delete(m, key(k)); err != nil {
			return fmt.Errorf("delete %s entry: %w", name, err)
		}
		delete(cur, k)
	}
	return nil
}

// SetConnectScope makes the connect rule slots in the bit set slots apply
// to the processes of the network namespace with inode netns (a pod's),
// replacing what it had.
func (d *Datapath) SetConnectScope(netns uint32, slots uint64) error {
	if !d.connect.enabled {
		return ErrConnectRulesOff
	}
	if err := d.sock.SluiceConnectScopeV1.Put(netns, slots); err != nil {
		return fmt.Errorf("netns %d: %w", netns, maputil.UpdateError(connectScopeMap, err))
	}
	return nil
}

// DeleteConnectScope removes the scope of a network namespace (no error
// when it had none).
func (d *Datapath) DeleteConnectScope(netns uint32) error {
	if !d.connect.enabled {
		return ErrConnectRulesOff
	}
	if err := maputil.Delete(d.sock.SluiceConnectScopeV1, netns); err != nil {
		return fmt.Errorf("delete connect scope of netns %d: %w", netns, err)
	}
	return nil
}

// SetConnectCgroupScope makes the Cgroup connect rule slots in the bit set
// slots apply to the processes of the cgroup v2 with id cgroup (a
// container's), replacing what it had.
func (d *Datapath) SetConnectCgroupScope(cgroup uint64, slots uint64) error {
	if !d.connect.enabled {
		return ErrConnectRulesOff
	}
	if err := d.sock.SluiceConnectCgscopeV1.Put(cgroup, slots); err != nil {
		return fmt.Errorf("cgroup %d: %w", cgroup, maputil.UpdateError(connectCgMap, err))
	}
	return nil
}

// DeleteConnectCgroupScope removes the scope of a cgroup (no error when it
// had none).
func (d *Datapath) DeleteConnectCgroupScope(cgroup uint64) error {
	if !d.connect.enabled {
		return ErrConnectRulesOff
	}
	if err := maputil.Delete(d.sock.SluiceConnectCgscopeV1, cgroup); err != nil {
		return fmt.Errorf("delete connect scope of cgroup %d: %w", cgroup, err)
	}
	return nil
}

// ConnectCgroupScopes returns the cgroup scopes in the kernel (cgroup id ->
// slots), for an agent to prune those of containers gone while it was down.
func (d *Datapath) ConnectCgroupScopes() (map[uint64]uint64, error) {
	if !d.connect.enabled {
		return nil, ErrConnectRulesOff
	}
	out := map[uint64]uint64{}
	var k, v uint64
	it := d.sock.SluiceConnectCgscopeV1.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", connectCgMap, err)
	}
	return out, nil
}

// ConnectScopes returns the scopes in the kernel (netns inode -> slots),
// for an agent to prune those of pods gone while it was down.
func (d *Datapath) ConnectScopes() (map[uint32]uint64, error) {
	if !d.connect.enabled {
		return nil, ErrConnectRulesOff
	}
	out := map[uint32]uint64{}
	var (
		k uint32
		v uint64
	)
	it := d.sock.SluiceConnectScopeV1.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", connectScopeMap, err)
	}
	return out, nil
}

// ConnectEntries counts the entries of the connect rule maps.
type ConnectEntries struct {
	Slots, Dests, Ports, Scope, CgroupScope int
}

// ConnectEntries returns how many entries each connect rule map holds
// (Slots: the active slots), read from the kernel.
func (d *Datapath) ConnectEntries() (ConnectEntries, error) {
	var out ConnectEntries
	if !d.connect.enabled {
		return out, ErrConnectRulesOff
	}
	m := &d.sock.SockMaps
	var cfg bpfgen.SockConnectConfig
	if err := m.SluiceConnectConfigV2.Lookup(uint32(0), &cfg); err != nil {
		return out, fmt.Errorf("read %s: %w", connectConfigMap, err)
	}
	out.Slots = bits.OnesCount64(cfg.Active)
	for _, c := range []struct {
		m *ebpf.Map
		n *int
	}{{m.SluiceConnectDestsV1, &out.Dests}, {m.SluiceConnectPortsV1, &out.Ports}, {m.SluiceConnectScopeV1, &out.Scope},
		{m.SluiceConnectCgscopeV1, &out.CgroupScope}} {
		var k, v []byte
		it := c.m.Iterate()
		for it.Next(&k, &v) {
			*c.n++
		}
		if err := it.Err(); err != nil {
			return out, fmt.Errorf("count %v: %w", c.m, err)
		}
	}
	return out, nil
}
