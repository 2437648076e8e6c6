package tracingmgr

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// refCompare orders policies by kind, namespace and name: the order in which
// they get rule slots.
func refCompare(a, b tracing.Ref) int {
	return strings.Compare(a.Kind+"\x00"+a.Namespace+"\x00"+a.Name, b.Kind+"\x00"+b.Namespace+"\x00"+b.Name)
}

// execRule is the rule of one selector without its slot, policy and scope.
type execRule struct {
	exact          []string
	prefixes       []string
	notIn          bool
	followChildren bool
	action         procsensor.ExecAction
	signal         uint8
}

// buildRules turns a compiled policy's selectors into rules, one per
// selector in order; an error names the selector that one slot cannot
// express.
func buildRules(c *tracing.Compiled) ([]execRule, error) {
	var out []execRule
	for i, sel := range c.Execs {
		field := fmt.Sprintf("spec.execs selector %d", i+1)
		r, err := binaryRule(sel.Binaries)
		if err != nil {
			return nil, fmt.Errorf("%s.matchBinaries: %w", field, err)
		}
		if r.action, r.signal, err = execAction(sel); err != nil {
			return nil, fmt.Errorf("%s.matchActions: %w", field, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// binaryRule folds ANDed matchBinaries entries into one rule: In sets
// intersect, NotIn sets are removed from them (or unite when there is no
// In), a Prefix entry filters the In set (or intersects with other Prefix
// entries). NotIn together with Prefix and no In needs two tests of the
// path in one slot, which the sensor cannot do. followChildren is on when
// any entry sets it. No entry matches every binary.
func binaryRule(bs []tracing.BinaryMatch) (execRule, error) {
	var r execRule
	var in, notIn, prefixes [][]string
	for _, b := range bs {
		r.followChildren = r.followChildren || b.FollowChildren
		switch b.Op {
		case tracing.BinaryIn:
			in = append(in, b.Values)
		case tracing.BinaryNotIn:
			notIn = append(notIn, b.Values)
		case tracing.BinaryPrefix:
			prefixes = append(prefixes, b.Values)
		default:
			return r, fmt.Errorf("operator %q is not supported", b.Op)
		}
	}
	var excluded []string
	for _, vs := range notIn {
		excluded = append(excluded, vs...)
	}
	switch {
	case len(in) > 0:
		exact := slices.Clone(in[0])
		for _, vs := range in[1:] {
			exact = slices.DeleteFunc(exact, func(p string) bool { return !slices.Contains(vs, p) })
		}
		exact = slices.DeleteFunc(exact, func(p string) bool {
			return slices.Contains(excluded, p) || !hasPrefixOfEach(p, prefixes)
		})
		if len(exact) == 0 {
			return r, fmt.Errorf("the entries together match no binary")
		}
		r.exact = sortedUnique(exact)
	case len(prefixes) > 0 && len(notIn) > 0:
		return r, fmt.Errorf("operators Prefix and NotIn together: not supported yet by this agent (one rule slot tests exact paths or prefixes, not both)")
	case len(prefixes) > 0:
		r.prefixes = intersectPrefixes(prefixes)
		if len(r.prefixes) == 0 {
			return r, fmt.Errorf("the entries together match no binary")
		}
	default:
		// NotIn only (or nothing: NotIn of no path matches every binary).
		r.exact, r.notIn = sortedUnique(excluded), true
	}
	return r, nil
}

// hasPrefixOfEach reports whether p has a prefix from each of the sets
// (true for no set).
func hasPrefixOfEach(p string, sets [][]string) bool {
	for _, set := range sets {
		if !slices.ContainsFunc(set, func(pre string) bool { return strings.HasPrefix(p, pre) }) {
			return false
		}
	}
	return true
}

// intersectPrefixes returns the prefixes a path has when it has a prefix of
// every set: of two prefixes where one extends the other, the longer.
func intersectPrefixes(sets [][]string) []string {
	acc := slices.Clone(sets[0])
	for _, set := range sets[1:] {
		var next []string
		for _, a := range acc {
			for _, b := range set {
				switch {
				case strings.HasPrefix(a, b):
					next = append(next, a)
				case strings.HasPrefix(b, a):
					next = append(next, b)
				}
			}
		}
		acc = next
	}
	return sortedUnique(acc)
}

func sortedUnique[T cmp.Ordered](s []T) []T {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// execAction maps a selector's action to the sensor's.
func execAction(sel tracing.ExecSelector) (procsensor.ExecAction, uint8, error) {
	return ruleAction(sel.Action, sel.Signal, false)
}
