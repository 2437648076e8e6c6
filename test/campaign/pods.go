package main

import (
	"context"
	"fmt"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/sluicenet/sluice/test/harness"
)

// addPod creates a pod netns and runs CNI ADD for it through the real
// sluice-cni. Unlike harness.AddPod it registers no DEL in cleanup: the
// campaign deletes its pods itself (delPod) and checks what they left. The
// netns is removed in r's cleanup if delPod never ran.
func addPod(r *harness.Runner, node *harness.Node, namespace, name string) (*harness.Pod, error) {
	p := &harness.Pod{Name: name, Namespace: namespace, ContainerID: harness.NewContainerID(), Node: node}
	p.NS = harness.NewNetNS(r, "sl-pod-")
	res, err := node.CNI.AddNetworkList(context.Background(), node.ConfList, p.RuntimeConf())
	if err != nil {
		return p, fmt.Errorf("CNI ADD %s: %w", p.FullName(), err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return p, fmt.Errorf("CNI ADD %s: convert result: %w", p.FullName(), err)
	}
	if len(cur.IPs) != 1 {
		return p, fmt.Errorf("CNI ADD %s: want one IP, got %v", p.FullName(), cur.IPs)
	}
	p.IP, _ = netip.AddrFromSlice(cur.IPs[0].Address.IP.To4())
	for _, iface := range cur.Interfaces {
		if iface.Sandbox == "" {
			p.HostIfName = iface.Name
		}
	}
	return p, nil
}

// delPod runs CNI DEL for the pod, then removes its netns, as a runtime
// does when a pod goes.
func delPod(r *harness.Runner, p *harness.Pod) error {
	if err := p.Del(); err != nil {
		return fmt.Errorf("CNI DEL %s: %w", p.FullName(), err)
	}
	p.NS.Delete(r)
	return nil
}

// parallel runs fn for every item with at most n at a time and returns the
// errors it returned.
func parallel[T any](items []T, n int, fn func(T) error) []error {
	sem := make(chan struct{}, n)
	errs := make(chan error, len(items))
	for _, it := range items {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				errs <- err
			}
		}()
	}
	for range n {
		sem <- struct{}{}
	}
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}
