package datapath

import (
	"fmt"
	"math"
	"time"

	"github.com/cilium/ebpf"
)

// Options are load-time knobs of the programs (volatile const globals). Zero
// values keep the defaults compiled into the C.
type Options struct {
	CTLifetimeTCP        time.Duration // established TCP flow (default 6h)
	CTLifetimeTCPSyn     time.Duration // TCP flow before its first reply (default 60s)
	CTLifetimeTCPClosing time.Duration // after RST, or FIN both ways (default 10s)
	CTLifetimeNonTCP     time.Duration // UDP flow (default 60s)
}

func (o Options) apply(spec *ebpf.CollectionSpec) error {
	knobs := []struct {
		name string
		d    time.Duration
	}{
		{"ct_lifetime_tcp", o.CTLifetimeTCP},
		{"ct_lifetime_tcp_syn", o.CTLifetimeTCPSyn},
		{"ct_lifetime_tcp_closing", o.CTLifetimeTCPClosing},
		{"ct_lifetime_nontcp", o.CTLifetimeNonTCP},
	}
	for _, k := range knobs {
		if k.d == 0 {
			continue
		}
		secs := (k.d + time.Second - 1) / time.Second
		if k.d < 0 || secs > math.MaxUint32 {
			return fmt.Errorf("%s: %v out of range", k.name, k.d)
		}
		v, ok := spec.Variables[k.name]
		if !ok {
			return fmt.Errorf("program knob %s missing", k.name)
		}
		if err := v.Set(uint32(secs)); err != nil {
			return fmt.Errorf("set %s: %w", k.name, err)
		}
	}
	return nil
}
