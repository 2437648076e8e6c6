package harness

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// CIDRs the simulated nodes use. They are blackholed in the host netns while
// tests run, so a datapath bug can never route test traffic off the machine.
const (
	PodCIDR     = "10.244.0.0/16"
	ServiceCIDR = "10.96.0.0/12"
)

var blackholeOnce sync.Once

// Blackhole installs blackhole routes for PodCIDR and ServiceCIDR in the
// host's netns for the rest of this test process. Each process uses its own
// route metric (its PID) so that parallel test binaries never remove each
// other's routes; the routes go away in the cleanup of the test that added
// them first.
func Blackhole(tb T) {
	tb.Helper()
	blackholeOnce.Do(func() {
		metric := fmt.Sprint(os.Getpid()%1000000 + 1000)
		for _, cidr := range []string{PodCIDR, ServiceCIDR} {
			run(tb, "ip", "route", "add", "blackhole", cidr, "metric", metric)
		}
		tb.Cleanup(func() {
			for _, cidr := range []string{PodCIDR, ServiceCIDR} {
				exec.Command("ip", "route", "del", "blackhole", cidr, "metric", metric).Run()
			}
			blackholeOnce = sync.Once{}
		})
	})
}
