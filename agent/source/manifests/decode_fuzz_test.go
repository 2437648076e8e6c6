package manifests

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseFile feeds a manifests file through the decoder. Invariants: a
// rejected file returns an error and no object; decoding is deterministic;
// every object has a name, exactly one decoded form and a document index of
// the file; a namespaced object has a namespace; and every accepted object,
// written back as a JSON document, decodes to the same key and the same
// JSON again (the decoder's output is a fixed point). The seed corpus
// (testdata/fuzz) holds the manifests of the tests, the demo and install/.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(serviceYAML))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n" +
		"---\napiVersion: v1\nkind: Node\nmetadata: {name: n, namespace: stray}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := parseFile("f.yaml", data)
		if err != nil {
			require.Nil(t, objs, "a rejected file returns no object")
			return
		}
		again, err := parseFile("f.yaml", data)
		require.NoError(t, err, "decoding is deterministic")
		require.True(t, reflect.DeepEqual(objs, again), "decoding is deterministic")
		ndocs := len(splitDocuments(data))
		var docs [][]byte
		for _, o := range objs {
			require.NotEmpty(t, o.key.name)
			require.True(t, o.doc >= 1 && o.doc <= ndocs, "document %d of %d", o.doc, ndocs)
			clusterScoped := o.key.group == "" && (o.key.kind == "Namespace" || o.key.kind == "Node")
			require.Equal(t, clusterScoped, o.key.namespace == "", "%s: namespaced objects have a namespace", o.key)
			docs = append(docs, objectJSON(t, o))
		}
		rt, err := parseFile("f.yaml", bytes.Join(docs, []byte("\n---\n")))
		require.NoError(t, err, "accepted objects written back as JSON decode again")
		require.Len(t, rt, len(objs))
		for i := range rt {
			require.Equal(t, objs[i].key, rt[i].key)
			require.JSONEq(t, string(docs[i]), string(objectJSON(t, rt[i])))
		}
	})
}

// objectJSON returns an object's decoded form as JSON; it requires exactly
// one form to be set.
func objectJSON(t *testing.T, o object) []byte {
	t.Helper()
	var forms []any
	for _, p := range []any{o.svc, o.slice, o.pod, o.ns, o.node} {
		if !reflect.ValueOf(p).IsNil() {
			forms = append(forms, p)
		}
	}
	if o.raw != nil {
		require.Equal(t, "f.yaml", o.raw.File)
		forms = append(forms, json.RawMessage(o.raw.JSON))
	}
	require.Len(t, forms, 1, "%s: exactly one decoded form", o.key)
	j, err := json.Marshal(forms[0])
	require.NoError(t, err)
	return j
}
