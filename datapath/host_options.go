package datapath

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// HostOptions are load-time knobs of the host device programs (volatile
// const globals in bpf/lib/snat.h). Zero values keep the C defaults.
type HostOptions struct {
	// SNATAddr is the node IPv4 address NodePort/ExternalIP flows to remote
	// backends are source-NATed to. Unset: such flows are dropped
	// (drop-nat-no-port); local backends work without it.
	SNATAddr netip.Addr
	// SNATPortMin and SNATPortMax bound the SNAT source ports (default
	// 61000-65535, above Linux's ephemeral port range).
	SNATPortMin, SNATPortMax uint16
}

func (o HostOptions) apply(spec *ebpf.CollectionSpec) error {
	set := func(name string, v any) error {
		sv, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("program knob %s missing", name)
		}
		if err := sv.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	if o.SNATAddr.IsValid() {
		if err := checkV4("SNAT", o.SNATAddr); err != nil {
			return err
		}
		if err := set("snat_ipv4", be32(o.SNATAddr)); err != nil {
			return err
		}
	}
	if o.SNATPortMin != 0 || o.SNATPortMax != 0 {
		if o.SNATPortMin == 0 || o.SNATPortMax < o.SNATPortMin {
			return fmt.Errorf("SNAT port range %d-%d is invalid", o.SNATPortMin, o.SNATPortMax)
		}
		if err := set("snat_port_min", o.SNATPortMin); err != nil {
			return err
		}
		if err := set("snat_port_max", o.SNATPortMax); err != nil {
			return err
		}
	}
	return nil
}
