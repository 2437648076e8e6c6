package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/agent/api"
)

// ExportFilter is one allow or deny filter of the exporter, in the JSON
// form of Tetragon's --export-allowlist: every field set must match (a
// field matches when any of its values does); an empty filter matches
// every event.
type ExportFilter struct {
	// EventSet are event types: PROCESS_EXEC, PROCESS_EXIT,
	// PROCESS_CONNECT, PROCESS_THROTTLE, PROCESS_TRACEPOINT.
	EventSet []string `json:"event_set,omitempty"`
	// Namespace are pod namespaces ("" is the host).
	Namespace []string `json:"namespace,omitempty"`
	// PodRegex are regular expressions on the pod name.
	PodRegex []string `json:"pod_regex,omitempty"`
	// BinaryRegex are regular expressions on the process's binary.
	BinaryRegex []string `json:"binary_regex,omitempty"`

	kinds       []string
	pod, binary []*regexp.Regexp
}

// ParseExportFilters parses filters given as JSON objects one after the
// other (Tetragon's form, usually one per line) or as a JSON list. Blank
// input is no filter.
func ParseExportFilters(s string) ([]ExportFilter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var out []ExportFilter
	if strings.HasPrefix(s, "[") {
		if err := dec.Decode(&out); err != nil {
			return nil, fmt.Errorf("export filter list: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("export filter list: trailing data after the list")
		}
	} else {
		for n := 1; ; n++ {
			var f ExportFilter
			err := dec.Decode(&f)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("export filter %d: %w", n, err)
			}
			out = append(out, f)
		}
	}
	for i := range out {
		if err := out[i].compile(); err != nil {
			return nil, fmt.Errorf("export filter %d: %w", i+1, err)
		}
	}
	return out, nil
}

// compile checks the event types and compiles the expressions.
func (f *ExportFilter) compile() error {
	for _, t := range f.EventSet {
		k := api.EventKind(t)
		if k == "" {
			return fmt.Errorf("unknown event type %q in event_set (want PROCESS_EXEC, PROCESS_EXIT, PROCESS_CONNECT, PROCESS_THROTTLE or PROCESS_TRACEPOINT)", t)
		}
		f.kinds = append(f.kinds, k)
	}
	var err error
	if f.pod, err = compileAll("pod_regex", f.PodRegex); err != nil {
		return err
	}
	f.binary, err = compileAll("binary_regex", f.BinaryRegex)
	return err
}

func compileAll(field string, exprs []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(exprs))
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", field, e, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// Match reports whether ev matches the filter. Only a filter that went
// through ParseExportFilters matches on event types and expressions.
func (f *ExportFilter) Match(ev *api.ProcessEvent) bool {
	if len(f.kinds) > 0 && !slices.Contains(f.kinds, ev.Kind()) {
		return false
	}
	ns, pod := ev.PodName()
	if len(f.Namespace) > 0 && !slices.Contains(f.Namespace, ns) {
		return false
	}
	if len(f.pod) > 0 && !anyMatch(f.pod, pod) {
		return false
	}
	if len(f.binary) > 0 {
		p := ev.Subject()
		if p == nil || !anyMatch(f.binary, p.Binary) {
			return false
		}
	}
	return true
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// ExportFilters are the exporter's allow and deny lists: an event passes
// when it matches an allow filter (or there is none) and no deny filter.
type ExportFilters struct {
	Allow, Deny []ExportFilter
}

// ParseExportFilterLists parses the allow and deny lists (see
// ParseExportFilters).
func ParseExportFilterLists(allow, deny string) (ExportFilters, error) {
	var fs ExportFilters
	var err error
	if fs.Allow, err = ParseExportFilters(allow); err != nil {
		return fs, fmt.Errorf("export allowlist: %w", err)
	}
	if fs.Deny, err = ParseExportFilters(deny); err != nil {
		return fs, fmt.Errorf("export denylist: %w", err)
	}
	return fs, nil
}

// Pass reports whether ev is exported.
func (fs ExportFilters) Pass(ev *api.ProcessEvent) bool {
	if len(fs.Allow) > 0 && !matchAny(fs.Allow, ev) {
		return false
	}
	return !matchAny(fs.Deny, ev)
}

func matchAny(fs []ExportFilter, ev *api.ProcessEvent) bool {
	for i := range fs {
		if fs[i].Match(ev) {
			return true
		}
	}
	return false
}
