package tracing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The containerSelector forms Tetragon documents compile into
// Compiled.ContainerSelector, and select containers by ContainerLabels.
func TestCompileContainerSelector(t *testing.T) {
	for _, tc := range []struct {
		name, selector string
		want           *metav1.LabelSelector
		selects        []string // container names (image busybox:1.36) it selects, of a, b, c
	}{
		{name: "matchLabels name", selector: "{matchLabels: {name: a}}",
			want: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "a"}}, selects: []string{"a"}},
		{name: "In", selector: "{matchExpressions: [{key: name, operator: In, values: [a, b]}]}",
			want: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "name", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			selects: []string{"a", "b"}},
		{name: "NotIn", selector: "{matchExpressions: [{key: name, operator: NotIn, values: [a]}]}",
			want: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"a"}}}},
			selects: []string{"b", "c"}},
		{name: "Exists", selector: "{matchExpressions: [{key: name, operator: Exists}]}",
			want: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "name", Operator: metav1.LabelSelectorOpExists}}},
			selects: []string{"a", "b", "c"}},
		{name: "DoesNotExist", selector: "{matchExpressions: [{key: name, operator: DoesNotExist}]}",
			want: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "name", Operator: metav1.LabelSelectorOpDoesNotExist}}},
			selects: nil},
		{name: "repo and name", selector: "{matchLabels: {repo: docker.io/library/busybox}, matchExpressions: [{key: name, operator: NotIn, values: [c]}]}",
			want: &metav1.LabelSelector{MatchLabels: map[string]string{"repo": "docker.io/library/busybox"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"c"}}}},
			selects: []string{"a", "b"}},
		{name: "empty: every container", selector: "{}", want: &metav1.LabelSelector{}, selects: []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(obj(t, specWith("podSelector: {matchLabels: {app: x}}\ncontainerSelector: "+tc.selector)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.ContainerSelector)
			assert.Equal(t, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, c.PodSelector, "ANDed with the pod selector")
			var got []string
			for _, name := range []string{"a", "b", "c"} {
				if ContainerMatches(c.ContainerSelector, ContainerLabels(name, "docker.io/library/busybox:1.36")) {
					got = append(got, name)
				}
			}
			assert.Equal(t, tc.selects, got)
		})
	}
	c, err := Compile(obj(t, specWith("options: []")))
	require.NoError(t, err)
	assert.Nil(t, c.ContainerSelector, "no containerSelector: nil")
}

func TestImageRepo(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/nginx:1.27":            "docker.io/library/nginx",
		"nginx":                                   "nginx",
		"localhost:5000/app":                      "localhost:5000/app",
		"localhost:5000/app:v1":                   "localhost:5000/app",
		"quay.io/x/y@sha256:0123abcd":             "quay.io/x/y",
		"registry.k8s.io/pause:3.10@sha256:01234": "registry.k8s.io/pause",
	} {
		assert.Equal(t, want, ImageRepo(in), in)
	}
}
