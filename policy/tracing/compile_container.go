package tracing

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The container fields spec.containerSelector matches, as Tetragon's: a
// container is the label set {name: <container name>, repo: <image
// repository>}, and the selector is a label selector over it.
const (
	ContainerFieldName = "name"
	ContainerFieldRepo = "repo"
)

// containerFields are the keys a containerSelector may use.
var containerFields = []string{ContainerFieldName, ContainerFieldRepo}

// containerOps are the operators of containerSelector.matchExpressions.
var containerOps = []metav1.LabelSelectorOperator{
	metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist,
}

// ContainerLabels returns the label set a containerSelector matches for a
// container named name running image (a reference such as
// docker.io/library/nginx:1.27 or …@sha256:…): repo is the image without
// its tag and digest.
func ContainerLabels(name, image string) map[string]string {
	return map[string]string{ContainerFieldName: name, ContainerFieldRepo: ImageRepo(image)}
}

// ImageRepo returns an image reference without its digest and tag.
func ImageRepo(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// containerSelector checks spec.containerSelector: keys are container
// fields (name, repo), operators In, NotIn, Exists, DoesNotExist, In and
// NotIn with values, the others without. Values are not label values (a
// repo has slashes), so ContainerMatches evaluates it. An empty selector selects every
// container of the selected pods (and still scopes the policy to
// containers: not the host, not a process nsenter'd into a pod).
func (c *compiler) containerSelector(s *metav1.LabelSelector) {
	const path = "spec.containerSelector"
	n := len(c.errs)
	for _, k := range sortedMapKeys(s.MatchLabels) {
		if !slices.Contains(containerFields, k) {
			c.addf(path+".matchLabels."+k, "unknown container field %q (known: %s)", k, strings.Join(containerFields, ", "))
		}
	}
	for i, e := range s.MatchExpressions {
		p := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		if !slices.Contains(containerFields, e.Key) {
			c.addf(p+".key", "unknown container field %q (known: %s)", e.Key, strings.Join(containerFields, ", "))
		}
		switch {
		case !slices.Contains(containerOps, e.Operator):
			c.addf(p+".operator", "%q is not a container selector operator (In, NotIn, Exists, DoesNotExist)", e.Operator)
		case (e.Operator == metav1.LabelSelectorOpIn || e.Operator == metav1.LabelSelectorOpNotIn) && len(e.Values) == 0:
			c.addf(p+".values", "required for operator %s", e.Operator)
		case (e.Operator == metav1.LabelSelectorOpExists || e.Operator == metav1.LabelSelectorOpDoesNotExist) && len(e.Values) > 0:
			c.addf(p+".values", "must be empty for operator %s", e.Operator)
		}
	}
	if len(c.errs) == n {
		c.out.ContainerSelector = s.DeepCopy()
	}
}

// ContainerMatches reports whether a compiled containerSelector selects a
// container with the fields f (ContainerLabels): every matchLabels entry
// and every expression holds.
func ContainerMatches(s *metav1.LabelSelector, f map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := f[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		v, ok := f[e.Key]
		var holds bool
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			holds = ok && slices.Contains(e.Values, v)
		case metav1.LabelSelectorOpNotIn:
			holds = !ok || !slices.Contains(e.Values, v)
		case metav1.LabelSelectorOpExists:
			holds = ok
		case metav1.LabelSelectorOpDoesNotExist:
			holds = !ok
		}
		if !holds {
			return false
		}
	}
	return true
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
