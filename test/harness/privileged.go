package harness

import (
	"os"
)

// PrivilegedEnv enables tests that need root, network namespaces and BPF.
const PrivilegedEnv = "SLUICE_PRIVILEGED_TESTS"

// RequirePrivileged skips tb unless SLUICE_PRIVILEGED_TESTS=1. When the
// variable is set but the process is not root, the test fails: CI must never
// pass by skipping.
func RequirePrivileged(tb T) {
	tb.Helper()
	if os.Getenv(PrivilegedEnv) != "1" {
		tb.Skipf("privileged test: set %s=1 and run as root", PrivilegedEnv)
	}
	if os.Geteuid() != 0 {
		tb.Fatalf("%s=1 but not running as root", PrivilegedEnv)
	}
}
