package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/sluicenet/sluice/agent/api"
)

const (
	defaultKubeconfig = "/var/cache/sluice-k8s/run/pki/admin.kubeconfig"
	defaultSocket     = "/var/run/sluice/agent.sock"
	echoImage         = "sluice.local/echo:1"
	// e2eLabel marks every namespace the tests create (hack/local-cluster.sh down deletes leftovers).
	e2eLabel = "sluice-e2e"
)

// cluster is a connection to the local node.
type cluster struct {
	cfg   *rest.Config
	cs    kubernetes.Interface
	agent *api.Client
}

// connect skips unless SLUICE_E2E=1 and returns clients for the API server
// (SLUICE_KUBECONFIG) and the agent's socket on this host (SLUICE_AGENT_SOCKET).
func connect(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("SLUICE_E2E") != "1" {
		t.Skip("SLUICE_E2E=1 not set: needs the node of hack/local-cluster.sh up")
	}
	kc := envOr("SLUICE_KUBECONFIG", defaultKubeconfig)
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	require.NoError(t, err, "kubeconfig %s (is the node up? hack/local-cluster.sh up)", kc)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return &cluster{cfg: cfg, cs: cs, agent: api.NewClient(envOr("SLUICE_AGENT_SOCKET", defaultSocket))}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a test namespace, deleted (with its pods, so CNI DEL runs) on cleanup.
func (c *cluster) namespace(t *testing.T) string {
	t.Helper()
	ns, err := c.cs.CoreV1().Namespaces().Create(ctxT(t, 30*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "e2e-", Labels: map[string]string{e2eLabel: "1"},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := c.cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
			return
		}
		_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := c.cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
			return err != nil, nil
		})
	})
	return ns.Name
}

// echoPod starts an echo pod and waits until it runs and is ready.
func (c *cluster) echoPod(t *testing.T, ns, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	return c.echoPodOn(t, ns, name, "", labels)
}

// echoPodOn is echoPod on node (the scheduler's choice when empty).
func (c *cluster) echoPodOn(t *testing.T, ns, name, node string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "echo", Image: echoImage, ImagePullPolicy: corev1.PullNever,
				Ports: []corev1.ContainerPort{{ContainerPort: 9000}, {ContainerPort: 9001, Protocol: corev1.ProtocolUDP}, {ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	_, err := c.cs.CoreV1().Pods(ns).Create(ctxT(t, 30*time.Second), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	return c.waitReady(t, ns, name)
}

func (c *cluster) waitReady(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return p.Status.PodIP != "", nil
			}
		}
		return false, nil
	})
	require.NoError(t, err, "pod %s/%s not ready: %+v", ns, name, podState(pod))
	return pod
}

func podState(p *corev1.Pod) any {
	if p == nil {
		return nil
	}
	return p.Status
}

// exec runs cmd in the pod's first container and returns stdout; stderr is in the error.
func (c *cluster) exec(ctx context.Context, pod *corev1.Pod, stdin io.Reader, stdout io.Writer, cmd ...string) error {
	return c.execIn(ctx, pod, pod.Spec.Containers[0].Name, stdin, stdout, cmd...)
}

// execIn is exec in the named container of pod (kubectl exec -c).
func (c *cluster) execIn(ctx context.Context, pod *corev1.Pod, container string, stdin io.Reader, stdout io.Writer, cmd ...string) error {
	req := c.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container, Command: cmd,
			Stdin: stdin != nil, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(c.cfg, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("exec %v: %w", cmd, err)
	}
	var stderr bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: &stderr}); err != nil {
		return fmt.Errorf("exec %v in %s: %w (stderr: %s)", cmd, pod.Name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// ask runs the echo client in pod: mode tcp|udp|http to addr, and returns its output.
func (c *cluster) ask(t *testing.T, pod *corev1.Pod, mode, addr, msg string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := c.exec(ctxT(t, 30*time.Second), pod, nil, &out, "/echo", mode, addr, msg)
	return strings.TrimSpace(out.String()), err
}

// endpoints lists the agent's endpoints keyed by namespace/name.
func (c *cluster) endpoints(t *testing.T) map[string]api.Endpoint {
	t.Helper()
	eps, err := c.agent.ListEndpoints(ctxT(t, 10*time.Second))
	require.NoError(t, err, "list endpoints through the agent socket")
	out := make(map[string]api.Endpoint, len(eps))
	for _, e := range eps {
		out[e.PodNamespace+"/"+e.PodName] = e
	}
	return out
}

// requireAllBackends asks (one echo request per call, msg as the line) until
// every backend has answered, within 60 s. A reply that does not echo msg
// or comes from a pod that is no backend fails at once.
func requireAllBackends(t *testing.T, what, msg string, backends []string, ask func() (string, error)) {
	t.Helper()
	seen := map[string]int{}
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := ask()
		last = fmt.Sprintf("out=%q err=%v", out, err)
		if err != nil {
			return false, nil
		}
		name, got, _ := strings.Cut(out, " ")
		require.Equal(t, msg, got, "reply %q", out)
		require.Contains(t, backends, name, "reply from a pod that is no backend: %q", out)
		seen[name]++
		return len(seen) == len(backends), nil
	})
	require.NoError(t, err, "%s: replies %v, want every backend of %v; last %s", what, seen, backends, last)
	t.Logf("%s: %v", what, seen)
}
