package manifests

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/test/bench/services"
)

// fastCases are documents the fast path must convert (want true) or leave
// to sigs.k8s.io/yaml (false).
var fastCases = []struct {
	doc  string
	fast bool
}{
	{"a: b\nc: 1\nd: true\ne: null\nf:\n", true},
	{"metadata: {name: b-1, labels: {kubernetes.io/service-name: b}}\nports: [{name: http, port: 8080}]\nendpoints: []\n", true},
	{"spec:\n  ports:\n  - name: tcp\n    port: 80\n  clusterIPs:\n  - 10.96.0.16\nx: [a, 'b c', \"d\"]\n", true},
	{"list:\n- - a\n", false},
	{"  execs:\n  - selectors:\n    - matchBinaries: [{operator: In, values: [/usr/bin/nc]}]\n      matchActions: [{action: Sigkill}]\n", true},
	{"a: yes\n", false},         // YAML 1.1 boolean
	{"a: on\n", false},          // YAML 1.1 boolean
	{"a: 010\n", false},         // octal
	{"a: 1.5\n", false},         // float
	{"a: 2001-12-14\n", false},  // timestamp
	{"a: 0x1F\n", false},        // hexadecimal
	{"a: b # comment\n", false}, // trailing comment
	{"a: &x b\nc: *x\n", false}, // anchor and alias
	{"a: !!str 1\n", false},     // tag
	{"a: |\n  text\n", false},   // block scalar
	{"a: one\n  two\n", false},  // multi-line plain scalar
	{"a: 1\na: 2\n", false},     // duplicate key
	{"a: [b,\n  c]\n", false},   // multi-line flow
	{"a: \"x\\ty\"\n", false},   // escape
	{"a: 'it''s'\n", false},     // quote in single quotes
	{"a: http://x\n", false},    // colon in a scalar
	{"a: <b>\n", false},         // HTML-escaped by encoding/json
	{"a:\tb\n", false},          // tab
	{"just a scalar\n", false},
	{"- a\n- b\n", true},
	{"a:\n  b: 1\n c: 2\n", false}, // bad indentation: the slow path reports it
	{"{\"apiVersion\": \"v1\", \"kind\": \"Namespace\"}\n", false},
	{"y: 1\n", false},
	{"a: 'x\"y\\\\z'\nb: ~\nc: '1'\nd: \"-1\"\n", true},
	{"a: 99999999999999999999\n", false},
	{"a:   spaced   \n\n# comment\nb: 2\n", true},
	{"a: 1\r\n", false},
}

func TestFastYAMLToJSON(t *testing.T) {
	for _, tc := range fastCases {
		got, ok := fastYAMLToJSON([]byte(tc.doc))
		assert.Equal(t, tc.fast, ok, "%q", tc.doc)
		if ok {
			want, err := yaml.YAMLToJSONStrict([]byte(tc.doc))
			require.NoError(t, err, "%q", tc.doc)
			assert.Equal(t, string(want), string(got), "%q", tc.doc)
		}
	}
}

// Every document the fast path converts, of the repository's manifests and
// the benchmark's generated ones, converts to exactly what
// sigs.k8s.io/yaml gives; the benchmark's take the fast path.
func TestFastYAMLMatchesSlowPath(t *testing.T) {
	set, err := services.Set(50, benchBackends, nil)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, services.WriteManifests(&buf, set))
	for _, d := range splitDocuments(buf.Bytes()) {
		if len(bytes.TrimSpace(d.data)) == 0 {
			continue
		}
		_, ok := fastYAMLToJSON(d.data)
		require.True(t, ok, "generated manifest takes the fast path: %s", d.data)
		checkFast(t, d.data)
	}
	var files []string
	require.NoError(t, filepath.WalkDir("../../../install", func(p string, _ fs.DirEntry, err error) error {
		if strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	}))
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.Contains(string(data), "{{") {
			continue // a Helm template
		}
		for _, d := range splitDocuments(data) {
			checkFast(t, d.data)
		}
	}
}

// checkFast: if the fast path converts doc, the slow path converts it to
// the same bytes.
func checkFast(t testing.TB, doc []byte) {
	got, ok := fastYAMLToJSON(doc)
	if !ok {
		return
	}
	want, err := yaml.YAMLToJSONStrict(doc)
	require.NoError(t, err, "%s", doc)
	require.Equal(t, string(want), string(got), "%s", doc)
}

func FuzzFastYAMLToJSON(f *testing.F) {
	for _, tc := range fastCases {
		f.Add(tc.doc)
	}
	f.Fuzz(func(t *testing.T, doc string) { checkFast(t, []byte(doc)) })
}
