package translate

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/lb"
)

// The Service annotations that choose a Service's forwarding mode and
// backend selection over the node's --lb-mode and --lb-algorithm. Cilium's
// names (1.16+) are honoured too, so manifests written for Cilium keep
// their meaning; when a Service carries both, Sluice's wins.
const (
	AnnotationLBMode            = "service.sluice.io/lb-mode"
	AnnotationLBAlgorithm       = "service.sluice.io/lb-algorithm"
	CiliumAnnotationForwardMode = "service.cilium.io/forwarding-mode"
	CiliumAnnotationLBAlgorithm = "service.cilium.io/lb-algorithm"
)

// LBDefaults are the node's load-balancing defaults and what it cannot do,
// which the Services' annotations are resolved against.
type LBDefaults struct {
	// Mode is --lb-mode ("" is snat).
	Mode lb.Mode
	// Algorithm is --lb-algorithm ("" is random).
	Algorithm lb.Algorithm
	// NoDSR, when set, says why this node cannot send DSR (VXLAN routing):
	// a Service asking dsr or hybrid gets snat, with that reason.
	NoDSR string
	// NoMaglev, when set, says why this node cannot select by Maglev (the
	// programs were loaded without a table size): a Service asking maglev
	// gets random, with that reason.
	NoMaglev string
}

// EffectiveMode is the mode of s, a service translated with d: its own, else
// the node's; "" for a frontend the mode does not concern (ClusterIP,
// HostPort: only flows arriving from outside to remote backends have one).
func (d LBDefaults) EffectiveMode(s lb.Service) lb.Mode {
	if !s.Kind.External() || s.Kind == lb.HostPort {
		return ""
	}
	if s.Mode != "" {
		return s.Mode
	}
	return d.mode()
}

// EffectiveAlgorithm is the algorithm of s: its own, else the node's.
func (d LBDefaults) EffectiveAlgorithm(s lb.Service) lb.Algorithm {
	if s.Algorithm != "" {
		return s.Algorithm
	}
	return d.algorithm()
}

func (d LBDefaults) mode() lb.Mode {
	if d.Mode == "" {
		return lb.ModeSNAT
	}
	return d.Mode
}

func (d LBDefaults) algorithm() lb.Algorithm {
	if d.Algorithm == "" {
		return lb.Random
	}
	return d.Algorithm
}

// serviceLB is what svc's annotations make of its load balancing on a node
// with defaults d: the algorithm and the mode for frontends reached from
// outside ("": the node's default applies, no annotation or a bad one), and
// a warning for every annotation not honoured as written.
type serviceLB struct {
	algorithm lb.Algorithm
	mode      lb.Mode
	warnings  []string
}

// annotation returns the value of the first of keys svc carries, with its
// key, and a warning when a later key is set to something else (ignored).
func annotation(svc *corev1.Service, keys ...string) (key, value string, warning string) {
	for _, k := range keys {
		v, ok := svc.Annotations[k]
		if !ok {
			continue
		}
		if key == "" {
			key, value = k, v
		} else if norm(v) != norm(value) && warning == "" {
			warning = fmt.Sprintf("annotation %s=%q ignored: %s=%q is set", k, v, key, value)
		}
	}
	return key, value, warning
}

func norm(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

func resolveServiceLB(svc *corev1.Service, d LBDefaults) serviceLB {
	var out serviceLB
	warn := func(w string) {
		if w != "" {
			out.warnings = append(out.warnings, w)
		}
	}
	key, v, w := annotation(svc, AnnotationLBMode, CiliumAnnotationForwardMode)
	warn(w)
	if key != "" {
		switch m := lb.Mode(norm(v)); m {
		case lb.ModeSNAT, lb.ModeDSR, lb.ModeHybrid:
			out.mode = m
			if m != lb.ModeSNAT && d.NoDSR != "" {
				out.mode = lb.ModeSNAT
				warn(fmt.Sprintf("annotation %s=%q: this node cannot send DSR (%s); using snat", key, v, d.NoDSR))
			}
		default:
			warn(fmt.Sprintf("annotation %s=%q: want snat, dsr or hybrid; using the node's mode %s", key, v, d.mode()))
		}
	}
	key, v, w = annotation(svc, AnnotationLBAlgorithm, CiliumAnnotationLBAlgorithm)
	warn(w)
	if key != "" {
		switch a := lb.Algorithm(norm(v)); a {
		case lb.Random, lb.Maglev:
			out.algorithm = a
			if a == lb.Maglev && d.NoMaglev != "" {
				out.algorithm = lb.Random
				warn(fmt.Sprintf("annotation %s=%q: this node cannot select by Maglev (%s); using random", key, v, d.NoMaglev))
			}
		default:
			warn(fmt.Sprintf("annotation %s=%q: want random or maglev; using the node's algorithm %s", key, v, d.algorithm()))
		}
	}
	return out
}
