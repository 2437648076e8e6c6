package manifests

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluicenet/sluice/policy/tracing"
)

// Tracing policies of both kinds reach Snapshot.Others unchanged (the
// namespaced one without a namespace gets the default namespace in the Raw),
// and compile.
func TestWatcherPassesTracingPolicies(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "40-tracing.yaml", `apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: no-nc}
spec:
  podSelector: {matchLabels: {app: locked}}
  execs:
  - selectors:
    - matchBinaries: [{operator: In, values: [/usr/bin/nc], followChildren: true}]
      matchActions: [{action: Sigkill}]
---
apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicyNamespaced
metadata: {name: watch-curl}
spec:
  options: [{name: policy-mode, value: monitor}]
  execs: [{selectors: [{matchBinaries: [{operator: In, values: [/usr/bin/curl]}], matchActions: [{action: Post}]}]}]
`)
	r := startWatcher(t, dir, nil)
	s := r.next(t)
	require.Equal(t, []string{"SluiceTracingPolicy/default/no-nc", "SluiceTracingPolicyNamespaced/default/watch-curl"}, names(s))

	var got []tracing.Ref
	for _, raw := range s.Others {
		require.Equal(t, "40-tracing.yaml", raw.File)
		u := &unstructured.Unstructured{}
		require.NoError(t, json.Unmarshal(raw.JSON, &u.Object))
		if raw.Kind == tracing.KindTracingPolicyNamespaced && u.GetNamespace() == "" {
			u.SetNamespace(raw.Namespace) // as a consumer of the manifests source does
		}
		c, err := tracing.Compile(u)
		require.NoError(t, err)
		got = append(got, c.Ref)
	}
	require.Equal(t, []tracing.Ref{
		{Kind: tracing.KindTracingPolicy, Name: "no-nc"},
		{Kind: tracing.KindTracingPolicyNamespaced, Namespace: "default", Name: "watch-curl"},
	}, got)
}
