package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// registerPolicyRoutes adds the policy and identity routes to mux.
func (d *Daemon) registerPolicyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/policy/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.pols.Status())
	})
	mux.HandleFunc("GET /v1/policy/endpoint/{containerID}/{ifName}", func(w http.ResponseWriter, r *http.Request) {
		cid, ifn := r.PathValue("containerID"), r.PathValue("ifName")
		ep, err := d.eps.Get(cid, ifn)
		if errors.Is(err, endpointmgr.ErrNotFound) {
			writeJSON(w, http.StatusNotFound, api.Error{Error: err.Error()})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, api.Error{Error: err.Error()})
			return
		}
		out, ok := d.pols.EndpointPolicy(ep.ID)
		if !ok {
			writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: fmt.Sprintf("endpoint %s/%s has no resolved policy yet", cid, ifn)})
			return
		}
		out.ContainerID, out.IfName = ep.ContainerID, ep.IfName
		if ep.PodName != "" {
			out.Pod = ep.PodNamespace + "/" + ep.PodName
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/identities", func(w http.ResponseWriter, _ *http.Request) {
		ids := d.ids.Identities()
		out := make([]api.Identity, 0, len(ids))
		for _, i := range ids {
			ai := api.Identity{ID: uint32(i.ID), Labels: labelStrings(i.Labels), Refs: i.Refs}
			if i.ID.IsReserved() {
				ai.Name = i.ID.String()
			}
			out = append(out, ai)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func labelStrings(ls identity.Labels) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.String())
	}
	return out
}

// flowNames resolves flow event numbers for the flow observer.
type flowNames struct{ d *Daemon }

func (n flowNames) EndpointPod(epID uint16) string {
	ei, ok := n.d.ids.Endpoints()[epID]
	if !ok || ei.Endpoint.PodName == "" {
		return ""
	}
	return ei.PodNamespace + "/" + ei.Endpoint.PodName
}

func (n flowNames) PodByIP(addr netip.Addr) string {
	p, ok := n.d.ids.PodByIP(addr)
	if !ok || p.Name == "" {
		return ""
	}
	return p.Namespace + "/" + p.Name
}

func (n flowNames) IdentityLabels(id uint32) []string {
	ls, ok := n.d.ids.Allocator().Lookup(identity.NumericIdentity(id))
	if !ok {
		return nil
	}
	return labelStrings(ls)
}

func (n flowNames) Rule(id uint32) (policy.RuleRef, bool) { return n.d.pols.Rules().Lookup(id) }

func (n flowNames) FormatRule(r policy.RuleRef) string { return policymgr.FormatRule(r) }

// hostAddrs lists the IPv4 addresses of the agent's network namespace: they
// are reserved:host in the IP cache.
func hostAddrs() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && !ip.IsLoopback() {
			out = append(out, ip)
		}
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
