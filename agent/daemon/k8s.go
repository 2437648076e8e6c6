package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/source/k8s"
)

// policyStatusInterval is how often the agent compares the policy manager's
// verdicts with the policies' status conditions (a no-op when equal).
const policyStatusInterval = 2 * time.Second

// newK8sSource connects the Kubernetes source (kubeconfig, or in-cluster
// when cfg.Kubeconfig is empty), policies and Sluice CRDs included.
// Nothing is listed before Run.
func (d *Daemon) newK8sSource() (*k8s.Source, error) {
	cs, err := k8s.NewClientset(d.cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	d.k8sClient = cs
	d.k8sEvents = newK8sEvents(cs, d.cfg.NodeName, d.log.WithField("subsys", "k8s-events"))
	dyn, err := k8s.NewDynamicClient(d.cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return k8s.New(k8s.Config{Client: cs, Dynamic: dyn, NodeName: d.cfg.NodeName, Log: d.log.WithField("subsys", "k8s")})
}

// writeConflist runs the Kubernetes-only side tasks until ctx ends: it
// waits for this node's PodCIDR and installs the CNI conflist for it (so
// the runtime starts pods through sluice-cni only once the agent is up),
// and it writes this node's verdict into the Sluice policies' status.
// Conflist errors are logged here and returned once ctx ends.
func (d *Daemon) writeConflist(ctx context.Context, src *k8s.Source) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.policyStatusLoop(ctx, src)
	}()
	err := d.installConflist(ctx, src)
	if err != nil && ctx.Err() == nil {
		d.log.WithError(err).Error("No CNI conflist written")
	}
	<-done
	return err
}

func (d *Daemon) installConflist(ctx context.Context, src *k8s.Source) error {
	node, err := src.WaitNode(ctx)
	if err != nil {
		return err
	}
	c := d.conflist(node.PodCIDR)
	if err := c.Write(d.cfg.CNIConflist); err != nil {
		return fmt.Errorf("write CNI conflist: %w", err)
	}
	d.log.WithFields(logrus.Fields{"path": d.cfg.CNIConflist, "podCIDR": node.PodCIDR, "mtu": c.MTU}).Info("CNI conflist written")
	return nil
}

// conflist is the CNI configuration for podCIDR: sluice-cni with the
// agent's directories and pod MTU, host-local IPAM over the PodCIDR.
func (d *Daemon) conflist(podCIDR netip.Prefix) k8s.Conflist {
	return k8s.Conflist{
		PodCIDR: podCIDR,
		RunDir:  d.cfg.RunDir,
		BPFRoot: d.cfg.BPFRoot,
		LogFile: filepath.Join(d.cfg.RunDir, "cni.log"),
		MTU:     d.mtu.Pod,
	}
}

// policyStatusLoop copies the policy manager's accepted/rejected verdicts
// into this node's condition on each Sluice policy (see
// k8s.ConditionType): only changed conditions are written.
func (d *Daemon) policyStatusLoop(ctx context.Context, src *k8s.Source) {
	t := time.NewTicker(policyStatusInterval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !src.Synced() {
			continue
		}
		var vs []k8s.PolicyVerdict
		for _, st := range d.pols.Status() {
			msg := st.Message
			if st.Accepted {
				msg = strings.Join(st.Warnings, "; ")
			}
			vs = append(vs, k8s.PolicyVerdict{Kind: st.Kind, Namespace: st.Namespace, Name: st.Name,
				Accepted: st.Accepted, Message: msg})
		}
		if d.proc != nil {
			for _, tp := range d.proc.policies.List() {
				vs = append(vs, k8s.PolicyVerdict{Kind: tp.Kind, Namespace: tp.Namespace, Name: tp.Name,
					Accepted: tp.Accepted, Message: tp.Reason})
			}
		}
		err := src.WritePolicyStatus(ctx, vs)
		switch {
		case err != nil && err.Error() != lastErr && ctx.Err() == nil:
			d.log.WithError(err).Warn("Writing policy status failed; retrying")
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
		}
	}
}
