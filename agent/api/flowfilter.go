package api

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// FlowFilter selects flows, in the spirit of hubble observe's filters. The
// zero value selects every flow. Pods are "namespace/name"; a bare name
// takes Namespace (or matches any namespace when Namespace is empty).
type FlowFilter struct {
	Verdict   string   // FORWARDED, DROPPED, AUDIT (case-insensitive)
	FromPod   string   // source pod
	ToPod     string   // destination pod
	Namespace string   // source or destination pod namespace
	Labels    []string // every label (key=value) on the source or the destination
	Identity  uint32   // source or destination identity
	Port      uint16   // source or destination port
	Protocol  string   // TCP, UDP, ICMP (case-insensitive)
	Since     time.Time
	Last      int  // only the last N matching flows of the history
	Follow    bool // keep streaming new flows
}

// Query encodes the filter as URL query parameters for GET /v1/flows.
func (f FlowFilter) Query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("verdict", f.Verdict)
	set("from-pod", f.FromPod)
	set("to-pod", f.ToPod)
	set("namespace", f.Namespace)
	for _, l := range f.Labels {
		q.Add("label", l)
	}
	if f.Identity != 0 {
		q.Set("identity", strconv.FormatUint(uint64(f.Identity), 10))
	}
	if f.Port != 0 {
		q.Set("port", strconv.Itoa(int(f.Port)))
	}
	set("protocol", f.Protocol)
	setWindow(q, f.Since, f.Last, f.Follow)
	return q
}

// ParseFlowFilter decodes Query's parameters. since also takes a duration
// ("5m": flows of the last five minutes).
func ParseFlowFilter(q url.Values, now time.Time) (FlowFilter, error) {
	f := FlowFilter{
		Verdict: q.Get("verdict"), FromPod: q.Get("from-pod"), ToPod: q.Get("to-pod"),
		Namespace: q.Get("namespace"), Labels: q["label"], Protocol: q.Get("protocol"),
	}
	var err error
	if s := q.Get("identity"); s != "" {
		var v uint64
		if v, err = strconv.ParseUint(s, 10, 32); err != nil {
			return f, &FilterError{"identity", s}
		}
		f.Identity = uint32(v)
	}
	if s := q.Get("port"); s != "" {
		var v uint64
		if v, err = strconv.ParseUint(s, 10, 16); err != nil {
			return f, &FilterError{"port", s}
		}
		f.Port = uint16(v)
	}
	f.Since, f.Last, f.Follow, err = parseWindow(q, now)
	return f, err
}

// setWindow encodes the parameters every stream filter has: since, last
// and follow.
func setWindow(q url.Values, since time.Time, last int, follow bool) {
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if last > 0 {
		q.Set("last", strconv.Itoa(last))
	}
	if follow {
		q.Set("follow", "true")
	}
}

// parseWindow decodes setWindow's parameters.
func parseWindow(q url.Values, now time.Time) (since time.Time, last int, follow bool, err error) {
	if s := q.Get("since"); s != "" {
		if since, err = ParseSince(s, now); err != nil {
			return since, last, follow, &FilterError{"since", s}
		}
	}
	if s := q.Get("last"); s != "" {
		if last, err = strconv.Atoi(s); err != nil || last < 0 {
			return since, last, follow, &FilterError{"last", s}
		}
	}
	if s := q.Get("follow"); s != "" {
		if follow, err = strconv.ParseBool(s); err != nil {
			return since, last, follow, &FilterError{"follow", s}
		}
	}
	return since, last, follow, nil
}

// ParseSince parses an RFC 3339 time or a duration before now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// FilterError is an invalid filter parameter.
type FilterError struct{ Param, Value string }

func (e *FilterError) Error() string {
	return "invalid " + e.Param + " filter: " + strconv.Quote(e.Value)
}

// Match reports whether the flow passes the filter (Last and Follow aside).
func (f FlowFilter) Match(fl Flow) bool {
	if f.Verdict != "" && !strings.EqualFold(f.Verdict, fl.Verdict) {
		return false
	}
	if f.FromPod != "" && !podMatch(f.FromPod, f.Namespace, fl.SrcPod) {
		return false
	}
	if f.ToPod != "" && !podMatch(f.ToPod, f.Namespace, fl.DstPod) {
		return false
	}
	if f.Namespace != "" && f.FromPod == "" && f.ToPod == "" &&
		podNamespace(fl.SrcPod) != f.Namespace && podNamespace(fl.DstPod) != f.Namespace {
		return false
	}
	for _, l := range f.Labels {
		if !hasLabel(fl.SrcLabels, l) && !hasLabel(fl.DstLabels, l) {
			return false
		}
	}
	if f.Identity != 0 && fl.SrcIdentity != f.Identity && fl.DstIdentity != f.Identity {
		return false
	}
	if f.Port != 0 && portOf(fl.Source) != f.Port && portOf(fl.Destination) != f.Port {
		return false
	}
	if f.Protocol != "" && !strings.EqualFold(f.Protocol, fl.Protocol) {
		return false
	}
	if !f.Since.IsZero() && fl.Time.Before(f.Since) {
		return false
	}
	return true
}

func podMatch(want, ns, got string) bool {
	if strings.Contains(want, "/") {
		return want == got
	}
	if ns != "" {
		return ns+"/"+want == got
	}
	_, name, ok := strings.Cut(got, "/")
	return ok && name == want
}

func podNamespace(pod string) string {
	ns, _, _ := strings.Cut(pod, "/")
	return ns
}

// hasLabel matches "key=value" (or "source:key=value") against labels in
// "source:key=value" form.
func hasLabel(labels []string, want string) bool {
	for _, l := range labels {
		if l == want {
			return true
		}
		if _, kv, ok := strings.Cut(l, ":"); ok && kv == want {
			return true
		}
	}
	return false
}

func portOf(addrPort string) uint16 {
	i := strings.LastIndexByte(addrPort, ':')
	if i < 0 {
		return 0
	}
	p, _ := strconv.ParseUint(addrPort[i+1:], 10, 16)
	return uint16(p)
}
