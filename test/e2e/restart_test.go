package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestE2EAgentRestartKeepsConnection: a TCP connection between two pods
// carries requests before, during and after the agent's DaemonSet pod is
// deleted and replaced; it is the same connection throughout (one exec
// session, one socket) and every reply names the server pod.
func TestE2EAgentRestartKeepsConnection(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	client := c.echoPod(t, ns, "client", nil)
	server := c.echoPod(t, ns, "server", nil)

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.exec(ctx, client, inR, outW, "/echo", "stream", server.Status.PodIP+":9000")
		outW.Close()
	}()
	t.Cleanup(func() {
		inW.Close()
		cancel()
		<-done
	})
	lines := bufio.NewScanner(outR)
	next := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			if lines.Scan() {
				got <- lines.Text()
			} else {
				got <- fmt.Sprintf("<stream ended: %v>", lines.Err())
			}
		}()
		select {
		case l := <-got:
			return l
		case <-time.After(15 * time.Second):
			t.Fatal("no reply on the long-lived connection within 15s")
			return ""
		}
	}
	require.True(t, strings.HasPrefix(next(), "connected "), "stream client did not connect")
	seq := 0
	roundTrip := func(phase string) {
		t.Helper()
		seq++
		msg := fmt.Sprintf("%s-%d", phase, seq)
		_, err := fmt.Fprintln(inW, msg)
		require.NoError(t, err)
		require.Equal(t, server.Name+" "+msg, next(), "reply on the long-lived connection (%s)", phase)
	}
	roundTrip("before")

	agents, err := c.cs.CoreV1().Pods("kube-system").List(ctxT(t, 10*time.Second), metav1.ListOptions{LabelSelector: agentSelector})
	require.NoError(t, err)
	require.Len(t, agents.Items, 1, "one agent pod on the single node")
	old := agents.Items[0]
	// Keep talking while the agent is down and coming back.
	fresh := c.replaceAgent(t, &old, func() { roundTrip("during") })
	t.Logf("agent pod %s replaced by %s after %d round trips", old.Name, fresh.Name, seq-1)
	for range 3 {
		roundTrip("after")
	}
	// The restarted agent still wires new pods and knows the old ones.
	eps := c.endpoints(t)
	require.Contains(t, eps, ns+"/"+client.Name)
	require.Contains(t, eps, ns+"/"+server.Name)
	late := c.echoPod(t, ns, "late", nil)
	out, err := c.ask(t, late, "tcp", server.Status.PodIP+":9000", "late")
	require.NoError(t, err)
	require.Equal(t, server.Name+" late", out)
}

// agentSelector selects the agent DaemonSet's pods.
const agentSelector = "app.kubernetes.io/name=sluice,app.kubernetes.io/component=agent"

// replaceAgent deletes the agent pod old and waits up to 120 s for a new
// Ready agent pod on its node, calling during before every look; it returns
// the new pod.
func (c *cluster) replaceAgent(t *testing.T, old *corev1.Pod, during func()) *corev1.Pod {
	t.Helper()
	require.NoError(t, c.cs.CoreV1().Pods("kube-system").Delete(ctxT(t, 30*time.Second), old.Name, metav1.DeleteOptions{}))
	var fresh *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 120*time.Second, true, func(ctx context.Context) (bool, error) {
		during()
		l, err := c.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{
			LabelSelector: agentSelector, FieldSelector: "spec.nodeName=" + old.Spec.NodeName,
		})
		if err != nil {
			return false, nil
		}
		for i := range l.Items {
			p := &l.Items[i]
			if p.UID == old.UID || p.DeletionTimestamp != nil {
				continue
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					fresh = p
					return true, nil
				}
			}
		}
		return false, nil
	})
	require.NoError(t, err, "no new ready agent pod on %s after deleting %s", old.Spec.NodeName, old.Name)
	return fresh
}
