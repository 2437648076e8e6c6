package policymgr

import "fmt"

// RejectedMode says what the endpoints a rejected policy selects get (the
// agent's --rejected-policy).
type RejectedMode string

const (
	// RejectedDeny puts them into default deny in the directions the
	// policy covers (fail closed). It is the default.
	RejectedDeny RejectedMode = "deny"
	// RejectedIgnore enforces nothing of a rejected policy.
	RejectedIgnore RejectedMode = "ignore"
)

// ParseRejectedMode parses --rejected-policy ("" is RejectedDeny).
func ParseRejectedMode(s string) (RejectedMode, error) {
	switch RejectedMode(s) {
	case "", RejectedDeny:
		return RejectedDeny, nil
	case RejectedIgnore:
		return RejectedIgnore, nil
	}
	return "", fmt.Errorf("rejected policy mode %q: want %s or %s", s, RejectedDeny, RejectedIgnore)
}
