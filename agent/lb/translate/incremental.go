package translate

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/lb"
)

// Service translates one Service into its load-balancing services (sorted
// like Translate's output, before frontends are deduplicated across
// Services: Frontends does that) with what it skipped. in.EndpointSlices
// need only hold the Service's own slices and in.Pods only the pods of its
// namespace (used for a selector Service without slices); in.Services is
// ignored. Service and Frontends together give what TranslateWithDiagnostics
// gives, one Service at a time, for incremental updates.
func Service(in Input, svc *corev1.Service) ([]lb.Service, []Diagnostic) {
	t := translator{in: in, slices: slicesByService(in.EndpointSlices)}
	t.service(svc)
	slices.SortStableFunc(t.out, CompareServices)
	slices.SortStableFunc(t.diags, compareDiagnostics)
	return t.out, slices.Compact(t.diags)
}

// Frontends deduplicates frontends across Services incrementally, the way
// TranslateWithDiagnostics does: of the services claiming a frontend, the
// first in CompareServices order owns it, the others are skipped with a
// diagnostic. The zero value is empty and ready to use.
type Frontends struct {
	claims map[lb.Frontend][]lb.Service // each sorted by CompareServices
}

// Replace swaps the services a Service contributed (old, as last given to
// Replace; nil at first) for new (nil when the Service is gone) and returns
// the frontends whose owner may have changed.
func (f *Frontends) Replace(old, new []lb.Service) []lb.Frontend {
	if f.claims == nil {
		f.claims = make(map[lb.Frontend][]lb.Service)
	}
	touched := make([]lb.Frontend, 0, len(old)+len(new))
	for _, o := range old {
		c := slices.DeleteFunc(f.claims[o.Frontend], func(s lb.Service) bool { return CompareServices(s, o) == 0 })
		if len(c) == 0 {
			delete(f.claims, o.Frontend)
		} else {
			f.claims[o.Frontend] = c
		}
		touched = append(touched, o.Frontend)
	}
	for _, n := range new {
		c := f.claims[n.Frontend]
		i, _ := slices.BinarySearchFunc(c, n, CompareServices)
		f.claims[n.Frontend] = slices.Insert(c, i, n)
		touched = append(touched, n.Frontend)
	}
	slices.SortFunc(touched, compareFrontends)
	return slices.Compact(touched)
}

// Owner returns the service that owns fe, if any claims it.
func (f *Frontends) Owner(fe lb.Frontend) (lb.Service, bool) {
	c := f.claims[fe]
	if len(c) == 0 {
		return lb.Service{}, false
	}
	return c[0], true
}

// Diagnostics returns why the services claiming fe after its owner were
// skipped.
func (f *Frontends) Diagnostics(fe lb.Frontend) []Diagnostic {
	c := f.claims[fe]
	if len(c) < 2 {
		return nil
	}
	out := make([]Diagnostic, 0, len(c)-1)
	for _, s := range c[1:] {
		out = append(out, duplicate(s, c[0].Name))
	}
	return out
}

// Owners returns every frontend's owner, sorted like Translate's output.
func (f *Frontends) Owners() []lb.Service {
	out := make([]lb.Service, 0, len(f.claims))
	for _, c := range f.claims {
		out = append(out, c[0])
	}
	slices.SortFunc(out, CompareServices)
	return out
}

// AllDiagnostics returns the diagnostics of every frontend claimed more
// than once.
func (f *Frontends) AllDiagnostics() []Diagnostic {
	var out []Diagnostic
	for fe, c := range f.claims {
		if len(c) > 1 {
			out = append(out, f.Diagnostics(fe)...)
		}
	}
	return out
}

// duplicate is the diagnostic of s, skipped because prev owns its frontend.
func duplicate(s lb.Service, prev lb.ServiceName) Diagnostic {
	return Diagnostic{
		Service: nsName{s.Name.Namespace, s.Name.Name}.String(),
		Reason:  fmt.Sprintf("%s frontend %s of port %q already used by %s, skipped", s.Kind, s.Frontend, s.Name.Port, prev),
	}
}

func compareFrontends(a, b lb.Frontend) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	return int(a.Proto) - int(b.Proto)
}
