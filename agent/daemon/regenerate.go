package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
)

// regenerateTimeout bounds the synchronous identity and policy computation
// of a new endpoint.
const regenerateTimeout = 20 * time.Second

// regeneratingEndpoints answers an endpoint PUT only once the endpoint's
// identity, the IP cache and its policy maps are in the kernel, so that no
// pod ever sends or receives a packet before its policy is enforced (the
// CNI's ADD waits for this answer). A failure fails the PUT, and the CNI
// plugin then removes the endpoint again: fail closed.
//
// In Kubernetes mode the pod's labels must be known: the Pod is looked up
// first (lookupPod), and the answer requires that the identity was
// computed with it (requirePodKnown).
type regeneratingEndpoints struct {
	*endpointmgr.Manager
	d *Daemon
}

func (r regeneratingEndpoints) Put(ep api.Endpoint) (api.Endpoint, error) {
	pod, ns, err := r.d.lookupPod(ep)
	if err != nil {
		return api.Endpoint{}, err
	}
	out, err := r.Manager.Put(ep)
	if err != nil {
		return out, err
	}
	if pod != nil {
		r.d.ids.AddPod(pod, ns)
	}
	if err := r.d.regenerate(); err != nil {
		return out, fmt.Errorf("endpoint %s stored, but its identity and policy are not in place: %w", ep.Key(), err)
	}
	if err := r.d.requirePodKnown(out); err != nil {
		return out, err
	}
	return out, nil
}

// regenerate runs one identity sync, IP cache mirror and policy sync now,
// and refreshes the node addresses (the CNI has just put the gateway address
// on the pod's host veth: NodePort through it must work at once). With a
// state source it first waits for the source's first snapshot: before it
// the pod's labels and the policies are unknown, and answering would let
// the pod run without its policy.
func (d *Daemon) regenerate() error {
	ctx, cancel := context.WithTimeout(context.Background(), regenerateTimeout)
	defer cancel()
	if err := d.waitSourceLoops(ctx); err != nil {
		return err
	}
	if err := d.syncNodeAddrs(); err != nil {
		return err
	}
	if err := d.ids.Sync(ctx); err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	if _, err := d.ids.Mirror(); err != nil {
		return fmt.Errorf("ip cache: %w", err)
	}
	if _, err := d.pols.Sync(false); err != nil {
		return fmt.Errorf("policy maps: %w", err)
	}
	return nil
}

// PutEndpoint registers an endpoint exactly as the API's PUT does: it
// returns once the endpoint's identity and policy are in the kernel.
func (d *Daemon) PutEndpoint(ep api.Endpoint) (api.Endpoint, error) {
	return regeneratingEndpoints{d.eps, d}.Put(ep)
}
