package procsensor

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/bpfgen"
)

// The offsets of decode_connect.go are those of the bpf2go mirror of
// bpf/lib/connect_rules.h's event.
func TestDecodeConnectRuleOffsets(t *testing.T) {
	var e bpfgen.SockProcessConnectRule
	for _, o := range []struct {
		name      string
		got, want uintptr
	}{
		{"hdr", unsafe.Offsetof(e.PolicyId), hdrSize},
		{"policy_id", unsafe.Offsetof(e.PolicyId), offRulePolicyID},
		{"slot", unsafe.Offsetof(e.Slot), offRulePolicyID + 4},
		{"action", unsafe.Offsetof(e.Action), offRulePolicyID + 5},
		{"signal", unsafe.Offsetof(e.Signal), offRulePolicyID + 6},
		{"enforced", unsafe.Offsetof(e.Enforced), offRulePolicyID + 7},
		{"proto", unsafe.Offsetof(e.Proto), offRuleProto},
		{"dport", unsafe.Offsetof(e.Dport), offRuleDport},
		{"daddr", unsafe.Offsetof(e.Daddr), offRuleDaddr},
		{"backend_addr", unsafe.Offsetof(e.BackendAddr), offRuleBackend},
		{"backend_port", unsafe.Offsetof(e.BackendPort), offRuleBackend + 4},
		{"net_ns", unsafe.Offsetof(e.NetNs), offRuleNetNS},
		{"size", unsafe.Sizeof(e), connectRuleSize},
	} {
		assert.Equal(t, o.want, o.got, o.name)
	}
}

// A connect rule event decodes through the sensor's dispatch, the backend
// zero when the socket LB did not translate.
func TestDecodeConnectRule(t *testing.T) {
	b := make([]byte, connectRuleSize)
	b[offType] = byte(bpfgen.ProcessProcessEventTypePROCESS_CONNECT_RULE)
	le.PutUint32(b[offPID:], 101)
	le.PutUint64(b[offKtime:], uint64(time.Second))
	le.PutUint32(b[offKey:], 100)
	le.PutUint64(b[offKey+8:], 12345)
	le.PutUint32(b[offRulePolicyID:], 7)
	copy(b[offRulePolicyID+4:], []byte{3, byte(ConnectDeny), 0, 1})
	b[offRuleProto] = 6
	binary.BigEndian.PutUint16(b[offRuleDport:], 80)
	copy(b[offRuleDaddr:], []byte{10, 96, 0, 10})
	le.PutUint32(b[offRuleNetNS:], 4026531840)
	boot := time.Unix(1000, 0)

	ev, err := decode(b, boot)
	require.NoError(t, err)
	want := ConnectEnforcement{Time: boot.Add(time.Second), Key: Key{TGID: 100, StartTime: 12345}, PID: 101, PolicyID: 7,
		Slot: 3, Action: ConnectDeny, Enforced: true, Proto: 6, Dst: netip.MustParseAddrPort("10.96.0.10:80"), NetNS: 4026531840}
	require.NotNil(t, ev.ConnectRule)
	assert.Equal(t, want, *ev.ConnectRule)

	copy(b[offRuleBackend:], []byte{10, 244, 250, 1})
	binary.BigEndian.PutUint16(b[offRuleBackend+4:], 8080)
	ev, err = decode(b, boot)
	require.NoError(t, err)
	assert.Equal(t, netip.MustParseAddrPort("10.244.250.1:8080"), ev.ConnectRule.Backend)

	_, err = decode(b[:connectRuleSize-1], boot)
	assert.Error(t, err, "short event")
}
