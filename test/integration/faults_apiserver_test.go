package integration

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/test/harness"
	"github.com/sluicenet/sluice/test/harness/apiserver"
)

// The API server away (faults campaign, scenario apiserver_away): an agent in
// Kubernetes mode whose kube-apiserver is stopped for two minutes (10 s in
// quick mode) keeps the dataplane as it was: an allowed pod answers and a
// pod behind a deny-all ingress policy stays unreachable, checked every half
// second throughout; when the API server is back, the agent catches up with
// a policy change made right after (the deny policy removed: the pod
// answers; a new one on the other pod: it stops answering).
func TestPrivilegedFaultAPIServerAway(t *testing.T) {
	away := 120 * time.Second
	if os.Getenv("SLUICE_FAULTS_QUICK") == "1" {
		away = 10 * time.Second
	}
	node := harness.NewNode(t, harness.NodeOptions{})
	apis := apiserver.Start(t, node.NS)
	cs := apis.Client
	ctx := context.Background()
	for _, p := range []struct{ name, app string }{{"client", "client"}, {"web", "web"}, {"locked", "locked"}} {
		createPod(t, cs, node.Name, p.name, p.app)
	}
	node.StartAgentWith(t, harness.AgentOptions{Kubeconfig: apis.Kubeconfig})
	client, web, locked := node.AddPod(t, "client"), node.AddPod(t, "web"), node.AddPod(t, "locked")
	servePods(t, web, locked)
	denyIngress(t, cs, "deny-locked", "locked")
	reachable := func(p *harness.Pod) bool {
		got, err := harness.Ask(client.NS, p.Addr(podPort), 300*time.Millisecond)
		return err == nil && got == p.Name
	}
	require.Eventually(t, func() bool { return reachable(web) && !reachable(locked) }, 20*time.Second, 100*time.Millisecond,
		"the deny policy in place before the API server goes")

	apis.StopAPIServer()
	start := time.Now()
	checks, allowedFailed, deniedPassed := 0, 0, 0
	for time.Since(start) < away {
		checks++
		if !reachable(web) {
			allowedFailed++
		}
		if reachable(locked) {
			deniedPassed++
		}
		_, err := node.Client().Healthz(ctx)
		require.NoError(t, err, "the agent answers while its API server is away")
		time.Sleep(500 * time.Millisecond)
	}
	awayFor := time.Since(start)
	apis.StartAgain(t)
	back := time.Now()
	require.NoError(t, cs.NetworkingV1().NetworkPolicies("default").Delete(ctx, "deny-locked", metav1.DeleteOptions{}))
	denyIngress(t, cs, "deny-web", "web")
	require.Eventually(t, func() bool { return reachable(locked) && !reachable(web) }, 60*time.Second, 100*time.Millisecond,
		"the agent caught up with the changes made after the API server came back")
	caughtUp := time.Since(back)
	faultResult(t, "apiserver_away", fmt.Sprintf("seconds=%.0f", awayFor.Seconds()), fmt.Sprintf("checks=%d", checks),
		fmt.Sprintf("allowed_failed=%d", allowedFailed), fmt.Sprintf("denied_passed=%d", deniedPassed),
		fmt.Sprintf("caught_up_s=%.1f", caughtUp.Seconds()))
	require.Zero(t, allowedFailed, "an allowed pod stopped answering while the API server was away")
	require.Zero(t, deniedPassed, "a denied pod answered while the API server was away")
}
