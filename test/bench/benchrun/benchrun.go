// Package benchrun is what the benchmark drivers' main functions share: the
// root check, a context cancelled on Ctrl-C (so every sample still cleans up)
// and the exit status.
package benchrun

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run as root with a context cancelled by SIGINT or SIGTERM, then
// exits: 2 with the error run returns, 1 when run reports a failed
// measurement. needs says what root is needed for.
func Main(name, needs string, run func(ctx context.Context) (ok bool, err error)) {
	if os.Geteuid() != 0 {
		Fatal(name, "needs root (%s)", needs)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ok, err := run(ctx)
	stop()
	if err != nil {
		Fatal(name, "%v", err)
	}
	if !ok {
		os.Exit(1)
	}
}

// Fatal prints "name: message" on stderr and exits with status 2.
func Fatal(name, format string, args ...any) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
	os.Exit(2)
}
