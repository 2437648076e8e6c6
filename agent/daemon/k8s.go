package daemon

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/sluicenet/sluice/agent/source/k8s"
	"github.com/sluicenet/sluice/agent/source/manifests"
)

// stateSource is where desired state comes from: a manifests directory or
// the Kubernetes API server.
type stateSource interface {
	Run(ctx context.Context, onChange func(manifests.Snapshot)) error
}

// newK8sSource connects the Kubernetes source (kubeconfig, or in-cluster
// when cfg.Kubeconfig is empty). Nothing is listed before Run.
func (d *Daemon) newK8sSource() (*k8s.Source, error) {
	cs, err := k8s.NewClientset(d.cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return k8s.New(k8s.Config{Client: cs, NodeName: d.cfg.NodeName, Log: d.log.WithField("subsys", "k8s")})
}

// writeConflist waits for this node's PodCIDR and installs the CNI conflist
// for it, so the runtime starts pods through sluice-cni only once the agent
// is up.
func (d *Daemon) writeConflist(ctx context.Context, src *k8s.Source) error {
	node, err := src.WaitNode(ctx)
	if err != nil {
		return err
	}
	c := k8s.Conflist{
		PodCIDR: node.PodCIDR,
		RunDir:  d.cfg.RunDir,
		BPFRoot: d.cfg.BPFRoot,
		LogFile: filepath.Join(d.cfg.RunDir, "cni.log"),
	}
	if err := c.Write(d.cfg.CNIConflist); err != nil {
		return fmt.Errorf("write CNI conflist: %w", err)
	}
	d.log.WithField("path", d.cfg.CNIConflist).WithField("podCIDR", node.PodCIDR).Info("CNI conflist written")
	return nil
}
