package daemon

import (
	"errors"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath"
)

// tracingRules counts the entries of the tracing rule maps: the sensor's
// exec, syscall and binary class maps and, with the socket LB, the connect
// rule maps (GET /v1/tracingrules).
type tracingRules struct{ d *Daemon }

func (t tracingRules) RuleEntries() (api.TracingRuleEntries, error) {
	s := t.d.proc.sensor
	out := api.TracingRuleEntries{}
	ex, err := s.ExecEntries()
	if err != nil {
		return nil, err
	}
	sy, err := s.SyscallEntries()
	if err != nil {
		return nil, err
	}
	cl, err := s.ClassEntries()
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]int{
		"exec.slots": ex.Slots, "exec.exact": ex.Exact, "exec.prefix": ex.Prefix, "exec.scope": ex.Scope,
		"exec.cgscope": ex.CgroupScope, "exec.follow": ex.Follow,
		"syscall.slots": sy.Slots, "syscall.nrs": sy.Nrs, "syscall.strings": sy.Strings, "syscall.postfixes": sy.Postfixes,
		"syscall.scope": sy.Scope, "syscall.cgscope": sy.CgroupScope, "syscall.follow": sy.Follow, "syscall.rate": sy.Rate,
		"class.exact": cl.Exact, "class.prefix": cl.Prefix, "class.procs": cl.Procs,
	} {
		out[k] = v
	}
	if !t.d.cfg.SocketLB {
		return out, nil
	}
	co, err := t.d.dp.ConnectEntries()
	if errors.Is(err, datapath.ErrConnectRulesOff) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out["connect.slots"], out["connect.dests"], out["connect.ports"], out["connect.scope"] = co.Slots, co.Dests, co.Ports, co.Scope
	out["connect.cgscope"] = co.CgroupScope
	return out, nil
}
