package daemon

import (
	"fmt"
	"os"
)

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// EnableIPForward sets net.ipv4.ip_forward=1. /proc/sys/net is resolved in
// the network namespace of the calling thread.
func EnableIPForward() error {
	if err := os.WriteFile(ipForwardPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable net.ipv4.ip_forward: %w", err)
	}
	return nil
}
