// Command coredns is CoreDNS with only the plugins the local cluster's offline Corefile uses (hack/k8s/coredns.yaml):
// the kubernetes plugin answers for cluster.local and the reverse zones, nothing forwards off the machine. It also
// serves as /coredns in the conformance agnhost image (hack/k8s/build-e2e.sh), where the upstream DNS tests run it with
// a Corefile of hosts and log. The full upstream binary links every cloud provider's SDK; this one builds in a fraction
// of the time.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver" // the DNS server type
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
