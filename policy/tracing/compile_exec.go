package tracing

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// execSelector compiles one exec selector: matchBinaries (required) and at
// most one matchActions entry (none: Post). The other process filters are
// not evaluated at sched_process_exec yet.
func (c *compiler) execSelector(path string, s *Selector) {
	c.notYet(path+".", []field{
		{"matchPIDs", len(s.MatchPIDs) > 0}, {"matchArgs", len(s.MatchArgs) > 0}, {"matchData", len(s.MatchData) > 0},
		{"matchReturnArgs", len(s.MatchReturnArgs) > 0}, {"matchParentBinaries", len(s.MatchParentBinaries) > 0},
		{"matchNamespaces", len(s.MatchNamespaces) > 0}, {"matchNamespaceChanges", len(s.MatchNamespaceChanges) > 0},
		{"matchCapabilities", len(s.MatchCapabilities) > 0}, {"matchCapabilityChanges", len(s.MatchCapabilityChanges) > 0},
		{"matchWorkloads", s.MatchWorkloads != nil}, {"macros", len(s.Macros) > 0},
	})
	if len(s.MatchReturnActions) > 0 {
		c.addf(path+".matchReturnActions", "an exec has no return value to act on")
	}
	sel := ExecSelector{Action: ActionPost}
	if len(s.MatchBinaries) == 0 {
		c.addf(path+".matchBinaries", "required: an exec selector without binaries would match every exec")
	}
	for i, b := range s.MatchBinaries {
		if m, ok := c.binaries(fmt.Sprintf("%s.matchBinaries[%d]", path, i), b); ok {
			sel.Binaries = append(sel.Binaries, m)
		}
	}
	a := c.actions(path, s.MatchActions, hookExec)
	// An exec posts once per new image: there is nothing to limit per
	// process, and the exec rules do not limit per binary.
	c.notHere(path, s.MatchActions, a.RateLimit, "spec.execs")
	sel.Action, sel.Signal, sel.RateLimit = a.Action, a.Signal, metav1.Duration{Duration: a.RateLimit}
	c.out.Execs = append(c.out.Execs, sel)
}

// binaries compiles a matchBinaries or matchParentBinaries entry.
func (c *compiler) binaries(path string, b BinarySelector) (BinaryMatch, bool) {
	ok := true
	switch BinaryOp(b.Operator) {
	case BinaryIn, BinaryNotIn, BinaryPrefix:
	case "NotPrefix", "Postfix", "NotPostfix":
		c.add(path+".operator", fmt.Errorf("%s: %w", b.Operator, ErrNotYet))
		ok = false
	default:
		c.addf(path+".operator", "%q is not In, NotIn or Prefix", b.Operator)
		ok = false
	}
	if len(b.Values) == 0 {
		c.addf(path+".values", "required")
		ok = false
	}
	for i, v := range b.Values {
		if !strings.HasPrefix(v, "/") {
			c.addf(fmt.Sprintf("%s.values[%d]", path, i), "%q is not an absolute path", v)
			ok = false
		}
	}
	return BinaryMatch{Op: BinaryOp(b.Operator), Values: b.Values, FollowChildren: b.FollowChildren}, ok
}

// notHere rejects the valid rateLimit (parsed: limit) of matchActions in the
// hook named where (its rules have no rate limit); an invalid one has its
// own error already.
func (c *compiler) notHere(path string, acts []ActionSelector, limit time.Duration, where string) {
	for i, m := range acts {
		if m.RateLimit != "" && limit > 0 {
			c.add(fmt.Sprintf("%s.matchActions[%d].rateLimit", path, i), fmt.Errorf("in %s: %w", where, ErrNotYet))
		}
	}
}
