package k8s

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/policy"
)

// Policy resources the source watches (through the dynamic client, so that
// the objects reach the policy manager as the JSON the API server serves).
var (
	NetworkPolicyGVR = schema.GroupVersionResource{
		Group: policy.KindKubernetesPolicyGroup, Version: "v1", Resource: "networkpolicies"}
	SluiceNetworkPolicyGVR = schema.GroupVersionResource{
		Group: policy.Group, Version: policy.Version, Resource: "sluicenetworkpolicies"}
	SluiceClusterwideNetworkPolicyGVR = schema.GroupVersionResource{
		Group: policy.Group, Version: policy.Version, Resource: "sluiceclusterwidenetworkpolicies"}
	SluiceTracingPolicyGVR = schema.GroupVersionResource{
		Group: policy.Group, Version: policy.Version, Resource: "sluicetracingpolicies"}
	SluiceTracingPolicyNamespacedGVR = schema.GroupVersionResource{
		Group: policy.Group, Version: policy.Version, Resource: "sluicetracingpoliciesnamespaced"}
)

// policyGVRs are the watched policy resources (network and tracing
// policies), in snapshot order.
var policyGVRs = []schema.GroupVersionResource{
	NetworkPolicyGVR, SluiceNetworkPolicyGVR, SluiceClusterwideNetworkPolicyGVR,
	SluiceTracingPolicyGVR, SluiceTracingPolicyNamespacedGVR,
}

// NewDynamicClient returns a dynamic client for the kubeconfig (or
// in-cluster); it speaks JSON, which custom resources require.
func NewDynamicClient(kubeconfig string) (dynamic.Interface, error) {
	cfg, err := RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType, cfg.AcceptContentTypes = "", ""
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	return dc, nil
}

// addPolicyInformers creates the dynamic factory and registers the
// informer of the built-in NetworkPolicies; the Sluice CRDs' informers are
// registered by Run for the CRDs the API server serves (crds.go).
func (s *Source) addPolicyInformers(h cache.ResourceEventHandler) error {
	s.dynFactory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.cfg.Dynamic, s.cfg.Resync, "", nil)
	s.policyHandler = h
	for _, gvr := range policyGVRs {
		r := &policyResource{gvr: gvr, builtin: gvr == NetworkPolicyGVR}
		s.policyRes = append(s.policyRes, r)
		if !r.builtin {
			continue
		}
		inf, err := s.policyInformer(gvr)
		if err != nil {
			return err
		}
		if err := s.track(inf.Informer(), h); err != nil {
			return err
		}
		r.lister = inf.Lister()
	}
	return nil
}

// policyInformer returns the dynamic informer of gvr with the transform set.
func (s *Source) policyInformer(gvr schema.GroupVersionResource) (informers.GenericInformer, error) {
	gi := s.dynFactory.ForResource(gvr)
	if err := gi.Informer().SetTransform(stripManagedFields); err != nil {
		return nil, fmt.Errorf("k8s source: %s transform: %w", gvr.Resource, err)
	}
	return gi, nil
}

// listPolicies returns every cached policy object as a source.Raw, sorted
// like the manifests source sorts Others. A CRD the API server does not
// serve has no objects.
func (s *Source) listPolicies() ([]source.Raw, error) {
	var out []source.Raw
	for _, r := range s.policyRes {
		l := s.listerOf(r)
		if l == nil {
			continue
		}
		objs, err := l.List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", r.gvr.Resource, err)
		}
		for _, o := range objs {
			r, err := rawFrom(o)
			if err != nil {
				s.log.WithError(err).Warn("Skipping a policy object that does not encode")
				continue
			}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b source.Raw) int {
		return cmp.Or(cmp.Compare(a.APIVersion, b.APIVersion), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// rawFrom converts a cached object into the raw form the policy manager
// compiles. The status and the fields that change with every status write
// (resourceVersion, managedFields) are dropped, so that the agents' own
// status updates leave the policy's JSON unchanged.
func rawFrom(o runtime.Object) (source.Raw, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return source.Raw{}, fmt.Errorf("unexpected %T in a dynamic cache", o)
	}
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "status")
	unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	js, err := json.Marshal(c.Object)
	if err != nil {
		return source.Raw{}, fmt.Errorf("encode %s %s/%s: %w", c.GetKind(), c.GetNamespace(), c.GetName(), err)
	}
	return source.Raw{
		APIVersion: c.GetAPIVersion(), Kind: c.GetKind(),
		Namespace: c.GetNamespace(), Name: c.GetName(), JSON: js,
	}, nil
}
