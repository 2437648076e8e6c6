package e2e

// Process observability on the real node (issue 10).
// The agent runs the sensor because the chart's processSensor.enabled
// defaults to true (--process-sensor).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/agent/api"
)

// TestE2EProcessExecAndConnect: `kubectl exec` into a pod runs /echo, which
// connects to a ClusterIP Service; `sluice events` (the CLI in the agent's
// pod, on the agent's socket) shows that exec with the pod's namespace,
// name, labels and container, its parent and ancestors (up to the
// runtime's processes on the host), the process_connect to the Service with the
// backend chosen, and its exit — every event with one exec id.
func TestE2EProcessExecAndConnect(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	sel := map[string]string{"app": "echo-proc"}
	b1 := c.echoPod(t, ns, "backend-1", sel)
	b2 := c.echoPod(t, ns, "backend-2", sel)
	client := c.echoPod(t, ns, "client", map[string]string{"app": "proc-client", "tier": "e2e"})
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	vip := svc.Spec.ClusterIP + ":80"

	// One exec of /echo (kubectl exec → runtime → /echo in the pod's
	// namespaces) with a unique argument, once the Service answers. The
	// agent names a process's container from the Pod status it has applied;
	// an exec that arrives before the agent applied the status that lists
	// the container (a busy node) names none: such a round is run again
	// (at most twice) with a new marker, and logged.
	var (
		marker, reply, backend, backendIP string
		exec                              *api.ProcessExec
		conn                              *api.ProcessConnect
		exit                              *api.ProcessExit
	)
	agent := c.agentPod(t)
	for round := 1; ; round++ {
		marker = "proc-" + rand.String(8)
		err = wait.PollUntilContextTimeout(t.Context(), 300*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			reply, err = c.ask(t, client, "tcp", vip, marker)
			return err == nil, nil
		})
		require.NoError(t, err, "client never reached %s: %v", vip, err)
		backend, _, _ = strings.Cut(reply, " ")
		require.Contains(t, []string{b1.Name, b2.Name}, backend)
		backendIP = map[string]string{b1.Name: b1.Status.PodIP, b2.Name: b2.Status.PodIP}[backend]

		var last string
		err = wait.PollUntilContextTimeout(t.Context(), time.Second, 60*time.Second, true, func(context.Context) (bool, error) {
			evs, out, err := c.sluiceEvents(t, agent, "--namespace", ns, "--pod", client.Name, "-o", "json")
			last = fmt.Sprintf("err=%v output:\n%s", err, out)
			if err != nil {
				return false, nil
			}
			exec, conn, exit = markedProcess(evs, marker)
			return exec != nil && conn != nil && exit != nil, nil
		})
		require.NoError(t, err, "no exec+connect+exit of /echo %s in sluice events; last: %s", marker, last)
		if pod := exec.Process.Pod; round < 3 && pod != nil && pod.Container != nil && pod.Container.Name == "" {
			t.Logf("round %d: the exec names container %s without its name (the agent had not applied the Pod status listing it yet); again", round, pod.Container.ID)
			continue
		}
		break
	}

	// The exec: binary, arguments, pod, container, parent and ancestors.
	p := exec.Process
	assert.Equal(t, "/echo", p.Binary)
	assert.Equal(t, "tcp "+vip+" "+marker, p.Arguments)
	require.NotNil(t, p.Pod, "the exec names its pod")
	assert.Equal(t, ns, p.Pod.Namespace)
	assert.Equal(t, client.Name, p.Pod.Name)
	assert.Equal(t, client.Labels, p.Pod.Labels)
	require.NotNil(t, p.Pod.Container, "the exec names its container")
	assert.Equal(t, "echo", p.Pod.Container.Name)
	cs := client.Status.ContainerStatuses[0]
	assert.Equal(t, cs.ContainerID, "containerd://"+p.Pod.Container.ID)
	if assert.NotNil(t, p.Pod.Container.Image) {
		assert.Equal(t, cs.Image, p.Pod.Container.Image.Name)
	}
	require.NotNil(t, exec.Parent, "the exec has a parent (the runtime's process)")
	assert.Equal(t, exec.Parent.ExecID, p.ParentExecID)
	assert.NotEmpty(t, exec.Ancestors, "ancestors of a kubectl exec: the runtime's processes up to init")
	// runc's last stages may already be in the pod's namespaces; further up,
	// the runtime (containerd-shim, runc) is on the host.
	host := 0
	for _, a := range append([]*api.Process{exec.Parent}, exec.Ancestors...) {
		assert.NotEmpty(t, a.ExecID)
		assert.NotEmpty(t, a.Binary)
		if a.Pod == nil {
			host++
		}
	}
	assert.Positive(t, host, "an ancestor on the host (the runtime)")

	// The connection: same exec id, the Service as asked for, the backend chosen.
	assert.Equal(t, p.ExecID, conn.Process.ExecID)
	assert.Equal(t, "TCP", conn.Protocol)
	assert.Equal(t, backendIP+":9000", conn.Destination)
	if assert.NotNil(t, conn.Service, "the connection names the Service") {
		assert.Equal(t, vip, conn.Service.Address)
		assert.Equal(t, ns, conn.Service.Namespace)
		assert.Equal(t, "echo", conn.Service.Name)
	}
	assert.Equal(t, ns+"/"+backend, conn.DestinationPod)
	assert.True(t, strings.HasPrefix(conn.Source, client.Status.PodIP+":"), "source %s from the client pod", conn.Source)

	// The exit: same exec id, status 0.
	assert.Equal(t, p.ExecID, exit.Process.ExecID)
	assert.Zero(t, exit.Status)
	assert.Empty(t, exit.Signal)

	// The compact output, as tetra getevents prints it.
	_, out, err := c.sluiceEvents(t, agent, "--namespace", ns, "--pod", client.Name, "-o", "compact")
	require.NoError(t, err)
	assert.Contains(t, out, "🚀 process "+ns+"/"+client.Name+" /echo tcp "+vip+" "+marker)
	assert.Contains(t, out, "🔌 connect "+ns+"/"+client.Name+" /echo ")
	assert.Contains(t, out, "-> "+vip+" ("+ns+"/"+backend+" "+backendIP+":9000)")
}

