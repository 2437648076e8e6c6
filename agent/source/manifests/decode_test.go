package manifests

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/source"
)

const serviceYAML = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: web
`

func TestSplitDocuments(t *testing.T) {
	docs := splitDocuments([]byte("---\na: 1\n--- # second\nb: 2\n---\n\n---foo: 3\n"))
	require.Len(t, docs, 4)
	require.Equal(t, document{index: 1, line: 1}, docs[0])
	require.Equal(t, document{index: 2, line: 2, data: []byte("a: 1\n")}, docs[1])
	require.Equal(t, document{index: 3, line: 4, data: []byte("b: 2\n")}, docs[2])
	// "---foo" is not a separator: it stays content of document 4.
	require.Equal(t, document{index: 4, line: 6, data: []byte("\n---foo: 3\n")}, docs[3])
}

func TestParseFileKinds(t *testing.T) {
	objs, err := parseFile("all.yaml", []byte(serviceYAML+`---
# only a comment: an empty document
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.1.5]
  nodeName: node-a
  conditions: {ready: true}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: c, image: x, ports: [{name: web, containerPort: 8080}]}]
status: {podIP: 10.0.1.5}
---
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny-all}
  spec: {podSelector: {}}
`))
	require.NoError(t, err)
	require.Len(t, objs, 5)

	require.NotNil(t, objs[0].svc)
	require.Equal(t, "default", objs[0].svc.Namespace, "default namespace applied")
	require.Equal(t, "web", objs[0].svc.Spec.Ports[0].TargetPort.StrVal)
	require.Equal(t, 1, objs[0].doc)

	require.NotNil(t, objs[1].slice)
	require.Equal(t, "shop", objs[1].slice.Namespace)
	require.Equal(t, int32(8080), *objs[1].slice.Ports[0].Port)
	require.Equal(t, 3, objs[1].doc)

	require.NotNil(t, objs[2].pod)
	require.Equal(t, "node-a", objs[2].pod.Spec.NodeName)
	require.Equal(t, "10.0.1.5", objs[2].pod.Status.PodIP)
	require.Equal(t, "default", objs[2].pod.Namespace)

	require.NotNil(t, objs[3].ns)
	require.Equal(t, "", objs[3].ns.Namespace, "namespaces are cluster-scoped")
	require.Equal(t, map[string]string{"team": "a"}, objs[3].ns.Labels)

	require.NotNil(t, objs[4].raw)
	require.Equal(t, source.Raw{
		APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: "default", Name: "deny-all",
		JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny-all"},"spec":{"podSelector":{}}}`),
		File: "all.yaml",
	}, *objs[4].raw)
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{
			name: "YAML syntax error names the document and line",
			in:   serviceYAML + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\n spec: {\n",
			want: []string{"document 2 (line 13)", "yaml: line 16: did not find expected key"},
		},
		{
			name: "unknown field is named with its path",
			in:   "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  portz: []\n",
			want: []string{"document 1", "Service web", `unknown field "spec.portz"`},
		},
		{
			name: "field names are case-sensitive",
			in:   "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nSpec: {}\n",
			want: []string{`unknown field "Spec"`},
		},
		{
			name: "duplicate field",
			in:   "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n",
			want: []string{"document 1", `yaml: unmarshal errors: line 4: key "metadata" already set in map`},
		},
		{
			name: "wrong type names the field",
			in:   "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: eighty}]\n",
			want: []string{"spec.ports.port", "int32"},
		},
		{
			name: "missing name",
			in:   "apiVersion: v1\nkind: Pod\nmetadata: {namespace: a}\n",
			want: []string{"Pod: metadata.name is missing"},
		},
		{
			name: "missing kind",
			in:   "apiVersion: v1\nmetadata: {name: a}\n",
			want: []string{"kind is missing"},
		},
		{
			name: "missing apiVersion",
			in:   "kind: Service\nmetadata: {name: a}\n",
			want: []string{"apiVersion is missing"},
		},
		{
			name: "unsupported version of a known kind",
			in:   "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: a}\naddressType: IPv4\nendpoints: []\n",
			want: []string{`unsupported apiVersion "discovery.k8s.io/v1beta1" (want discovery.k8s.io/v1)`},
		},
		{
			name: "not an object",
			in:   "- a\n- b\n",
			want: []string{"document 1", "not an object"},
		},
		{
			name: "bad list item",
			in:   "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}, bogus: 1}\n",
			want: []string{"list item 0", `unknown field "bogus"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := parseFile("bad.yaml", []byte(tc.in))
			require.Error(t, err)
			require.Nil(t, objs)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseFileRawKeepsOtherKinds(t *testing.T) {
	// A "Service" of another API group is not a core Service.
	objs, err := parseFile("knative.yaml", []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: apps}
spec: {anything: [1, 2]}
---
apiVersion: sluice.io/v1
kind: SluiceClusterwideNetworkPolicy
metadata: {name: cw}
spec: {endpointSelector: {}}
`))
	require.NoError(t, err)
	require.Len(t, objs, 2)
	require.Nil(t, objs[0].svc)
	require.Equal(t, objectKey{group: "serving.knative.dev", kind: "Service", namespace: "apps", name: "hello"}, objs[0].key)
	require.JSONEq(t, `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"apps"},"spec":{"anything":[1,2]}}`,
		string(objs[0].raw.JSON))
	require.Equal(t, "SluiceClusterwideNetworkPolicy", objs[1].raw.Kind)
	require.Equal(t, "knative.yaml", objs[1].raw.File)
}
