package policymgr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/policy"
)

// isPolicy reports whether a raw object is one of the policy kinds.
func isPolicy(r source.Raw) bool {
	group, _, _ := strings.Cut(r.APIVersion, "/")
	switch {
	case group == policy.KindKubernetesPolicyGroup && r.Kind == policy.KindKubernetesPolicy:
		return true
	case group == policy.Group && (r.Kind == policy.KindNetworkPolicy || r.Kind == policy.KindClusterwidePolicy):
		return true
	}
	return false
}

// rawKey names a raw policy object the way the compiler names it.
func rawKey(r source.Raw) policy.Ref {
	k := policy.Ref{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
	if r.Kind == policy.KindClusterwidePolicy {
		k.Namespace = ""
	}
	return k
}

// compile decodes, validates and compiles one raw policy object. Unknown
// fields are rejected so that a misspelt field never silently widens or
// narrows a policy.
func compile(r source.Raw) (*policy.Policy, error) {
	group, version, _ := strings.Cut(r.APIVersion, "/")
	switch r.Kind {
	case policy.KindKubernetesPolicy:
		if version != "v1" {
			return nil, fmt.Errorf("apiVersion: %s is not supported (want networking.k8s.io/v1)", r.APIVersion)
		}
		var np networkingv1.NetworkPolicy
		if err := decodeStrict(r.JSON, &np); err != nil {
			return nil, err
		}
		return policy.FromNetworkPolicy(&np)
	case policy.KindNetworkPolicy, policy.KindClusterwidePolicy:
		if group != policy.Group || version != policy.Version {
			return nil, fmt.Errorf("apiVersion: %s is not supported (want %s)", r.APIVersion, policy.APIVersion)
		}
		if r.Kind == policy.KindNetworkPolicy {
			var p policy.SluiceNetworkPolicy
			if err := decodeStrict(r.JSON, &p); err != nil {
				return nil, err
			}
			if p.Namespace == "" {
				p.Namespace = r.Namespace
			}
			return policy.FromSluicePolicy(&p)
		}
		var p policy.SluiceClusterwideNetworkPolicy
		if err := decodeStrict(r.JSON, &p); err != nil {
			return nil, err
		}
		return policy.FromClusterwidePolicy(&p)
	}
	return nil, fmt.Errorf("kind: %s is not a policy kind", r.Kind)
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
