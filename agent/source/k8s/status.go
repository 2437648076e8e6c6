package k8s

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sluicenet/sluice/policy"
	"github.com/sluicenet/sluice/policy/tracing"
)

// Condition reasons of the per-node acceptance condition.
const (
	ReasonAccepted = "Accepted"
	ReasonRejected = "Rejected"
)

// PolicyVerdict is one node's verdict on a Sluice policy object.
type PolicyVerdict struct {
	// Kind is policy.KindNetworkPolicy, policy.KindClusterwidePolicy,
	// tracing.KindTracingPolicy or tracing.KindTracingPolicyNamespaced.
	Kind      string
	Namespace string // empty for the cluster-scoped kinds
	Name      string
	Accepted  bool
	// Message is the rejection reason, or the warnings of an accepted policy.
	Message string
}

// ConditionType is the status condition a node's agent owns on every Sluice
// policy: "<node>/Accepted". Each agent writes only its own condition (with
// server-side apply and a per-node field manager, the conditions list being
// a map keyed by type), so agents on several nodes never overwrite or race
// with each other, and a node skew in verdicts stays visible.
func ConditionType(node string) string { return node + "/Accepted" }

// fieldManager is the server-side apply manager of this node's condition.
func fieldManager(node string) string { return "sluice-agent-" + node }

// WritePolicyStatus applies this node's condition to every Sluice policy in
// verdicts whose cached status differs from it (status, reason, message or
// observed generation); objects already up to date cost no request, so it is
// cheap to call after every policy sync. It needs Config.Dynamic and the
// caches synced. Kubernetes NetworkPolicies have no status and are skipped.
func (s *Source) WritePolicyStatus(ctx context.Context, verdicts []PolicyVerdict) error {
	if s.cfg.Dynamic == nil {
		return errors.New("k8s source: no dynamic client for policy status")
	}
	var errs []error
	for _, v := range verdicts {
		gvr, ok := sluiceGVR(v.Kind)
		if !ok {
			continue
		}
		cur, err := s.cachedPolicy(gvr, v.Namespace, v.Name)
		if err != nil || cur == nil {
			continue // deleted meanwhile, or not seen yet: the next call catches up
		}
		want := metav1.Condition{
			Type: ConditionType(s.cfg.NodeName), Status: metav1.ConditionTrue, Reason: ReasonAccepted,
			Message: v.Message, ObservedGeneration: cur.GetGeneration(),
		}
		if !v.Accepted {
			want.Status, want.Reason = metav1.ConditionFalse, ReasonRejected
		}
		old, found := findCondition(cur, want.Type)
		if found && old.Status == want.Status && old.Reason == want.Reason && old.Message == want.Message &&
			old.ObservedGeneration == want.ObservedGeneration {
			continue
		}
		want.LastTransitionTime = metav1.NewTime(time.Now().UTC().Truncate(time.Second))
		if found && old.Status == want.Status {
			want.LastTransitionTime = old.LastTransitionTime
		}
		if err := s.applyCondition(ctx, gvr, v, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func sluiceGVR(kind string) (schema.GroupVersionResource, bool) {
	switch kind {
	case policy.KindNetworkPolicy:
		return SluiceNetworkPolicyGVR, true
	case policy.KindClusterwidePolicy:
		return SluiceClusterwideNetworkPolicyGVR, true
	case tracing.KindTracingPolicy:
		return SluiceTracingPolicyGVR, true
	case tracing.KindTracingPolicyNamespaced:
		return SluiceTracingPolicyNamespacedGVR, true
	}
	return schema.GroupVersionResource{}, false
}

// cachedPolicy returns the informer's copy of a Sluice policy (nil if absent).
func (s *Source) cachedPolicy(gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	for _, r := range s.policyRes {
		if r.gvr != gvr {
			continue
		}
		l := s.listerOf(r)
		if l == nil {
			return nil, fmt.Errorf("%s is not served by the API server (CRD not installed)", gvr.Resource)
		}
		var (
			o   runtime.Object
			err error
		)
		if ns == "" {
			o, err = l.Get(name)
		} else {
			o, err = l.ByNamespace(ns).Get(name)
		}
		if err != nil {
			return nil, err
		}
		u, _ := o.(*unstructured.Unstructured)
		return u, nil
	}
	return nil, fmt.Errorf("no informer for %s", gvr.Resource)
}

// findCondition returns the condition of type t in the object's status.
func findCondition(u *unstructured.Unstructured, t string) (metav1.Condition, bool) {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok || m["type"] != t {
			continue
		}
		var c metav1.Condition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &c); err != nil {
			return metav1.Condition{}, false
		}
		return c, true
	}
	return metav1.Condition{}, false
}

// applyCondition server-side-applies the one condition this node owns.
func (s *Source) applyCondition(ctx context.Context, gvr schema.GroupVersionResource, v PolicyVerdict, c metav1.Condition) error {
	cond, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&c)
	if err != nil {
		return fmt.Errorf("encode condition: %w", err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": policy.APIVersion,
		"kind":       v.Kind,
		"metadata":   map[string]any{"name": v.Name},
		"status":     map[string]any{"conditions": []any{cond}},
	}}
	ri := s.cfg.Dynamic.Resource(gvr)
	var client interface {
		ApplyStatus(context.Context, string, *unstructured.Unstructured, metav1.ApplyOptions) (*unstructured.Unstructured, error)
	} = ri
	if v.Namespace != "" {
		u.SetNamespace(v.Namespace)
		client = ri.Namespace(v.Namespace)
	}
	opts := metav1.ApplyOptions{FieldManager: fieldManager(s.cfg.NodeName), Force: true}
	if _, err := client.ApplyStatus(ctx, v.Name, u, opts); err != nil {
		return fmt.Errorf("apply status of %s %s/%s: %w", v.Kind, v.Namespace, v.Name, err)
	}
	s.log.WithField("policy", v.Namespace+"/"+v.Name).WithField("accepted", v.Accepted).Debug("Policy status written")
	return nil
}
