package benchrun

import (
	"fmt"
	"strings"
)

// Outcome is what one case of a benchmark produced: a number, or why not.
type Outcome struct {
	Case     string // configuration (and parameters), e.g. "sluice-tc/1000"
	Sluice   bool   // the configuration runs Sluice (it is not a baseline)
	Measured bool   // at least one sample produced a number
	Reason   string // why not: unavailable, or the first failure
}

// CheckSluiceMeasured returns an error when the run had Sluice cases and
// none of them produced a number: a run in which every Sluice configuration
// was unavailable or failed measured only the baselines, and must not pass.
func CheckSluiceMeasured(outs []Outcome) error {
	var missing []string
	for _, o := range outs {
		if !o.Sluice {
			continue
		}
		if o.Measured {
			return nil
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", o.Case, o.Reason))
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("no Sluice configuration produced a number: %s", strings.Join(missing, "; "))
}
