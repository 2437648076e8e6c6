package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/sluicenet/sluice/identity"
)

// Ref names a policy object (kind, namespace, name).
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

func (k Ref) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// Policy is a validated, compiled policy, ready for the Resolver. Build it
// with FromSluicePolicy, FromClusterwidePolicy or FromNetworkPolicy.
type Policy struct {
	Key Ref
	// Warnings lists parts that were dropped with a reason (SCTP ports of a
	// Kubernetes NetworkPolicy); the policy is still stricter, never looser.
	Warnings []string
	rules    []*rule
}

// rule is one compiled rule: the endpoints it selects, the direction, the
// peers and the L4 matches.
type rule struct {
	ref     RuleRef
	subject labelSelector
	dir     Direction
	deny    bool
	// enforce puts selected endpoints into default deny in dir.
	enforce bool
	// anyPeer: all peers (identity 0). Otherwise peers (none: nothing).
	anyPeer bool
	peers   []peer
	// addrs are the rule's address peers (address semantics: matched on the
	// peer's IPv4 address, whoever holds it; see addr.go).
	addrs []addrBlock
	// allL4: all protocols and ports. Otherwise l4s (none: nothing).
	allL4    bool
	l4s      []l4
	hasNamed bool

	// peerIDs caches the identities the peers select (selector cache).
	peerIDs map[identity.NumericIdentity]struct{}
}

func (r *rule) selectsPeer(id identity.NumericIdentity, ls identity.Labels) bool {
	for _, p := range r.peers {
		if p.matches(id, ls) {
			return true
		}
	}
	return false
}

// Prefixes returns every CIDR (and exception) of the policy's CIDR-identity
// peers: the agent allocates a CIDR identity for each and puts it into the
// IP cache, so that the rules can select them. Address peers (ipBlock, see
// addr.go) need none.
func (p *Policy) Prefixes() []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, r := range p.rules {
		for _, pe := range r.peers {
			if pe.kind != peerCIDR {
				continue
			}
			for _, q := range append([]netip.Prefix{pe.cidr}, pe.except...) {
				if !seen[q] {
					seen[q] = true
					out = append(out, q)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}

// String describes the compiled rules (for debugging and the CLI).
func (p *Policy) String() string {
	var b strings.Builder
	b.WriteString(p.Key.String())
	for _, r := range p.rules {
		fmt.Fprintf(&b, "\n  %s: subject %s", r.ref, r.subject)
		if r.deny {
			b.WriteString(" deny")
		}
		switch {
		case r.anyPeer:
			b.WriteString(" peers any")
		default:
			ps := make([]string, 0, len(r.peers)+len(r.addrs))
			for _, pe := range r.peers {
				ps = append(ps, pe.String())
			}
			for _, b := range r.addrs {
				ps = append(ps, b.String())
			}
			b.WriteString(" peers [" + strings.Join(ps, " | ") + "]")
		}
		if r.allL4 {
			b.WriteString(" l4 any")
		} else {
			ls := make([]string, len(r.l4s))
			for i, l := range r.l4s {
				if l.name != "" {
					ls[i] = ProtoName(l.proto) + "/" + l.name
				} else {
					ls[i] = Key{Proto: l.proto, PortLo: l.lo, PortHi: l.hi}.String()[len("ingress peer=0 "):]
				}
			}
			b.WriteString(" l4 [" + strings.Join(ls, " ") + "]")
		}
	}
	return b.String()
}

// FieldError is a validation error at a field path.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrUnsupported marks fields Sluice rejects (L7, FQDN, services, groups…).
var ErrUnsupported = errors.New("not supported")

// errs collects field errors.
type errs []error

func (e *errs) add(path string, err error) {
	*e = append(*e, &FieldError{Path: path, Err: err})
}

func (e *errs) addf(path, format string, args ...any) {
	e.add(path, fmt.Errorf(format, args...))
}

func (e *errs) unsupported(path, what string) {
	e.add(path, fmt.Errorf("%s %w (rejected, not ignored)", what, ErrUnsupported))
}

func (e errs) err() error {
	if len(e) == 0 {
		return nil
	}
	return errors.Join(e...)
}

func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return p, fmt.Errorf("%q is not a valid CIDR", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		return p, fmt.Errorf("%q: use the IPv4 form", s)
	}
	return p.Masked(), nil
}
