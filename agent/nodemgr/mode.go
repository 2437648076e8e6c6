package nodemgr

import "fmt"

// Mode is how traffic to remote PodCIDRs is carried.
type Mode string

// Routing modes.
const (
	ModeNative Mode = "native"
	ModeVXLAN  Mode = "vxlan"
	ModeNone   Mode = "none"
)

// ParseMode parses "native", "vxlan" or "none" ("" is native).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeNative:
		return ModeNative, nil
	case ModeVXLAN, ModeNone:
		return Mode(s), nil
	}
	return "", fmt.Errorf("routing mode %q: want native, vxlan or none", s)
}
