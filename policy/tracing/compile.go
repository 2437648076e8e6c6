package tracing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "sigs.k8s.io/json"

	"github.com/sluicenet/sluice/policy"
)

// Rejection reasons: every error of Compile wraps one of these (in a
// *policy.FieldError naming the field), so that callers can tell a policy
// this kernel can never run from one a later agent will.
var (
	// ErrKernel: the hook or action needs a kernel feature this kernel
	// lacks (kprobes, fentry/fmod_ret, BPF-LSM).
	ErrKernel = errors.New("not possible on this kernel")
	// ErrNotYet: the field is valid Tetragon but not implemented yet.
	ErrNotYet = errors.New("not supported yet by this agent")
)

// OptionPolicyMode is the spec.options name of the enforcement mode.
const OptionPolicyMode = "policy-mode"

// MaxSignal is the highest signal number Signal accepts (SIGRTMAX).
const MaxSignal = 64

// String names the policy as Kind/Name or Kind/Namespace/Name.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// object is either kind as decoded (both share the spec).
// (Not embedding TypeMeta and ObjectMeta keeps controller-gen from taking it
// for a CRD.)
type object struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Metadata   metav1.ObjectMeta    `json:"metadata"`
	Spec       *TracingPolicySpec   `json:"spec"`
	Status     *policy.PolicyStatus `json:"status,omitempty"`
}

// Compile validates a SluiceTracingPolicy or SluiceTracingPolicyNamespaced
// and compiles it. Unknown fields are rejected; every problem is reported
// (joined), each as a *policy.FieldError naming the field path and saying
// why. The namespaced kind takes its namespace from metadata.namespace
// (required; the caller fills in a source's default namespace first).
func Compile(obj *unstructured.Unstructured) (*Compiled, error) {
	ref := Ref{Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
	if err := checkHeader(obj.GetAPIVersion(), ref); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	js, err := json.Marshal(numbersAsStrings(obj.Object))
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", ref, err)
	}
	var o object
	strict, err := kjson.UnmarshalStrict(js, &o)
	if err != nil {
		return nil, fmt.Errorf("%s: decode: %w", ref, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %w", ref, errors.Join(strict...))
	}
	c := &compiler{out: &Compiled{Ref: ref, Mode: ModeEnforce}}
	if o.Spec == nil {
		c.add("spec", errors.New("required"))
	} else {
		c.spec(o.Spec)
	}
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("%s: %w", ref, errors.Join(c.errs...))
	}
	return c.out, nil
}

// checkHeader checks apiVersion, kind, name and namespace.
func checkHeader(apiVersion string, ref Ref) error {
	switch {
	case apiVersion != policy.APIVersion:
		return &policy.FieldError{Path: "apiVersion",
			Err: fmt.Errorf("%q is not supported (want %s)", apiVersion, policy.APIVersion)}
	case ref.Kind != KindTracingPolicy && ref.Kind != KindTracingPolicyNamespaced:
		return &policy.FieldError{Path: "kind",
			Err: fmt.Errorf("%q is not a tracing policy kind (want %s or %s)", ref.Kind, KindTracingPolicy, KindTracingPolicyNamespaced)}
	case ref.Name == "":
		return &policy.FieldError{Path: "metadata.name", Err: errors.New("required")}
	case ref.Kind == KindTracingPolicyNamespaced && ref.Namespace == "":
		return &policy.FieldError{Path: "metadata.namespace", Err: fmt.Errorf("required for %s", ref.Kind)}
	case ref.Kind == KindTracingPolicy && ref.Namespace != "":
		return &policy.FieldError{Path: "metadata.namespace", Err: fmt.Errorf("must be empty for %s (cluster-scoped)", ref.Kind)}
	}
	return nil
}

type compiler struct {
	out   *Compiled
	errs  []error
	lists map[string][]uint32 // spec.lists by name: syscall numbers
}

func (c *compiler) add(path string, err error) {
	c.errs = append(c.errs, &policy.FieldError{Path: path, Err: err})
}

