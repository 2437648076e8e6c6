package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/agent/source"
)

// DefaultNamespace is the namespace of objects that do not name one.
const DefaultNamespace = "default"

// object is one decoded manifest object; exactly one of the pointers is set.
type object struct {
	key   objectKey
	doc   int // 1-based document index in its file, for messages
	svc   *corev1.Service
	slice *discoveryv1.EndpointSlice
	pod   *corev1.Pod
	ns    *corev1.Namespace
	node  *corev1.Node
	raw   *source.Raw
}

// objectKey identifies an object independent of its API version.
type objectKey struct {
	group, kind, namespace, name string
}

func (k objectKey) String() string {
	kind := k.kind
	if k.group != "" {
		kind += "." + k.group
	}
	if k.namespace == "" {
		return kind + " " + k.name
	}
	return kind + " " + k.namespace + "/" + k.name
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	index int // 1-based
	line  int // 1-based line of the document's first line
	data  []byte
}

// splitDocuments splits a multi-document YAML stream at "---" lines (a
// separator may be followed by spaces or a comment).
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{index: 1, line: 1}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if isSeparator(line) {
			docs = append(docs, cur)
			cur = document{index: cur.index + 1, line: lineNo + 1}
			continue
		}
		cur.data = append(cur.data, line...)
	}
	return append(docs, cur)
}

func isSeparator(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	if !ok {
		return false
	}
	rest = bytes.TrimSpace(rest)
	return len(rest) == 0 || rest[0] == '#'
}

// parseFile decodes every document of a file. Any bad document makes the
// file bad: the error names the document, its first line and the problem.
//
// Documents are decoded on all CPUs (YAML decoding dominates loading a large
// file); the result keeps the documents' order.
func parseFile(file string, data []byte) ([]object, error) {
	docs := splitDocuments(data)
	type result struct {
		objs []object
		err  error
	}
	results := make([]result, len(docs))
	workers := min(runtime.GOMAXPROCS(0), len(docs))
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(docs) {
					return
				}
				results[i].objs, results[i].err = parseDocument(file, docs[i])
			}
		})
	}
	wg.Wait()
	var out []object
	for i, r := range results {
		if r.err != nil {
			return nil, fmt.Errorf("document %d (line %d): %w", docs[i].index, docs[i].line, r.err)
		}
		out = append(out, r.objs...)
	}
	return out, nil
}

var yamlLine = regexp.MustCompile(`\bline (\d+)`)

// fileLines rewrites the document-relative "line N" of a YAML error into a
// line number of the file, for a document starting at line start.
func fileLines(err error, start int) error {
	msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
		return "line " + strconv.Itoa(n+start-1)
	})
	return errors.New(strings.Join(strings.Fields(msg), " "))
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func parseDocument(file string, d document) ([]object, error) {
	j, ok := fastYAMLToJSON(d.data)
	if !ok {
		var err error
		if j, err = yaml.YAMLToJSONStrict(d.data); err != nil {
			return nil, fileLines(err, d.line)
		}
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || bytes.Equal(j, []byte("null")) {
		return nil, nil // empty document (only comments or whitespace)
	}
	objs, err := decodeObject(file, j)
	for i := range objs {
		objs[i].doc = d.index
	}
	return objs, err
}

// decodeObject decodes one JSON object; a v1 List yields its items.
func decodeObject(file string, j []byte) ([]object, error) {
	if j[0] != '{' {
		return nil, errors.New("document is not an object")
	}
	var tm typeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, fmt.Errorf("read apiVersion, kind and metadata: %w", err)
	}
	switch {
	case tm.APIVersion == "":
		return nil, errors.New("apiVersion is missing")
	case tm.Kind == "":
		return nil, errors.New("kind is missing")
	}
	group, version, _ := strings.Cut(tm.APIVersion, "/")
	if version == "" {
		group, version = "", group // core group: "v1"
	}
	if group == "" && tm.Kind == "List" {
		return decodeList(file, version, j)
	}
	if tm.Metadata.Name == "" {
		return nil, fmt.Errorf("%s: metadata.name is missing", tm.Kind)
	}
	key := objectKey{group: group, kind: tm.Kind, namespace: tm.Metadata.Namespace, name: tm.Metadata.Name}
	clusterScoped := group == "" && (tm.Kind == "Namespace" || tm.Kind == "Node")
	if key.namespace == "" && !clusterScoped {
		key.namespace = DefaultNamespace
	}
	o := object{key: key}
	var target interface{ GetObjectMeta() metav1.Object }
	switch {
	case group == "" && tm.Kind == "Service":
		o.svc = &corev1.Service{}
		target = o.svc
	case group == "" && tm.Kind == "Pod":
		o.pod = &corev1.Pod{}
		target = o.pod
	case group == "" && tm.Kind == "Namespace":
		o.ns = &corev1.Namespace{}
		target = o.ns
	case group == "" && tm.Kind == "Node":
		key.namespace = "" // cluster-scoped: a stray namespace is ignored
		o.key, o.node = key, &corev1.Node{}
		target = o.node
	case group == discoveryv1.GroupName && tm.Kind == "EndpointSlice":
		o.slice = &discoveryv1.EndpointSlice{}
		target = o.slice
	default:
		o.raw = &source.Raw{
			APIVersion: tm.APIVersion, Kind: tm.Kind,
			Namespace: key.namespace, Name: key.name,
			JSON: bytes.Clone(j), File: file,
		}
		return []object{o}, nil
	}
	if version != "v1" {
		return nil, fmt.Errorf("%s %s: unsupported apiVersion %q (want %s)", tm.Kind, tm.Metadata.Name, tm.APIVersion, strings.TrimPrefix(group+"/v1", "/"))
	}
	if err := strictUnmarshal(j, target); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
	}
	target.GetObjectMeta().SetNamespace(key.namespace)
	return []object{o}, nil
}

func decodeList(file, version string, j []byte) ([]object, error) {
	if version != "v1" {
		return nil, fmt.Errorf("list: unsupported apiVersion %q (want v1)", version)
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]any    `json:"metadata"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := strictUnmarshal(j, &list); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []object
	for i, item := range list.Items {
		objs, err := decodeObject(file, bytes.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("list item %d: %w", i, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// strictUnmarshal decodes j into v case-sensitively, rejecting unknown and
// duplicate fields (as kube-apiserver's strict field validation does).
func strictUnmarshal(j []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
