package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/atomicfile"
	"github.com/sluicenet/sluice/test/bench/services"
)

// writeManifests writes svcs into dir/name atomically (temporary file, then
// rename), so the agent's watcher never sees half a file.
func writeManifests(dir, name string, svcs []services.Service) error {
	err := atomicfile.Write(filepath.Join(dir, name), 0o600, func(w io.Writer) error {
		return services.WriteManifests(w, svcs)
	})
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// programmed counts how many frontends of want the agent's load-balancing
// maps hold (as the kernel holds them: GET /v1/bpf/lb, `sluice bpf lb list`),
// counting only entries with at least one backend.
func programmed(ctx context.Context, c *api.Client, want map[netip.AddrPort]bool) (int, error) {
	m, err := c.LBMaps(ctx)
	if err != nil {
		return 0, fmt.Errorf("dump LB maps: %w", err)
	}
	n := 0
	for _, s := range m.Services {
		ap, err := netip.ParseAddrPort(s.Frontend)
		if err != nil || s.Protocol != "TCP" || len(s.BackendIDs) == 0 {
			continue
		}
		if want[ap] {
			n++
		}
	}
	return n, nil
}

// waitProgrammed polls the LB maps until every frontend of svcs is there and
// returns the time since start. Poll resolution is the dump time plus 10ms.
func waitProgrammed(ctx context.Context, c *api.Client, svcs []services.Service, start time.Time, timeout time.Duration) (time.Duration, error) {
	want := map[netip.AddrPort]bool{}
	for _, s := range svcs {
		want[s.Frontend()] = true
	}
	deadline := start.Add(timeout)
	last := -1
	var lastErr error
	for {
		n, err := programmed(ctx, c, want)
		if err == nil && n == len(want) {
			return time.Since(start), nil
		}
		last, lastErr = n, err
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d services in the LB maps after %v (last error: %v)", last, len(want), timeout, lastErr)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
}