func (c *compiler) addf(path, format string, args ...any) {
	c.add(path, fmt.Errorf(format, args...))
}

// kernel rejects a field this kernel can never run.
func (c *compiler) kernel(path, why string) {
	c.add(path, fmt.Errorf("%s: %w", why, ErrKernel))
}

// field is a field name and whether the object sets it.
type field struct {
	name string
	set  bool
}

// notYet rejects, in order, the fields that are set and that this agent
// does not implement yet.
func (c *compiler) notYet(prefix string, fields []field) {
	for _, f := range fields {
		if f.set {
			c.add(prefix+f.name, ErrNotYet)
		}
	}
}

func (c *compiler) spec(s *TracingPolicySpec) {
	if len(s.KProbes) > 0 {
		c.kernel("spec.kprobes", "this kernel has no kprobes (CONFIG_KPROBES is off)")
	}
	if len(s.Fentries) > 0 {
		c.kernel("spec.fentries", "fentry programs do not load on this kernel")
	}
	if len(s.LsmHooks) > 0 {
		c.kernel("spec.lsmhooks", "BPF-LSM programs do not load on this kernel")
	}
	if len(s.Enforcers) > 0 {
		c.kernel("spec.enforcers", "enforcers override syscall return values with kprobes or fmod_ret, which this kernel cannot load")
	}
	c.notYet("spec.", []field{
		{"uprobes", len(s.UProbes) > 0}, {"usdts", len(s.Usdts) > 0}, {"loader", s.Loader},
		{"selectorsMacros", s.SelectorsMacros != nil},
		{"hostSelector", s.HostSelector != nil},
	})
	c.options(s.Options)
	if s.PodSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(s.PodSelector); err != nil {
			c.add("spec.podSelector", err)
		}
		c.out.PodSelector = s.PodSelector.DeepCopy()
	}
	if s.ContainerSelector != nil {
		c.containerSelector(s.ContainerSelector)
	}
	c.lists = c.compileLists(s.Lists)
	for i := range s.Tracepoints {
		c.tracepoint(fmt.Sprintf("spec.tracepoints[%d]", i), &s.Tracepoints[i])
	}
	for i, e := range s.Execs {
		path := fmt.Sprintf("spec.execs[%d].selectors", i)
		if len(e.Selectors) == 0 {
			c.add(path, errors.New("required: an exec entry needs at least one selector"))
		}
		for j := range e.Selectors {
			c.execSelector(fmt.Sprintf("%s[%d]", path, j), &e.Selectors[j])
		}
	}
	for i, e := range s.Connects {
		c.connect(fmt.Sprintf("spec.connects[%d].selectors", i), e)
	}
	if len(s.Execs)+len(s.Tracepoints)+len(s.Connects) == 0 && len(c.errs) == 0 {
		c.add("spec.execs", errors.New("required: the policy has nothing to enforce or monitor "+
			"(this agent runs spec.execs, spec.tracepoints and spec.connects selectors)"))
	}
}

func (c *compiler) options(opts []OptionSpec) {
	seen := false
	for i, o := range opts {
		path := fmt.Sprintf("spec.options[%d]", i)
		if o.Name != OptionPolicyMode {
			c.addf(path+".name", "unknown option %q (known: %s)", o.Name, OptionPolicyMode)
			continue
		}
		if seen {
			c.addf(path+".name", "%s given twice", OptionPolicyMode)
		}
		seen = true
		switch m := Mode(o.Value); m {
		case ModeEnforce, ModeMonitor:
			c.out.Mode = m
		default:
			c.addf(path+".value", "policy-mode %q is not %s or %s", o.Value, ModeEnforce, ModeMonitor)
		}
	}
}

// parseRateLimit parses Tetragon's rateLimit: seconds, or a number with an
// s, m or h suffix (any Go duration is accepted too).
func parseRateLimit(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.ParseUint(s, 10, 32); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a period (seconds, or with an s, m or h suffix)", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive period", s)
	}
	return d, nil
}