// markedProcess returns the exec, connect and exit events of the /echo
// process whose arguments hold marker.
func markedProcess(evs []api.ProcessEvent, marker string) (*api.ProcessExec, *api.ProcessConnect, *api.ProcessExit) {
	var (
		exec *api.ProcessExec
		conn *api.ProcessConnect
		exit *api.ProcessExit
	)
	for _, e := range evs {
		if e.ProcessExec != nil && e.ProcessExec.Process != nil && strings.HasSuffix(e.ProcessExec.Process.Arguments, " "+marker) {
			exec = e.ProcessExec
		}
	}
	if exec == nil {
		return nil, nil, nil
	}
	for _, e := range evs {
		s := e.Subject()
		switch {
		case s == nil || s.ExecID != exec.Process.ExecID:
		case e.ProcessConnect != nil:
			conn = e.ProcessConnect
		case e.ProcessExit != nil:
			exit = e.ProcessExit
		}
	}
	return exec, conn, exit
}

// sluiceEvents runs `sluice events args...` in the agent's container (the
// CLI shipped in the image, on the agent's default socket) and returns its
// output and, for -o json, the events it printed (one JSON object a line).
func (c *cluster) sluiceEvents(t *testing.T, agent *corev1.Pod, args ...string) ([]api.ProcessEvent, string, error) {
	t.Helper()
	var out bytes.Buffer
	if err := c.exec(ctxT(t, 30*time.Second), agent, nil, &out, append([]string{"/usr/bin/sluice", "events"}, args...)...); err != nil {
		return nil, out.String(), err
	}
	var evs []api.ProcessEvent
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e api.ProcessEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind() != "" {
			evs = append(evs, e)
		}
	}
	return evs, out.String(), sc.Err()
}
