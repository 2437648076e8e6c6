package tracing

import (
	"fmt"
	"strconv"
)

// numbersAsStrings returns obj with the numbers among the values of every
// matchArgs entry and spec.lists entry written as strings. Tetragon's
// policies write integer argument values unquoted (values: [9999]) though
// the field is a list of strings; its loader takes them, so this one does
// too. (The API server, validating against the CRD schema, asks for quoted
// values.) obj is not modified.
func numbersAsStrings(obj map[string]any) map[string]any {
	out := copyMap(obj)
	spec, ok := out["spec"].(map[string]any)
	if !ok {
		return out
	}
	fixValues(spec["lists"])
	for _, hook := range []string{"tracepoints", "connects", "execs"} {
		entries, _ := spec[hook].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			sels, _ := em["selectors"].([]any)
			for _, s := range sels {
				sm, _ := s.(map[string]any)
				fixValues(sm["matchArgs"])
			}
		}
	}
	return out
}

// fixValues rewrites the numbers of each entry's values as strings.
func fixValues(list any) {
	entries, _ := list.([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		vals, _ := em["values"].([]any)
		for i, v := range vals {
			switch n := v.(type) {
			case int64:
				vals[i] = strconv.FormatInt(n, 10)
			case float64:
				vals[i] = strconv.FormatFloat(n, 'f', -1, 64)
			case int:
				vals[i] = fmt.Sprint(n)
			}
		}
	}
}

// copyMap deep-copies the maps and slices of a decoded JSON object.
func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
