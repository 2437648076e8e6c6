package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/test/harness"
)

// TestE2EAPIServerRestart: kube-apiserver is stopped and started again
// (hack/local-cluster.sh restart-apiserver) while a pod-to-pod TCP
// connection carries a request every 100 ms. The connection is opened from
// inside the client pod's network namespace by this process, so it does not
// depend on the API server (an exec session would be proxied by it). Every
// reply names the server pod and none is missed. After the restart, a new
// Service and a new backend pod work through the ClusterIP: the agent's
// informers re-synced. The agent's container was not restarted.
func TestE2EAPIServerRestart(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	client := c.echoPod(t, ns, "client", nil)
	server := c.echoPod(t, ns, "server", nil)
	agentBefore := c.agentPod(t)

	ep, ok := c.endpoints(t)[ns+"/"+client.Name]
	require.True(t, ok, "agent has no endpoint for %s/%s", ns, client.Name)
	require.True(t, strings.HasSuffix(filepath.Dir(ep.NetNS), "/run/netns"), "netns %q is not a named netns", ep.NetNS)
	conn, err := harness.Dial(&harness.NetNS{Name: filepath.Base(ep.NetNS)}, "tcp4", "", server.Status.PodIP+":9000", 5*time.Second)
	require.NoError(t, err, "dial %s from the client pod's netns %s", server.Status.PodIP, ep.NetNS)
	t.Cleanup(func() { conn.Close() })

	// The stream: one request every 100 ms until stopped; the first failure ends it.
	var (
		mu     sync.Mutex
		sent   int
		failed error
	)
	stop := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		rd := bufio.NewReader(conn)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			msg := fmt.Sprintf("seq-%d", i)
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			err := func() error {
				if _, err := fmt.Fprintln(conn, msg); err != nil {
					return fmt.Errorf("write %s: %w", msg, err)
				}
				line, err := rd.ReadString('\n')
				if err != nil {
					return fmt.Errorf("read reply to %s: %w", msg, err)
				}
				if got, want := strings.TrimSpace(line), server.Name+" "+msg; got != want {
					return fmt.Errorf("reply %q, want %q", got, want)
				}
				return nil
			}()
			mu.Lock()
			if err != nil {
				failed = err
			} else {
				sent++
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-streamDone
	})
	progress := func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return sent, failed
	}
	waitProgress := func(phase string, beyond int) int {
		t.Helper()
		var n int
		var err error
		require.Eventually(t, func() bool {
			n, err = progress()
			return err != nil || n >= beyond+5
		}, 15*time.Second, 50*time.Millisecond, "long-lived connection made no progress %s", phase)
		require.NoError(t, err, "long-lived connection %s", phase)
		return n
	}
	before := waitProgress("before the restart", 0)

	script := envOr("SLUICE_LOCAL_CLUSTER", "../../hack/local-cluster.sh")
	t0 := time.Now()
	out, err := exec.CommandContext(ctxT(t, 3*time.Minute), script, "restart-apiserver").CombinedOutput()
	require.NoError(t, err, "%s restart-apiserver: %s", script, out)
	t.Logf("API server restarted in %v: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(string(out)))
	during, err := progress()
	require.NoError(t, err, "long-lived connection during the API server restart")
	require.Greater(t, during, before, "no reply on the long-lived connection while the API server restarted")
	after := waitProgress("after the restart", during)

	// A new Service and backend, created once the API server is back, work through the ClusterIP.
	sel := map[string]string{"app": "after-restart"}
	backend := c.echoPod(t, ns, "backend-after", sel)
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "after-restart"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	vip := svc.Spec.ClusterIP + ":80"
	var reply string
	err = wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		reply, err = c.ask(t, client, "tcp", vip, "new-svc")
		return err == nil, nil
	})
	require.NoError(t, err, "new Service %s after the API server restart: last reply %q", vip, reply)
	require.Equal(t, backend.Name+" new-svc", reply, "reply through the new ClusterIP names the new backend")

	final := waitProgress("after the new Service", after)
	close(stop)
	<-streamDone
	_, err = progress()
	require.NoError(t, err)
	t.Logf("long-lived connection: %d replies before, %d by the end of the restart, %d in all, none missed", before, during, final)

	agentAfter := c.agentPod(t)
	require.Equal(t, agentBefore.UID, agentAfter.UID, "agent pod replaced")
	require.Equal(t, agentBefore.Status.ContainerStatuses[0].ContainerID, agentAfter.Status.ContainerStatuses[0].ContainerID, "agent container replaced")
	require.Zero(t, agentAfter.Status.ContainerStatuses[0].RestartCount, "agent container restarted")
}

// agentPod returns the single agent DaemonSet pod.
func (c *cluster) agentPod(t *testing.T) *corev1.Pod {
	t.Helper()
	l, err := c.cs.CoreV1().Pods("kube-system").List(ctxT(t, 10*time.Second), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=sluice,app.kubernetes.io/component=agent"})
	require.NoError(t, err)
	require.Len(t, l.Items, 1, "one agent pod on the single node")
	p := &l.Items[0]
	require.NotEmpty(t, p.Status.ContainerStatuses, "agent pod %s has no container status", p.Name)
	return p
}
