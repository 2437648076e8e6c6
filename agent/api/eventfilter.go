package api

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// EventFilter selects process events, in the spirit of tetra getevents'
// filters. The zero value selects every event. Pod is "namespace/name"; a
// bare name takes Namespace (or matches any namespace when Namespace is
// empty).
type EventFilter struct {
	// Types are event kinds (process_exec, process_exit, process_connect,
	// process_throttle, process_tracepoint; case-insensitive, the
	// "process_" prefix optional): an event of any of them passes.
	Types     []string
	Namespace string // the pod's namespace
	Pod       string
	Binary    string // regular expression on the process's binary
	ExecID    string // the process, or its parent
	// Policy is a tracing policy's name (namespace/name for the namespaced
	// kind): only its process_tracepoint events pass.
	Policy string
	Since  time.Time
	Last   int  // only the last N matching events of the history
	Follow bool // keep streaming new events

	// binary is Binary compiled (by ParseEventFilter or Match).
	binary *regexp.Regexp
}

// Query encodes the filter as URL query parameters for GET /v1/events.
func (f EventFilter) Query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, t := range f.Types {
		q.Add("type", t)
	}
	set("namespace", f.Namespace)
	set("pod", f.Pod)
	set("binary", f.Binary)
	set("exec-id", f.ExecID)
	set("policy", f.Policy)
	setWindow(q, f.Since, f.Last, f.Follow)
	return q
}

// ParseEventFilter decodes Query's parameters. since also takes a duration
// ("5m": events of the last five minutes).
func ParseEventFilter(q url.Values, now time.Time) (EventFilter, error) {
	f := EventFilter{
		Namespace: q.Get("namespace"), Pod: q.Get("pod"), Binary: q.Get("binary"), ExecID: q.Get("exec-id"),
		Policy: q.Get("policy"),
	}
	for _, t := range q["type"] {
		for _, t := range strings.Split(t, ",") {
			if EventKind(t) == "" {
				return f, &FilterError{"type", t}
			}
			f.Types = append(f.Types, t)
		}
	}
	var err error
	if f.Binary != "" {
		if f.binary, err = regexp.Compile(f.Binary); err != nil {
			return f, &FilterError{"binary", f.Binary}
		}
	}
	f.Since, f.Last, f.Follow, err = parseWindow(q, now)
	return f, err
}

// EventKind returns the event kind s names (case-insensitive, with or
// without the "process_" prefix), or "" when it names none.
func EventKind(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasPrefix(s, "process_") {
		s = "process_" + s
	}
	switch s {
	case EventProcessExec, EventProcessExit, EventProcessConnect, EventProcessThrottle, EventProcessTracepoint:
		return s
	}
	return ""
}

// Match reports whether the event passes the filter (Last and Follow
// aside). An invalid Binary expression matches nothing.
func (f EventFilter) Match(e *ProcessEvent) bool {
	if len(f.Types) > 0 && !f.matchType(e.Kind()) {
		return false
	}
	ns, pod := e.PodName()
	if f.Namespace != "" && ns != f.Namespace {
		return false
	}
	if f.Pod != "" && !podMatch(f.Pod, f.Namespace, ns+"/"+pod) {
		return false
	}
	p := e.Subject()
	if f.Binary != "" {
		re := f.binary
		if re == nil {
			var err error
			if re, err = regexp.Compile(f.Binary); err != nil {
				return false
			}
		}
		if p == nil || !re.MatchString(p.Binary) {
			return false
		}
	}
	if f.ExecID != "" && (p == nil || (p.ExecID != f.ExecID && p.ParentExecID != f.ExecID)) {
		return false
	}
	if f.Policy != "" && (e.ProcessTracepoint == nil || e.ProcessTracepoint.PolicyName != f.Policy) {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	return true
}

func (f EventFilter) matchType(kind string) bool {
	for _, t := range f.Types {
		if EventKind(t) == kind {
			return true
		}
	}
	return false
}

// PodName returns the namespace and name of the pod the event is about
// (the subject's pod, or the throttled pod), both "" on the host.
func (e *ProcessEvent) PodName() (namespace, name string) {
	if t := e.ProcessThrottle; t != nil {
		return t.Namespace, t.Pod
	}
	if p := e.Subject(); p != nil && p.Pod != nil {
		return p.Pod.Namespace, p.Pod.Name
	}
	return "", ""
}
