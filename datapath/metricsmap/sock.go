package metricsmap

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// SockMap is the socket-LB counters map of a loaded datapath.
type SockMap struct{ m *ebpf.Map }

// NewSock returns the handle of sluice_sock_metrics_v1.
func NewSock(m *ebpf.Map) *SockMap { return &SockMap{m: m} }

// SockReason says why a socket hook acted (mirrors enum sluice_sock_reason).
type SockReason uint32

// Socket-LB counter reasons.
const (
	SockConnectTranslated = SockReason(bpfgen.SockSluiceSockReasonSOCK_CONNECT_XLATED)
	SockSendmsgTranslated = SockReason(bpfgen.SockSluiceSockReasonSOCK_SENDMSG_XLATED)
	SockRevTranslated     = SockReason(bpfgen.SockSluiceSockReasonSOCK_REV_XLATED)
	SockNoBackend         = SockReason(bpfgen.SockSluiceSockReasonSOCK_NO_BACKEND)
)

var sockReasonNames = map[SockReason]string{
	SockConnectTranslated: "connect-translated",
	SockSendmsgTranslated: "sendmsg-translated",
	SockRevTranslated:     "reverse-translated",
	SockNoBackend:         "refused-no-backend",
}

func (r SockReason) String() string {
	if s, ok := sockReasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("sock-reason-%d", uint32(r))
}

// Counters reads sluice_sock_metrics_v1, summed over CPUs (zero counts
// left out).
func (m *SockMap) Counters() (map[SockReason]uint64, error) {
	out := make(map[SockReason]uint64)
	var vals []uint64
	for r := range sockReasonNames {
		key := uint32(r)
		if err := m.m.Lookup(&key, &vals); err != nil {
			return nil, fmt.Errorf("read sluice_sock_metrics_v1: %w", err)
		}
		if sum := maputil.SumPerCPU(vals); sum != 0 {
			out[r] = sum
		}
	}
	return out, nil
}
