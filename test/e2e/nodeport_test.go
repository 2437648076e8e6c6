package e2e

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/test/harness"
)

// The NodePort test device hack/local-cluster.sh creates: the agent's host
// programs attach to it (--devices), never to the machine's uplink; the
// "external" client lives in extNetNS and the node answers at extNodeIP.
const (
	extNetNS  = "sluice-e2e-ext"
	extNodeIP = "203.0.113.1"
)

// TestE2ENodePortFromOutside: a client outside the node (a netns behind the
// node's test device) reaches a NodePort Service at the node's address on
// that device, and both backends answer, each naming itself.
func TestE2ENodePortFromOutside(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	sel := map[string]string{"app": "echo-np"}
	c.echoPod(t, ns, "np-1", sel)
	c.echoPod(t, ns, "np-2", sel)
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-np"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	np := svc.Spec.Ports[0].NodePort
	require.NotZero(t, np)
	ext := &harness.NetNS{Name: extNetNS}
	addr := fmt.Sprintf("%s:%d", extNodeIP, np)

	seen := map[string]int{}
	var last string
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := askFromNetNS(ext, addr, "np")
		last = fmt.Sprintf("out=%q err=%v", out, err)
		if err != nil {
			return false, nil
		}
		name, msg, _ := strings.Cut(out, " ")
		require.Equal(t, "np", msg, "reply %q", out)
		require.Contains(t, []string{"np-1", "np-2"}, name, "reply from a pod that is no backend: %q", out)
		seen[name]++
		return len(seen) == 2, nil
	})
	require.NoError(t, err, "NodePort %s from %s: replies %v, want both backends; last %s", addr, extNetNS, seen, last)
	t.Logf("NodePort %s from %s: %v", addr, extNetNS, seen)
}

// askFromNetNS sends one line to the echo server at addr from inside ns and
// returns its reply line ("<pod> <msg>").
func askFromNetNS(ns *harness.NetNS, addr, msg string) (string, error) {
	conn, err := harness.Dial(ns, "tcp4", "", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(conn, msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}
